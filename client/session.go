package client

import (
	"github.com/tidemark/tidemark/api"

	"bytes"
	"context"
	"iter"
	"sync"

	"github.com/nats-io/nuid"
)

// Session is one client session: it holds the session's token, sends it
// with every call and merges the token of every reply (api.Token.Merge),
// so that the session reads its own writes and never goes back in time, on
// any replica, and the caller never handles a token. It is safe for
// concurrent use.
//
// A session's writes are applied in the order they were made (monotonic
// writes): the session has a random id and numbers its writes 1, 2, 3...,
// sends them one at a time, in call order, and the writer never applies a
// write numbered below one it has already stored for the session (it
// answers api.ErrOutOfOrder). A write that fails indeterminately (it
// may or may not have been stored: api.ErrUnavailable, a deadline) is
// sent again with the same write id and number, up to the client's write
// attempts; if it still fails, calling it again (the same op, key, value
// and conditions) reuses them, so it is stored at most once.
//
// Export a session with String and resume it elsewhere, in another
// process too, with ResumeSession: the resumed session reads what this one
// wrote. A resumed session numbers its writes under a new id.
type Session struct {
	c  *Client // nil for a session of a context (Middleware, WithToken)
	id string

	mu      sync.Mutex
	tok     api.Token
	seq     uint64        // the last write number handed out
	pending *pendingWrite // the last write, if it failed indeterminately
	// pendingTxn is the last transaction, if it failed indeterminately.
	pendingTxn *api.TxnRequest

	writes fifo // one write at a time, in call order
}

// pendingWrite is a write that failed indeterminately, kept so that calling
// it again sends it with the same write id and number.
type pendingWrite struct {
	req api.WriteRequest
}

func (p *pendingWrite) matches(req api.WriteRequest) bool {
	return p.req.Op == req.Op && p.req.Key == req.Key && bytes.Equal(p.req.Value, req.Value) &&
		p.req.IfRevision == req.IfRevision && p.req.IfAbsent == req.IfAbsent && p.req.TTL == req.TTL &&
		(req.WriteID == "" || req.WriteID == p.req.WriteID)
}

func newSession(c *Client, tok api.Token) *Session {
	return &Session{c: c, id: nuid.Next(), tok: tok}
}

// ResumeSession resumes, on c, the session whose exported token is token
// (Session.String, or any Tidemark-Token header); "" starts a new one. A
// malformed token fails with api.ErrInvalidToken.
func ResumeSession(c *Client, token string) (*Session, error) {
	tok, err := api.ParseToken(token)
	if err != nil {
		return nil, err
	}
	return newSession(c, tok), nil
}

// Token returns the session's token.
func (s *Session) Token() api.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok
}

// String exports the session: its token as a string, "" before its first
// call. ResumeSession takes it back.
func (s *Session) String() string { return s.Token().String() }

// ID returns the id the session's writes are ordered under.
func (s *Session) ID() string { return s.id }

// Merge merges a token the session learned of elsewhere (a message, another
// session) into the session's token: later reads reflect it. Tokens of two
// streams fail with api.ErrTokenStreamMismatch and leave the session as
// it was.
func (s *Session) Merge(tok api.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.tok.Merge(tok)
	if err != nil {
		return err
	}
	s.tok = m
	return nil
}

// observe merges the token of a reply; a token of another stream (a
// recreated stream) is ignored: the server rejects the session's requests
// and says so.
func (s *Session) observe(tok api.Token) { _ = s.Merge(tok) }

func (s *Session) client() (*Client, error) {
	if s.c == nil {
		return nil, ErrNoClient
	}
	return s.c, nil
}

// Put sets key to value in this session.
func (s *Session) Put(ctx context.Context, key string, value []byte, opts ...WriteOption) (api.WriteResult, error) {
	c, err := s.client()
	if err != nil {
		return api.WriteResult{Key: key, Token: s.Token()}, err
	}
	return c.Put(WithSession(ctx, s), key, value, opts...)
}

// Delete deletes key in this session.
func (s *Session) Delete(ctx context.Context, key string, opts ...WriteOption) (api.WriteResult, error) {
	c, err := s.client()
	if err != nil {
		return api.WriteResult{Key: key, Token: s.Token()}, err
	}
	return c.Delete(WithSession(ctx, s), key, opts...)
}

// Get reads key in this session: the read reflects every write the session
// has seen.
func (s *Session) Get(ctx context.Context, key string, opts ...ReadOption) (api.GetResult, error) {
	c, err := s.client()
	if err != nil {
		return api.GetResult{Record: api.Record{Key: key}, Token: s.Token()}, err
	}
	return c.Get(WithSession(ctx, s), key, opts...)
}

// Scan reads one page of keys under prefix in this session.
func (s *Session) Scan(ctx context.Context, prefix string, opts ...ReadOption) (api.ScanResult, error) {
	c, err := s.client()
	if err != nil {
		return api.ScanResult{Token: s.Token()}, err
	}
	return c.Scan(WithSession(ctx, s), prefix, opts...)
}

// ScanAll iterates over every live key under prefix in this session.
func (s *Session) ScanAll(ctx context.Context, prefix string, opts ...ReadOption) iter.Seq2[api.Record, error] {
	c, err := s.client()
	if err != nil {
		return func(yield func(api.Record, error) bool) { yield(api.Record{}, err) }
	}
	return c.ScanAll(WithSession(ctx, s), prefix, opts...)
}

// Watch watches the keys under prefix in this session: the watch starts at
// the session's token (its initial state has every write the session has
// seen) and merges each event's token into the session (Client.Watch).
func (s *Session) Watch(ctx context.Context, prefix string, opts ...WatchOption) iter.Seq2[Event, error] {
	c, err := s.client()
	if err != nil {
		return func(yield func(Event, error) bool) { yield(Event{}, err) }
	}
	return c.Watch(WithSession(ctx, s), prefix, opts...)
}

// write sends req through c as the session's next write, after the
// session's earlier writes have been answered.
func (s *Session) write(ctx context.Context, c *Client, req api.WriteRequest) (api.WriteResult, error) {
	if err := s.writes.lock(ctx); err != nil {
		return api.WriteResult{Key: req.Key, Token: s.Token()}, err
	}
	defer s.writes.unlock()

	s.mu.Lock()
	if p := s.pending; p != nil && p.matches(req) {
		req.WriteID, req.SessionSeq = p.req.WriteID, p.req.SessionSeq
	} else {
		s.seq++
		req.SessionSeq = s.seq
		if req.WriteID == "" {
			req.WriteID = newWriteID()
		}
	}
	s.pending, s.pendingTxn = nil, nil
	req.Session, req.Token = s.id, s.tok
	s.mu.Unlock()

	res, err := c.send(ctx, req)
	s.observe(res.Token)
	if err != nil && indeterminate(err) {
		req.Value = bytes.Clone(req.Value) // the caller may reuse its buffer
		s.mu.Lock()
		s.pending = &pendingWrite{req: req}
		s.mu.Unlock()
	}
	return res, err
}

// fifo is a mutual exclusion lock granted in the order it was asked for,
// whose wait a context can end.
type fifo struct {
	mu      sync.Mutex
	held    bool
	waiters []chan struct{} // closed when the lock is handed over
}

// lock waits for the lock, or until ctx ends.
func (f *fifo) lock(ctx context.Context) error {
	f.mu.Lock()
	if !f.held {
		f.held = true
		f.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	f.waiters = append(f.waiters, ch)
	f.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	f.mu.Lock()
	for i, w := range f.waiters {
		if w == ch {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			f.mu.Unlock()
			return ctx.Err()
		}
	}
	f.mu.Unlock()
	// Handed over just as ctx ended: pass it on.
	f.unlock()
	return ctx.Err()
}

// unlock hands the lock to the longest waiter, or frees it.
func (f *fifo) unlock() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.waiters) == 0 {
		f.held = false
		return
	}
	ch := f.waiters[0]
	f.waiters = f.waiters[1:]
	close(ch)
}
