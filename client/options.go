package client

import (
	"github.com/tidemark/tidemark/api"

	"time"
)

// Option configures a Client.
type Option func(*Client)

// WithReader sends the client's reads to r instead of the transport: an
// embedded replica (*replica.Replica) reads from its local store, with
// read-your-writes against the tokens of writes made anywhere.
func WithReader(r Reader) Option {
	return func(c *Client) {
		if r != nil {
			c.reader = r
		}
	}
}

// WithDefaultWait sets how long a read may wait for its token when the call
// does not say (WithWait); 0 leaves it to the server (5s by default).
func WithDefaultWait(d time.Duration) Option {
	return func(c *Client) { c.wait = d }
}

// WithDefaultConsistency sets the consistency level of reads that do not
// say (WithConsistency); api.Session when unset.
func WithDefaultConsistency(level api.Consistency) Option {
	return func(c *Client) { c.consistency = level }
}

// WithWriteAttempts sets how many times a Session sends a write that failed
// indeterminately (api.ErrUnavailable: the write may or may not have been
// stored) before it gives up; every attempt carries the same write id and
// session sequence, so the write is stored at most once.
// DefaultWriteAttempts when n < 1.
func WithWriteAttempts(n int) Option {
	return func(c *Client) {
		if n >= 1 {
			c.writeAttempts = n
		}
	}
}

// WriteOption shapes one Put or Delete.
type WriteOption func(*api.WriteRequest)

// IfRevision makes the write happen only if the key's current revision is
// rev (HTTP If-Match); otherwise it fails with api.ErrRevisionMismatch.
func IfRevision(rev uint64) WriteOption {
	return func(r *api.WriteRequest) { r.IfRevision = rev }
}

// IfAbsent makes the write happen only if the key does not exist (HTTP
// If-None-Match: *); otherwise it fails with api.ErrRevisionMismatch.
func IfAbsent() WriteOption {
	return func(r *api.WriteRequest) { r.IfAbsent = true }
}

// WithTTL gives a put a time to live (HTTP Tidemark-TTL), at least
// api.MinTTL: the key expires d after the put in stream time, at the same
// stream position on every replica, and reads after that are
// api.ErrNotFound. A later put without it clears it. A delete refuses it.
func WithTTL(d time.Duration) WriteOption {
	return func(r *api.WriteRequest) { r.TTL = d }
}

// WithWriteID names the write, so that a retry within the stream's
// duplicate window is stored once and returns the same revision. Without
// it a Session names each write itself.
func WithWriteID(id string) WriteOption {
	return func(r *api.WriteRequest) { r.WriteID = id }
}

// ReadOption shapes one Get or Scan.
type ReadOption func(*readOptions)

type readOptions struct {
	wait        time.Duration
	consistency api.Consistency
	replica     string
	after       string
	limit       int
}

// WithWait bounds how long the read may wait for its token; past it the
// read fails with api.ErrTokenWaitTimeout, never with stale data.
func WithWait(d time.Duration) ReadOption {
	return func(o *readOptions) { o.wait = d }
}

// WithConsistency sets the read's level: api.Session (the default),
// api.Strong or api.Eventual.
func WithConsistency(level api.Consistency) ReadOption {
	return func(o *readOptions) { o.consistency = level }
}

// WithReplica sends the read to one replica (debugging, tests). An
// embedded replica reader ignores it.
func WithReplica(id string) ReadOption {
	return func(o *readOptions) { o.replica = id }
}

// WithAfter starts a Scan's page after key: pass the previous page's Next.
// Get ignores it.
func WithAfter(key string) ReadOption {
	return func(o *readOptions) { o.after = key }
}

// WithLimit sets the most keys a Scan's page holds (default 100, at most
// 1000). A page holds fewer when their values would not fit one reply, and
// then has a Next; ScanAll follows it. Get ignores it.
func WithLimit(n int) ReadOption {
	return func(o *readOptions) { o.limit = n }
}
