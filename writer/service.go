package writer

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/stream"
)

// Identity of the writer's micro service.
const (
	// ServiceName is the micro service name, as `nats micro ls` lists it.
	ServiceName = "tidemark-writer"
	// QueueGroup is the queue group of the writer endpoints: one writer
	// answers each request.
	QueueGroup = "tidemark-writer"
	// Version is the service version the micro service announces.
	Version = "0.1.0"
)

// Endpoint names of the writer service.
const (
	EndpointPut    = "put"
	EndpointDelete = "delete"
)

// Service serves a Writer as the NATS micro service "tidemark-writer", with
// the endpoints put and delete on the subjects of stream.Subjects.
type Service struct {
	// MaxInFlight bounds the writes handled at once; set it before Run.
	MaxInFlight int

	nc       *nats.Conn
	subjects stream.Subjects
	w        *Writer
	log      zerolog.Logger
}

// NewService returns a service for w on nc.
func NewService(nc *nats.Conn, subjects stream.Subjects, w *Writer, logger zerolog.Logger) *Service {
	return &Service{MaxInFlight: stream.DefaultMaxInFlight, nc: nc, subjects: subjects, w: w, log: logger}
}

// Run registers the service and serves requests until ctx ends; then it
// stops the service, cancels the writes in flight and waits for them to be
// answered. It returns an error when the service cannot be registered, or
// when the NATS connection is closed under it.
func (s *Service) Run(ctx context.Context) error {
	h := &handlers{
		w:    s.w,
		pool: stream.NewPool(context.WithoutCancel(ctx), s.MaxInFlight),
		// A failing stream fails every write: summarise.
		log: s.log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second}),
	}
	connClosed := make(chan struct{})
	var once sync.Once
	svc, err := micro.AddService(s.nc, micro.Config{
		Name:        ServiceName,
		Version:     Version,
		Description: "Tidemark writer: publishes puts and deletes to the stream; replies carry the revision and the session token",
		Metadata: map[string]string{
			"stream":          s.w.stream.Name(),
			"stream_id":       s.w.stream.ID(),
			"max_value_bytes": strconv.Itoa(s.w.maxValueBytes),
		},
		QueueGroup:  QueueGroup,
		DoneHandler: func(micro.Service) { once.Do(func() { close(connClosed) }) },
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			h.log.Warn().Str("subject", e.Subject).Str("error", e.Description).Msg("writer service error")
		},
	})
	if err != nil {
		h.close()
		return fmt.Errorf("writer service: %w", err)
	}
	stop := func() {
		if err := svc.Stop(); err != nil {
			s.log.Warn().Err(err).Msg("stop writer service")
		}
		h.close()
	}
	for _, e := range []struct {
		name, subject string
		op            stream.Op
	}{
		{EndpointPut, s.subjects.Put(), stream.OpPut},
		{EndpointDelete, s.subjects.Delete(), stream.OpDelete},
	} {
		err := svc.AddEndpoint(e.name, h.endpoint(e.op),
			micro.WithEndpointSubject(e.subject), micro.WithEndpointQueueGroup(QueueGroup))
		if err != nil {
			stop()
			return fmt.Errorf("writer service: endpoint %s on %s: %w", e.name, e.subject, err)
		}
	}
	s.log.Info().Str("stream", s.w.stream.Name()).Str("put", s.subjects.Put()).Str("delete", s.subjects.Delete()).
		Str("id", svc.Info().ID).Msg("writer service started")

	select {
	case <-ctx.Done():
		stop()
		s.log.Info().Msg("writer service stopped")
		return nil
	case <-connClosed:
		stop()
		return fmt.Errorf("writer service: %w", nats.ErrConnectionClosed)
	}
}

// handlers answers the requests of one run of the service.
type handlers struct {
	w    *Writer
	pool *stream.Pool
	log  zerolog.Logger

	mu      sync.RWMutex
	stopped bool // no request is handed to the pool once it closes
}

// endpoint returns the handler of op's endpoint. Malformed requests are
// answered at once; writes run on the pool.
func (h *handlers) endpoint(op stream.Op) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		wr, err := stream.DecodeWriteRequest(op, nats.Header(req.Headers()), req.Data())
		if err != nil {
			h.reply(req, "", stream.WriteResult{}, err)
			return
		}
		h.mu.RLock()
		defer h.mu.RUnlock()
		if h.stopped {
			h.reply(req, wr.Key, stream.WriteResult{Key: wr.Key, Token: wr.Token},
				stream.Errorf(stream.ErrUnavailable, "writer is stopping"))
			return
		}
		h.pool.Handler(func(ctx context.Context, req micro.Request) {
			res, err := h.w.Write(ctx, wr)
			h.reply(req, wr.Key, res, err)
		}).Handle(req)
	})
}

// reply answers req and logs a failed write: problems of the writer or the
// stream as warnings, the client's own mistakes and lost conditions at debug.
func (h *handlers) reply(req micro.Request, key string, res stream.WriteResult, err error) {
	hdr, body := stream.EncodeWriteReply(res, err)
	if rerr := stream.Respond(req, hdr, body, err); rerr != nil {
		h.log.Warn().Err(rerr).Str("key", key).Msg("reply to write")
	}
	if err == nil {
		return
	}
	code := stream.Code(err)
	ev := h.log.Debug()
	if code == stream.CodeUnavailable || code == stream.CodeInternal {
		ev = h.log.Warn()
	}
	ev.Err(err).Str("key", key).Str("code", code).Msg("write failed")
}

// close hands no more requests to the pool, then cancels the writes in
// flight and waits for them.
func (h *handlers) close() {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.pool.Close()
}
