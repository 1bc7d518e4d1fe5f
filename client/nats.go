package client

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/stream"
)

// Defaults of NATS.
const (
	// DefaultWriteTimeout bounds a write whose context has no deadline. It
	// leaves room for the writer's own retries while JetStream recovers.
	DefaultWriteTimeout = 15 * time.Second
	// DefaultReadWait is the wait a read without one gets from the replica
	// (the replicas' default), used to bound a read whose context has no
	// deadline.
	DefaultReadWait = 5 * time.Second
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

	nc       *nats.Conn
	subjects stream.Subjects
}

// NewNATS returns a transport that sends requests on nc to the endpoints of
// subjects.
func NewNATS(nc *nats.Conn, subjects stream.Subjects) *NATS {
	return &NATS{
		WriteTimeout: DefaultWriteTimeout,
		ReadWait:     DefaultReadWait,
		ReadMargin:   DefaultReadMargin,
		nc:           nc,
		subjects:     subjects,
	}
}

// Write sends a put or a delete to a writer. Errors of the writer come back
// as the stream sentinels; when no writer answers, it fails with
// stream.ErrUnavailable.
func (c *NATS) Write(ctx context.Context, req stream.WriteRequest) (stream.WriteResult, error) {
	failed := stream.WriteResult{Key: req.Key, Token: req.Token}
	var subject string
	switch req.Op {
	case stream.OpPut:
		subject = c.subjects.Put()
	case stream.OpDelete:
		subject = c.subjects.Delete()
	default:
		return failed, stream.Errorf(stream.ErrInvalidRequest, "unknown op %q: want %s or %s", req.Op, stream.OpPut, stream.OpDelete)
	}
	ctx, cancel := withDefaultTimeout(ctx, c.WriteTimeout)
	defer cancel()
	reply, err := c.request(ctx, req.Msg(subject), "writer")
	if err != nil {
		return failed, err
	}
	res, err := stream.DecodeWriteReply(reply)
	if res.Key == "" {
		res.Key = req.Key
	}
	return res, err
}

// Get sends a point read to any replica, or to req.Replica when set. On
// stream.ErrNotFound the result still carries the token and, for a deleted
// key, the delete's revision. When no replica answers, it fails with
// stream.ErrUnavailable.
func (c *NATS) Get(ctx context.Context, req stream.GetRequest) (stream.GetResult, error) {
	failed := stream.GetResult{Record: stream.Record{Key: req.Key}, Token: req.Token}
	subject := c.subjects.Get()
	if req.Replica != "" {
		if err := validReplica(req.Replica); err != nil {
			return failed, err
		}
		subject = c.subjects.ReplicaGet(req.Replica)
	}
	ctx, cancel := withDefaultTimeout(ctx, c.readTimeout(req.Wait))
	defer cancel()
	reply, err := c.request(ctx, req.Msg(subject), "replica")
	if err != nil {
		return failed, err
	}
	return stream.DecodeGetReply(req.Key, reply)
}

// Scan sends a prefix scan to any replica, or to req.Replica when set. When
// no replica answers, it fails with stream.ErrUnavailable.
func (c *NATS) Scan(ctx context.Context, req stream.ScanRequest) (stream.ScanResult, error) {
	failed := stream.ScanResult{Token: req.Token}
	subject := c.subjects.Scan()
	if req.Replica != "" {
		if err := validReplica(req.Replica); err != nil {
			return failed, err
		}
		subject = c.subjects.ReplicaScan(req.Replica)
	}
	ctx, cancel := withDefaultTimeout(ctx, c.readTimeout(req.Wait))
	defer cancel()
	reply, err := c.request(ctx, req.Msg(subject), "replica")
	if err != nil {
		return failed, err
	}
	return stream.DecodeScanReply(reply)
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
		return nil, stream.Errorf(stream.ErrUnavailable, "no %s is listening on %s", who, m.Subject)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, stream.Errorf(stream.ErrUnavailable, "no reply from a %s on %s in time (waited %v)",
			who, m.Subject, time.Since(start).Round(time.Millisecond))
	case errors.Is(err, context.Canceled):
		return nil, err
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrInvalidConnection), errors.Is(err, nats.ErrDisconnected):
		return nil, stream.Errorf(stream.ErrUnavailable, "request on %s: NATS connection closed", m.Subject)
	case errors.Is(err, nats.ErrMaxPayload):
		return nil, stream.Errorf(stream.ErrValueTooLarge, "request of %d bytes is over the NATS maximum payload of %d bytes",
			len(m.Data), c.nc.MaxPayload())
	default:
		return nil, stream.Errorf(stream.ErrUnavailable, "request on %s: %v", m.Subject, err)
	}
}

// withDefaultTimeout bounds ctx by d unless it already has a deadline.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// validReplica checks that id can name a replica in a subject: one subject
// token.
func validReplica(id string) error {
	if strings.ContainsAny(id, ".*> \t\r\n") {
		return stream.Errorf(stream.ErrInvalidRequest, "invalid replica id %q: want one NATS subject token", id)
	}
	return nil
}
