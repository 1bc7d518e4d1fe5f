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
	// ErrDiverged means the messages the replica applied are not the ones
	// the stream holds now at the same sequences (the stream lost its tail
	// and took new writes, or was replaced by another with the same
	// identity); the replica discards its state and rebuilds (reset.go).
	ErrDiverged = errors.New("replica applied another history than the stream holds")
	// ErrCorrupt means Badger found the replica's files damaged (a checksum
	// mismatch, a panic while reading them); the replica stops serving,
	// moves the files aside and rebuilds (reset.go).
	ErrCorrupt = errors.New("replica store corrupt")
	// ErrDiskFull means the replica's file system has too little space left
	// to apply more safely; the replica stops serving until space is freed.
	ErrDiskFull = errors.New("disk full")
	// ErrResetting means the replica is discarding its state and rebuilding
	// it after ErrDiverged, ErrAhead or ErrCorrupt.
	ErrResetting = errors.New("rebuilding the replica")
	// ErrUnverified means the replica lost its connection to NATS and does
	// not serve until it has checked again that the stream still holds the
	// history it applied.
	ErrUnverified = errors.New("history not verified since the connection to NATS was lost")
	// ErrBootstrapping means the replicator is restoring a snapshot of
	// another replica (see Config.Bootstrap).
	ErrBootstrapping = errors.New("bootstrapping from a snapshot")
)
