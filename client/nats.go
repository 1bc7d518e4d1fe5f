package client

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// Defaults of NATS.
const (
	// DefaultWriteTimeout bounds a write whose context has no deadline. It
	// leaves room for the writer's own retries while JetStream recovers.
	DefaultWriteTimeout = 15 * time.Second
	// DefaultReadMargin is added to a read's wait, for the reply to travel,
	// when the context has no deadline.
	DefaultReadMargin = time.Second
)

// NATS is the NATS transport: it calls the writer and replica services over
// NATS request/reply. It is safe for concurrent use.
type NATS struct {
	// WriteTimeout bounds a write whose context has no deadline; 0 leaves
	// it unbounded.
	WriteTimeout time.Duration
	// ReadWait is the wait assumed for a read that does not set one, and
	// ReadMargin is added to a read's wait; together they bound a read whose
	// context has no deadline.
	ReadWait, ReadMargin time.Duration
	// Router, when set, routes each read that names no replica to one that
	// has already reached its token, or is expected to first; without it,
	// reads go to the shared subject and any one ready replica answers.
	Router *Router

	nc       *nats.Conn
	subjects wire.Subjects
}

// NewNATS returns a transport that sends requests on nc to the endpoints of
// subjects.
func NewNATS(nc *nats.Conn, subjects wire.Subjects) *NATS {
	return &NATS{
		WriteTimeout: DefaultWriteTimeout,
		ReadWait:     api.DefaultWait,
		ReadMargin:   DefaultReadMargin,
		nc:           nc,
		subjects:     subjects,
	}
}

// Write sends a put or a delete to a writer. Errors of the writer come back
// as the stream sentinels; when no writer answers, it fails with
// api.ErrUnavailable.
func (c *NATS) Write(ctx context.Context, req api.WriteRequest) (api.WriteResult, error) {
	failed := api.WriteResult{Key: req.Key, Token: req.Token}
	var subject string
	switch req.Op {
	case api.OpPut:
		subject = c.subjects.Put()
	case api.OpDelete:
		subject = c.subjects.Delete()
	default:
		return failed, api.Errorf(api.ErrInvalidRequest, "unknown op %q: want %s or %s", req.Op, api.OpPut, api.OpDelete)
	}
	if req.Op == api.OpPut {
		if err := c.ValueLimit().Check(int64(len(req.Value))); err != nil {
			return failed, err
		}
	}
	ctx, cancel := withDefaultTimeout(ctx, c.WriteTimeout)
	defer cancel()
	reply, err := c.request(ctx, wire.WriteMsg(subject, req), "writer")
	if err != nil {
		return failed, err
	}
	res, err := wire.DecodeWriteReply(reply)
	if res.Key == "" {
		res.Key = req.Key
	}
	return res, err
}

// ValueLimit returns the largest value a put can carry over this
// connection: what the NATS server's max_payload leaves for the put and
// for every reply that carries the value. The writer may allow less.
func (c *NATS) ValueLimit() wire.ValueLimit {
	return wire.NewValueLimit(0, c.nc.MaxPayload())
}

// Get sends a point read to the replica the Router picks, to req.Replica
// when set, or else to any ready replica. On api.ErrNotFound the result
// still carries the token and, for a deleted key, the delete's revision.
// When no replica answers, it fails with api.ErrUnavailable.
func (c *NATS) Get(ctx context.Context, req api.GetRequest) (api.GetResult, error) {
	res := api.GetResult{Record: api.Record{Key: req.Key}, Token: req.Token}
	r := route{ReadSpec: req.ReadSpec, shared: c.subjects.Get(), perReplica: c.subjects.ReplicaGet}
	err := c.read(ctx, r, func(subject string, wait time.Duration) *nats.Msg {
		one := req
		one.Wait = wait
		return wire.GetMsg(subject, one)
	}, func(reply *nats.Msg) (api.ServedBy, error) {
		var err error
		res, err = wire.DecodeGetReply(req.Key, reply)
		return res.ServedBy, err
	})
	res.Token = replyToken(res.Token, req.Token, err)
	return res, err
}

// Scan sends a prefix scan, routed as Get is. When no replica answers, it
// fails with api.ErrUnavailable.
func (c *NATS) Scan(ctx context.Context, req api.ScanRequest) (api.ScanResult, error) {
	res := api.ScanResult{Token: req.Token}
	r := route{ReadSpec: req.ReadSpec, shared: c.subjects.Scan(), perReplica: c.subjects.ReplicaScan}
	err := c.read(ctx, r, func(subject string, wait time.Duration) *nats.Msg {
		one := req
		one.Wait = wait
		return wire.ScanMsg(subject, one)
	}, func(reply *nats.Msg) (api.ServedBy, error) {
		var err error
		res, err = wire.DecodeScanReply(reply)
		return res.ServedBy, err
	})
	res.Token = replyToken(res.Token, req.Token, err)
	return res, err
}

// read sends one routed read built by msg and decodes each reply with
// decode, which returns who served it.
func (c *NATS) read(ctx context.Context, r route, msg func(subject string, wait time.Duration) *nats.Msg,
	decode func(*nats.Msg) (api.ServedBy, error)) error {
	return c.routed(ctx, r, func(ctx context.Context, subject string, wait time.Duration) (api.ServedBy, error) {
		reply, err := c.request(ctx, msg(subject, wait), "replica")
		if err != nil {
			return api.ServedBy{}, err
		}
		return decode(reply)
	})
}

// replyToken is the token a read reports: the reply's, or else the
// request's, unless the request's token was itself the problem.
func replyToken(got, sent api.Token, err error) api.Token {
	if got.IsZero() && !errors.Is(err, api.ErrTokenStreamMismatch) && !errors.Is(err, api.ErrTokenFromFuture) {
		return sent
	}
	return got
}

// route is what routing a read needs to know of it: its spec (the replica
// it is pinned to, its token, level, wait and forwarding) and its subjects.
type route struct {
	api.ReadSpec
	shared     string
	perReplica func(id string) string
}

// routed sends one read: to the pinned replica; or to the replica the Router
// picks (falling back to the shared subject when that replica does not
// answer); or to the shared subject. A pinned replica that no one serves is
// api.ErrUnknownReplica, not worth retrying. With forward, a read whose
// replica timed out waiting for the token, or did not answer within its
// part of the wait, is sent once more, to the freshest other replica, with
// the rest of the wait; if that one does not answer either, the read is
// api.ErrTokenWaitTimeout. send returns which replica answered and how
// far it had applied, which the Router learns from.
func (c *NATS) routed(ctx context.Context, r route, send func(ctx context.Context, subject string, wait time.Duration) (api.ServedBy, error)) error {
	if r.Replica != "" {
		if err := validReplica(r.Replica); err != nil {
			return err
		}
		if !r.Forward {
			ctx, cancel := withDefaultTimeout(ctx, c.readTimeout(r.Wait))
			defer cancel()
			_, err := send(ctx, r.perReplica(r.Replica), r.Wait)
			return c.pinnedErr(r.Replica, err)
		}
	}
	wait := r.Wait
	if wait <= 0 {
		wait = c.ReadWait
	}
	first, rest := wait, time.Duration(0)
	if r.Forward {
		first, rest = api.SplitForward(wait)
	}
	target := r.Replica
	if target == "" && c.Router != nil {
		switch r.Consistency {
		case api.Strong:
			target = c.Router.Freshest("")
		default:
			target = c.Router.Pick(r.Token.Seq, "")
		}
	}
	var attempt func(target string, wait time.Duration) (string, error)
	attempt = func(target string, wait time.Duration) (string, error) {
		subject := r.shared
		if target != "" {
			subject = r.perReplica(target)
		}
		var (
			actx   context.Context
			cancel context.CancelFunc
		)
		if r.Forward {
			// Its own bound, so that a replica that does not answer
			// leaves the rest of the wait to the next one.
			actx, cancel = context.WithTimeout(ctx, wait+c.ReadMargin)
		} else {
			actx, cancel = withDefaultTimeout(ctx, wait+c.ReadMargin)
		}
		defer cancel()
		served, err := send(actx, subject, wait)
		if c.Router != nil && served.Replica != "" {
			c.Router.Observe(served.Replica, served.Applied, -1, true)
		}
		if target != "" && target != r.Replica && errors.Is(err, nats.ErrNoResponders) {
			// The advertisement outlived the replica: forget it, and let
			// any ready replica answer.
			c.Router.Forget(target)
			return attempt("", wait)
		}
		return served.Replica, err
	}
	served, err := attempt(target, first)
	if r.Replica != "" {
		err = c.pinnedErr(r.Replica, err)
	}
	if !r.Forward || ctx.Err() != nil || !(errors.Is(err, api.ErrTokenWaitTimeout) || isNoReply(err)) {
		return err
	}
	if served == "" {
		served = target // did not answer: not that one again
	}
	next := ""
	if c.Router != nil {
		next = c.Router.Freshest(served)
	}
	_, err = attempt(next, rest)
	if isNoReply(err) {
		return api.Errorf(api.ErrTokenWaitTimeout, "no replica answered with the token reached within the wait of %v", wait)
	}
	return err
}

// pinnedErr is the error of a read sent to replica id: no one listening on
// its subject means there is no such replica.
func (c *NATS) pinnedErr(id string, err error) error {
	if errors.Is(err, nats.ErrNoResponders) {
		return api.Errorf(api.ErrUnknownReplica, "unknown replica %q (%w)", id, err)
	}
	return err
}

// readTimeout bounds a read of wait whose context has no deadline.
func (c *NATS) readTimeout(wait time.Duration) time.Duration {
	if wait <= 0 {
		wait = c.ReadWait
	}
	return wait + c.ReadMargin
}

// request sends m and returns the reply, mapping transport failures to
// stream errors; who names the service the request is for.
func (c *NATS) request(ctx context.Context, m *nats.Msg, who string) (*nats.Msg, error) {
	start := time.Now()
	reply, err := c.nc.RequestMsgWithContext(ctx, m)
	switch {
	case err == nil:
		return reply, nil
	case errors.Is(err, nats.ErrNoResponders):
		return nil, &noResponders{api.Errorf(api.ErrUnavailable, "no %s is listening on %s", who, m.Subject)}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, &noReply{api.Errorf(api.ErrUnavailable, "no reply from a %s on %s in time (waited %v)",
			who, m.Subject, time.Since(start).Round(time.Millisecond))}
	case errors.Is(err, context.Canceled):
		return nil, err
	case wire.Closed(err), errors.Is(err, nats.ErrDisconnected):
		return nil, api.Errorf(api.ErrUnavailable, "request on %s: NATS connection closed", m.Subject)
	case errors.Is(err, nats.ErrMaxPayload):
		return nil, api.Errorf(api.ErrValueTooLarge, "request of %d bytes is over the NATS maximum payload of %d bytes",
			len(m.Data), c.nc.MaxPayload())
	default:
		return nil, api.Errorf(api.ErrUnavailable, "request on %s: %w", m.Subject, err)
	}
}

// withDefaultTimeout bounds ctx by d unless it already has a deadline.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// validReplica checks that id can name a replica (api.ValidID).
func validReplica(id string) error {
	if !api.ValidID(id) {
		return api.Errorf(api.ErrInvalidRequest, "invalid replica id %q: want 1 to %d letters, digits, '-' or '_'", id, api.MaxIDLen)
	}
	return nil
}

// noResponders is ErrUnavailable for a request nobody listened to; it also
// matches nats.ErrNoResponders, so routing can tell it from a timeout.
type noResponders struct{ error }

func (e *noResponders) Is(target error) bool { return target == nats.ErrNoResponders }
func (e *noResponders) Unwrap() error        { return e.error }

// noReply is ErrUnavailable for a request that got no reply in time, so
// that routing can tell a replica that did not answer from one that refused.
type noReply struct{ error }

func (e *noReply) Unwrap() error { return e.error }

// isNoReply reports whether err is a request that got no reply in time.
func isNoReply(err error) bool {
	var n *noReply
	return errors.As(err, &n)
}
