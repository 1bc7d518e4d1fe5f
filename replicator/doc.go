// Package replicator consumes the Tidemark stream into a Badger database, in
// stream order, and tells readers how far it has got.
//
// A Replicator owns one Badger directory. Open opens it and checks that it
// belongs to the configured stream; Run consumes the stream from the stored
// applied sequence + 1 with an ordered consumer and applies messages in
// batches; Close stops Run and closes Badger. Applied and WaitApplied expose
// progress (waiters are woken by the apply loop, never by polling); Get and
// Scan read a consistent snapshot together with the applied sequence it
// reflects.
//
// Get answers from a bounded in-memory cache of current records when it can
// (Config.CacheBytes): reads add what they find in Badger unless an apply
// has begun since their snapshot, and the apply loop replaces the entries
// of the keys it commits before it publishes the new applied sequence, so
// the cache never holds a record older than Badger's (cache.go explains
// why).
// A point read that needs no wait then costs a map lookup, not a Badger
// transaction. The cache is emptied whenever the database is replaced.
//
// # Storage layout
//
// All keys live in one Badger keyspace:
//
//	d/<key>        [kind byte][revision uint64 big-endian][value]
//	               kind 'p' is a put; kind 't' is a tombstone (a delete),
//	               whose value part is empty. revision is the stream
//	               sequence of the write.
//	m/applied      uint64 big-endian: the last stream sequence applied.
//	m/stream       the identity (stream.Stream.ID) of the stream applied.
//	m/format       one byte, the layout version (1).
//	x/<E><key>     uint64 big-endian: the revision of a put with a time to
//	               live; E is its expiry (uint64 big-endian stream time in
//	               Unix nanoseconds). See ttl.go.
//
// Deletes keep a tombstone so that a read of a deleted key can report the
// delete's revision; scans skip tombstones. Tombstones are never removed.
// A key whose time to live runs out gets a tombstone too, whose revision is
// the stream position at which it expired (ttl.go).
//
// # Crash safety
//
// Every batch of messages is written together with the new m/applied in one
// Badger transaction, so after a crash (even kill -9) the database holds
// exactly the writes up to its applied sequence, and Run resumes from
// applied + 1: nothing is lost or applied twice. A batch too big for one
// Badger transaction is split into several, each carrying its own applied.
// Readers are told about a new applied only after its transaction has
// committed. Config.SyncWrites makes Badger fsync every commit; without it a
// machine crash (not a process crash) may lose recent commits, which the
// replica then applies again from the stream: token reads wait for it, so
// no session sees the state go back, and no guarantee needs the fsync.
//
// # Refusing to serve
//
// The replicator stops applying, Err reports why, and Run returns the error
// in these cases; it never skips a message and never serves a state with a
// hole in it:
//
//   - ErrGap: the stream no longer holds applied + 1 (limits, a purge), found
//     when Run starts or when a delivered message is not applied + 1. The
//     replica must be rebuilt from an empty directory (if the stream still
//     holds sequence 1) or from a copy of a healthy replica. With
//     Config.Bootstrap, Run does that itself: it restores a snapshot of
//     another replica (Snapshot, Restore) and goes on from there.
//   - ErrBadMessage: a message on the stream's subjects does not decode as a
//     Tidemark write. Writers validate everything they publish, so this is
//     either foreign data published on the stream's subjects or a write from
//     a newer Tidemark whose format this replica does not know. Skipping it
//     would silently diverge from replicas that understand it, so the replica
//     stops just before it (everything before it is applied) and stays
//     stopped across restarts until it is upgraded or the stream is fixed.
//
// Open fails with ErrStreamMismatch when the directory holds data of another
// stream identity (the stream was deleted and recreated): the data belongs to
// a stream that no longer exists, and tokens of the new stream would be
// misread against it. When Run finds, while running, that the stream was
// deleted or recreated, it stops serving (ErrDiverged), waits until the
// stream exists again, takes on its new identity (stream.Stream.Refresh)
// and rebuilds from it; StreamID says which stream the state belongs to.
//
// # Serving only the history the stream holds
//
// m/head holds the identity of the message at applied (history.go). Run
// verifies it against the stream before it applies anything, for every new
// consumer, when the NATS connection comes back, on the stream's JetStream
// advisories and every Config.CheckInterval; until Run has verified a
// reopened directory, and while the connection is down, the replica does
// not serve (ErrUnverified; token reads wait). These mean the state must not
// be served at all; the replica stops serving at once and rebuilds on its
// own (reset.go: from the stream's first message, or a snapshot with
// Config.Bootstrap), holding ErrResetting until it has caught up:
//
//   - ErrAhead: the replica has applied sequences the stream does not have
//     (the stream was restored from an older copy, or lost its tail).
//   - ErrDiverged: the stream's message at applied is another one (it lost
//     its tail and took new writes at the same sequences).
//   - ErrCorrupt: Badger found the files damaged (corrupt.go); the files
//     are moved aside, never deleted.
//
// ErrDiskFull stops serving until the file system has room again
// (diskspace.go): Badger's memory-mapped writes would otherwise die of
// SIGBUS.
//
// The storage layout above also holds m/head: the applied sequence (uint64
// big-endian) and the SHA-256 identity of the message at it.
package replicator
