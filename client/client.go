package client

import (
	"github.com/tidemark/tidemark/internal/backoff"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"iter"
	"time"

	"github.com/nats-io/nuid"
)

// Defaults of Client.
const (
	// DefaultWriteAttempts is how many times a write that failed
	// indeterminately is sent, with the same write id, before the error is
	// returned.
	DefaultWriteAttempts = 3
	// writeRetryMin and writeRetryMax bound the backoff between attempts.
	writeRetryMin = 50 * time.Millisecond
	writeRetryMax = time.Second
)

// Client is the Tidemark client: Put, Delete, Get and Scan over one
// Transport (NewNATS or NewHTTP), optionally reading from an embedded
// replica instead (WithReader). It is safe for concurrent use.
//
// A call uses the Session its context carries (WithSession, or the one
// Middleware and the NATS handlers put there): it sends the session's token,
// merges the token of the reply into it, and orders the session's writes.
// A call whose context carries no session stands alone: it sends no token,
// so a read may not reflect earlier writes. Use a Session (NewSession) to
// read your own writes.
type Client struct {
	transport     Transport
	reader        Reader
	wait          time.Duration
	consistency   api.Consistency
	writeAttempts int
}

// New returns a client over t.
func New(t Transport, opts ...Option) *Client {
	c := &Client{transport: t, reader: t, writeAttempts: DefaultWriteAttempts}
	for _, o := range opts {
		o(c)
	}
	return c
}

// NewSession starts a session with no token.
func (c *Client) NewSession() *Session { return newSession(c, api.Token{}) }

// Put sets key to value. The result carries the write's revision and the
// session's new token.
func (c *Client) Put(ctx context.Context, key string, value []byte, opts ...WriteOption) (api.WriteResult, error) {
	if value == nil {
		value = []byte{}
	}
	return c.write(ctx, api.WriteRequest{Op: api.OpPut, Key: key, Value: value}, opts)
}

// Delete deletes key. Deleting a key that does not exist is a write like
// any other (it gets a revision); use IfRevision to delete only a given
// version.
func (c *Client) Delete(ctx context.Context, key string, opts ...WriteOption) (api.WriteResult, error) {
	return c.write(ctx, api.WriteRequest{Op: api.OpDelete, Key: key}, opts)
}

// Get reads key. A key that does not exist fails with api.ErrNotFound;
// the result then carries, for a deleted key, the delete's revision.
func (c *Client) Get(ctx context.Context, key string, opts ...ReadOption) (api.GetResult, error) {
	o := c.readOptions(opts)
	req := api.GetRequest{Key: key, ReadSpec: api.ReadSpec{Wait: o.wait, Consistency: o.consistency, Replica: o.replica}}
	s := SessionFrom(ctx)
	if s != nil {
		req.Token = s.Token()
	}
	res, err := c.reader.Get(ctx, req)
	if s != nil {
		s.observe(res.Token)
	}
	return res, err
}

// Scan reads one page of the live keys under prefix, in key order; pass
// the page's Next to WithAfter for the next page (Next is "" on the last).
func (c *Client) Scan(ctx context.Context, prefix string, opts ...ReadOption) (api.ScanResult, error) {
	o := c.readOptions(opts)
	req := api.ScanRequest{Prefix: prefix, After: o.after, Limit: o.limit, ReadSpec: api.ReadSpec{Wait: o.wait, Consistency: o.consistency, Replica: o.replica}}
	s := SessionFrom(ctx)
	if s != nil {
		req.Token = s.Token()
	}
	res, err := c.reader.Scan(ctx, req)
	if s != nil {
		s.observe(res.Token)
	}
	return res, err
}

// ScanAll iterates over every live key under prefix, page by page. Each
// page is a consistent snapshot as of at least the token of the page
// before; the whole iteration is not one snapshot. An error ends it.
func (c *Client) ScanAll(ctx context.Context, prefix string, opts ...ReadOption) iter.Seq2[api.Record, error] {
	return func(yield func(api.Record, error) bool) {
		after := c.readOptions(opts).after
		page := make([]ReadOption, len(opts), len(opts)+1)
		copy(page, opts)
		for {
			res, err := c.Scan(ctx, prefix, append(page, WithAfter(after))...)
			if err != nil {
				yield(api.Record{}, err)
				return
			}
			for _, r := range res.Items {
				if !yield(r, nil) {
					return
				}
			}
			if res.Next == "" {
				return
			}
			after = res.Next
		}
	}
}

func (c *Client) readOptions(opts []ReadOption) readOptions {
	o := readOptions{wait: c.wait, consistency: c.consistency}
	for _, fn := range opts {
		fn(&o)
	}
	return o
}

// write applies opts to req and sends it, through the context's session
// when there is one.
func (c *Client) write(ctx context.Context, req api.WriteRequest, opts []WriteOption) (api.WriteResult, error) {
	for _, o := range opts {
		o(&req)
	}
	if s := SessionFrom(ctx); s != nil {
		return s.write(ctx, c, req)
	}
	return c.send(ctx, req)
}

// send sends a write, again with the same write id while it fails
// indeterminately, up to the client's attempts.
func (c *Client) send(ctx context.Context, req api.WriteRequest) (api.WriteResult, error) {
	if req.WriteID == "" {
		req.WriteID = newWriteID()
	}
	return retried(ctx, c, func() (api.WriteResult, error) { return c.transport.Write(ctx, req) })
}

// retried calls send until it succeeds, fails for another reason than
// api.ErrUnavailable or has been tried c.writeAttempts times, with backoff
// between tries. send must keep its write id from try to try, so that the
// stream stores the write once.
func retried[T any](ctx context.Context, c *Client, send func() (T, error)) (T, error) {
	b := backoff.Backoff{Min: writeRetryMin, Max: writeRetryMax}
	for attempt := 1; ; attempt++ {
		res, err := send()
		if err == nil || !errors.Is(err, api.ErrUnavailable) || attempt >= c.writeAttempts || b.Wait(ctx) != nil {
			return res, err
		}
	}
}

// indeterminate reports whether a failed write may nevertheless have been
// stored: anything but an answer that says it was refused (the writer or
// the transport gave up waiting, the caller did, something unexpected).
func indeterminate(err error) bool { return !api.Refused(api.Code(err)) }

// newWriteID names a write for deduplication.
func newWriteID() string { return nuid.Next() }
