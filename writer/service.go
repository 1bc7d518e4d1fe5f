package writer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"
)

// Identity of the writer's micro service.
const (
	// ServiceName is the micro service name, as `nats micro ls` lists it.
	ServiceName = "tidemark-writer"
	// QueueGroup is the queue group of the writer endpoints: one writer
	// answers each request.
	QueueGroup = "tidemark-writer"
	// Version is the service version the micro service announces: the
	// version of the protocol its endpoints speak.
	Version = "1.0.0"
	// Description is the service description `nats micro info` shows.
	Description = "Tidemark writes: put and delete; a reply carries the revision and the session token"
)

// Endpoint names of the writer service.
const (
	EndpointPut    = "put"
	EndpointDelete = "delete"
	EndpointTxn    = "txn"
)

// endpointMetadata describes each endpoint's request and reply, for `nats
// micro info` and for callers in any language. Values stay short: natscli
// cuts long ones.
var endpointMetadata = map[string]map[string]string{
	EndpointPut: writeMetadata(map[string]string{
		"description":  "Set a key to the request body",
		"request.body": "the value, up to max_value_bytes",
		"request.if":   "header If-Match: N (only at revision N) or If-None-Match: *",
		"request.ttl":  "header Tidemark-TTL: 30s, the key then expires (1s or more)",
	}),
	EndpointDelete: writeMetadata(map[string]string{
		"description":  "Delete a key",
		"request.body": "empty",
		"request.if":   "header If-Match: N (only at revision N)",
	}),
	EndpointTxn: {
		"description":      "Write several keys atomically: all or nothing",
		"request.body":     `{"ops":[{"op":"put|delete","key","value","if_revision","if_absent"}]}`,
		"request.token":    "header Tidemark-Token: the session token",
		"request.write_id": "header Tidemark-Write-Id: a retry is stored once",
		"request.session":  "headers Tidemark-Session, -Session-Seq: one step of the session",
		"reply.body":       `{"revision":N,"token":"...","ops":[{"key","revision"}]}`,
		"errors":           `header Nats-Service-Error-Code; Tidemark-Txn-Op: the failing op`,
		"errors.write":     "revision_mismatch write_id_reused invalid_request value_too_large",
	},
}

// writeMetadata adds what put and delete share to m.
func writeMetadata(m map[string]string) map[string]string {
	for k, v := range map[string]string{
		"request.key":      "header Tidemark-Key: the key, percent-encoded (required)",
		"request.token":    "header Tidemark-Token: the session token",
		"request.write_id": "header Tidemark-Write-Id: a retry within 2m is stored once",
		"request.session":  "headers Tidemark-Session, -Session-Seq: the session's write order",
		"reply.body":       `{"key":"...","revision":N,"token":"..."}`,
		"reply.headers":    "Tidemark-Token (the session's new token), Tidemark-Revision",
		"errors":           `header Nats-Service-Error-Code; body {"error":{"code","message"}}`,
		"errors.input":     "invalid_key invalid_token invalid_request value_too_large",
		"errors.token":     "token_stream_mismatch token_from_future",
		"errors.write":     "revision_mismatch write_out_of_order unavailable internal",
	} {
		m[k] = v
	}
	return m
}

// Service serves a Writer as the NATS micro service "tidemark-writer", with
// the endpoints put and delete on the subjects of wire.Subjects.
type Service struct {
	// MaxInFlight bounds the writes handled at once; set it before Run.
	MaxInFlight int

	nc       *nats.Conn
	subjects wire.Subjects
	w        *Writer
	log      zerolog.Logger
}

// NewService returns a service for w on nc.
func NewService(nc *nats.Conn, subjects wire.Subjects, w *Writer, logger zerolog.Logger) *Service {
	return &Service{MaxInFlight: wire.DefaultMaxInFlight, nc: nc, subjects: subjects, w: w, log: logger}
}

// Run registers the service and serves requests until ctx ends; then it
// stops the service, cancels the writes in flight and waits for them to be
// answered. It returns an error when the service cannot be registered, or
// when the NATS connection is closed under it.
func (s *Service) Run(ctx context.Context) error {
	h := &handlers{
		w:    s.w,
		pool: wire.NewPool(context.WithoutCancel(ctx), s.MaxInFlight),
		// A failing stream fails every write: summarise.
		log: s.log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second}),
	}
	connClosed := make(chan struct{})
	var once sync.Once
	svc, err := micro.AddService(s.nc, micro.Config{
		Name:        ServiceName,
		Version:     Version,
		Description: Description,
		Metadata: map[string]string{
			"stream":          s.w.stream.Name(),
			"stream_id":       s.w.stream.ID(),
			"max_value_bytes": strconv.Itoa(s.w.MaxValueBytes()),
			"api":             strings.TrimSuffix(s.subjects.Put(), "."+EndpointPut),
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
		op            api.Op
	}{
		{EndpointPut, s.subjects.Put(), api.OpPut},
		{EndpointDelete, s.subjects.Delete(), api.OpDelete},
	} {
		err := svc.AddEndpoint(e.name, h.endpoint(e.op), micro.WithEndpointSubject(e.subject),
			micro.WithEndpointQueueGroup(QueueGroup), micro.WithEndpointMetadata(endpointMetadata[e.name]))
		if err != nil {
			stop()
			return fmt.Errorf("writer service: endpoint %s on %s: %w", e.name, e.subject, err)
		}
	}
	err = svc.AddEndpoint(EndpointTxn, h.txn(), micro.WithEndpointSubject(s.subjects.Txn()),
		micro.WithEndpointQueueGroup(QueueGroup), micro.WithEndpointMetadata(endpointMetadata[EndpointTxn]))
	if err != nil {
		stop()
		return fmt.Errorf("writer service: endpoint %s on %s: %w", EndpointTxn, s.subjects.Txn(), err)
	}
	s.log.Info().Str("stream", s.w.stream.Name()).Str("put", s.subjects.Put()).Str("delete", s.subjects.Delete()).Str("txn", s.subjects.Txn()).
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
	pool *wire.Pool
	log  zerolog.Logger

	mu      sync.RWMutex
	stopped bool // no request is handed to the pool once it closes
}

// endpoint returns the handler of op's endpoint. Malformed requests are
// answered at once; writes run on the pool.
func (h *handlers) endpoint(op api.Op) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		wr, err := wire.DecodeWriteRequest(op, nats.Header(req.Headers()), req.Data())
		if err != nil {
			h.reply(req, "", api.WriteResult{}, err)
			return
		}
		h.mu.RLock()
		defer h.mu.RUnlock()
		if h.stopped {
			h.reply(req, wr.Key, api.WriteResult{Key: wr.Key, Token: wr.Token},
				api.Errorf(api.ErrUnavailable, "writer is stopping"))
			return
		}
		h.pool.Handler(func(ctx context.Context, req micro.Request) {
			res, err := h.w.Write(ctx, wr)
			h.reply(req, wr.Key, res, err)
		}).Handle(req)
	})
}

// txn returns the handler of the transaction endpoint. Malformed requests
// are answered at once; transactions run on the pool.
func (h *handlers) txn() micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		tr, err := wire.DecodeTxnRequest(nats.Header(req.Headers()), req.Data())
		if err != nil {
			h.replyTxn(req, api.TxnResult{}, err)
			return
		}
		h.mu.RLock()
		defer h.mu.RUnlock()
		if h.stopped {
			h.replyTxn(req, api.TxnResult{Token: tr.Token}, api.Errorf(api.ErrUnavailable, "writer is stopping"))
			return
		}
		h.pool.Handler(func(ctx context.Context, req micro.Request) {
			res, err := h.w.Txn(ctx, tr)
			h.replyTxn(req, res, err)
		}).Handle(req)
	})
}

// replyTxn answers a transaction request, logging a failure as reply does.
func (h *handlers) replyTxn(req micro.Request, res api.TxnResult, err error) {
	hdr, body := wire.EncodeTxnReply(res, err)
	if rerr := wire.Respond(req, hdr, body, err); rerr != nil {
		h.log.Warn().Err(rerr).Msg("reply to transaction")
	}
	h.logFailed(err, "", "transaction failed")
}

// reply answers req and logs a failed write: problems of the writer or the
// stream as warnings, the client's own mistakes and lost conditions at debug.
func (h *handlers) reply(req micro.Request, key string, res api.WriteResult, err error) {
	hdr, body := wire.EncodeWriteReply(res, err)
	if rerr := wire.Respond(req, hdr, body, err); rerr != nil {
		h.log.Warn().Err(rerr).Str("key", key).Msg("reply to write")
	}
	h.logFailed(err, key, "write failed")
}

// logFailed logs a failed write of key ("": a transaction), if err is
// not nil: problems of the writer or the stream as warnings, the client's
// own mistakes and lost conditions at debug.
func (h *handlers) logFailed(err error, key, msg string) {
	if err == nil {
		return
	}
	code := api.Code(err)
	ev := h.log.Debug()
	if code == api.CodeUnavailable || code == api.CodeInternal {
		ev = h.log.Warn()
	}
	if key != "" {
		ev = ev.Str("key", key)
	}
	ev.Err(err).Str("code", code).Msg(msg)
}

// close hands no more requests to the pool, then cancels the writes in
// flight and waits for them.
func (h *handlers) close() {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.pool.Close()
}

// Collector returns the Prometheus metrics of the service's writer.
func (s *Service) Collector() prometheus.Collector { return s.w.Collector() }
