package replicator

import "errors"

// Sentinel errors of the replicator; Err and Run return errors that wrap them.
var (
	// ErrGap means the stream no longer holds the sequence after the last
	// one applied (it was removed by limits or a purge); the replica cannot
	// catch up and refuses to serve.
	ErrGap = errors.New("stream no longer holds the next sequence")
	// ErrBadMessage means a stream message is not a Tidemark write; the
	// replica stops before it rather than skip it.
	ErrBadMessage = errors.New("undecodable stream message")
	// ErrAhead means the replica has applied more than the stream holds.
	ErrAhead = errors.New("replica is ahead of the stream")
	// ErrStreamMismatch means the Badger directory holds data of another
	// stream identity, or the stream was deleted or recreated under a
	// running replica.
	ErrStreamMismatch = errors.New("replica belongs to another stream")
	// ErrClosed means the replicator has been closed.
	ErrClosed = errors.New("replicator closed")
	// ErrStopped means Run has returned, so applied no longer advances.
	ErrStopped = errors.New("replicator stopped")
	// ErrNotOpen means Run, Get or Scan was called before Open.
	ErrNotOpen = errors.New("replicator not open")
	// ErrBadSnapshot means a snapshot is corrupt, truncated, of another
	// stream, or too old to continue from the stream; it is not restored.
	ErrBadSnapshot = errors.New("bad snapshot")
	// ErrBootstrapping means the replicator is restoring a snapshot of
	// another replica (see Config.Bootstrap).
	ErrBootstrapping = errors.New("bootstrapping from a snapshot")
)
