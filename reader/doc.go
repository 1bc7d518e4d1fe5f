// Package reader serves point reads and prefix scans that honour a session
// token, from a replica's store, and exposes them as a NATS micro service.
//
// A read carrying token T is answered only from a snapshot whose applied
// sequence is at least T: the reader waits (up to a bound) for the store to
// apply T and otherwise fails with api.ErrTokenWaitTimeout, never with
// stale data. A token of another stream or one ahead of the stream fails at
// once. Every answer carries the session's new token, max(T, applied).
//
// The reader does not know the replicator: it reads through the small Store
// interface, which the replicator satisfies.
package reader
