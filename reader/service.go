package reader

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"
)

// Service identity and defaults.
const (
	// ServiceName is the micro service name, as `nats micro ls` shows it.
	ServiceName = "tidemark-reader"
	// Version is the service version.
	Version = "1.0.0"
	// QueueGroup is the queue group of the shared endpoints: any one
	// replica answers.
	QueueGroup = "tidemark-reader"
	// DefaultMaxInFlight bounds the requests a service handles at once.
	DefaultMaxInFlight = wire.DefaultMaxInFlight
	// Description is the service description `nats micro info` shows.
	Description = "Tidemark reads: get and scan wait until the replica has applied the session token"
)

// endpointMetadata describes an endpoint's request and reply, for `nats
// micro info` and for callers in any language; whose says which replicas
// serve it. Values stay short: natscli cuts long ones.
func endpointMetadata(scan bool, whose string) map[string]string {
	m := map[string]string{
		"request.token":       "header Tidemark-Token: wait until the replica has applied it",
		"request.wait":        "header Tidemark-Wait: how long to wait for it (e.g. 2s)",
		"request.consistency": "header Tidemark-Consistency: session (default), strong, eventual",
		"reply.headers":       "Tidemark-Token (the session's new token), Tidemark-Replica",
		"reply.served_by":     "Tidemark-Applied, Tidemark-Waited, Tidemark-Stream-Last",
		"errors":              `header Nats-Service-Error-Code; body {"error":{"code","message"}}`,
		"errors.input":        "invalid_key invalid_token invalid_request",
		"errors.token":        "token_stream_mismatch token_from_future token_wait_timeout",
		"errors.server":       "unavailable internal",
	}
	if scan {
		m["description"] = "Scan a page of keys by prefix, " + whose
		m["request.body"] = `{"prefix":"...","after":"...","limit":N}, all optional`
		m["reply.body"] = `{"items":[{"key","value":"<base64>","revision"}],"next","token"}`
		m["reply.next"] = `the after of the next page; "" only on the last page`
		m["reply.size"] = "at most limit keys, fewer when their values would not fit one reply"
		return m
	}
	m["description"] = "Read one key, " + whose
	m["request.key"] = "header Tidemark-Key: the key, percent-encoded (required)"
	m["request.body"] = "empty"
	m["request.session"] = "header Tidemark-Session: also the session's highest applied number"
	m["reply.body"] = "the value; header Tidemark-Revision"
	m["reply.session"] = "header Tidemark-Session-Seq, when asked and known"
	m["errors.read"] = "not_found (for a deleted key, with its Tidemark-Revision)"
	return m
}

// Service serves a Reader over NATS: the shared get and scan endpoints, in
// a queue group that any one replica answers, once the replica is ready;
// and this replica's own endpoints at once.
type Service struct {
	// Ready, when set, is waited on before the service joins the queue
	// group of the shared endpoints, so that a catching-up replica takes no
	// anonymous reads; the replicator's WaitReady fits. If it fails, the
	// service never joins. Set it before Run.
	Ready func(ctx context.Context) error
	// MaxInFlight bounds the requests handled at once; set it before Run.
	MaxInFlight int
	// WatchProgress is how often an idle watch gets a progress event when
	// its request does not say; api.DefaultWatchProgress by default.
	WatchProgress time.Duration
	// WatchUnacked is the most events sent to a watcher beyond what it
	// acknowledged (DefaultWatchUnacked); WatchClientTimeout is how long a
	// watch is kept whose watcher sends nothing (DefaultWatchClientTimeout).
	WatchUnacked       int
	WatchClientTimeout time.Duration

	watches watches

	nc       *nats.Conn
	subjects wire.Subjects
	r        *Reader
	log      zerolog.Logger
}

// NewService returns a service for r on nc under subjects.
func NewService(nc *nats.Conn, subjects wire.Subjects, r *Reader, logger zerolog.Logger) *Service {
	s := &Service{
		MaxInFlight:        DefaultMaxInFlight,
		WatchProgress:      api.DefaultWatchProgress,
		WatchUnacked:       DefaultWatchUnacked,
		WatchClientTimeout: DefaultWatchClientTimeout,
		nc:                 nc,
		subjects:           subjects,
		r:                  r,
		log:                logger.With().Str("replica", r.Replica()).Logger(),
	}
	s.watches.s = s
	return s
}

// Run registers the service and serves until ctx ends; it then stops the
// service, cancels the requests in flight (they are answered
// api.ErrUnavailable) and waits for them.
func (s *Service) Run(ctx context.Context) error {
	id := s.r.Replica()
	if !api.ValidID(id) {
		return fmt.Errorf("reader service: replica id %q: want 1 to %d letters, digits, '-' or '_'", id, api.MaxIDLen)
	}
	defer s.watches.wg.Wait() // the watches end with ctx, after the service has stopped
	pool := wire.NewPool(ctx, s.MaxInFlight)
	defer pool.Close() // after the service has stopped
	svc, err := micro.AddService(s.nc, micro.Config{
		Name:        ServiceName,
		Version:     Version,
		Description: Description,
		Metadata: map[string]string{
			"replica":   id,
			"stream":    s.r.cfg.Stream.Name(),
			"stream_id": s.r.cfg.Stream.ID(),
			"api":       strings.TrimSuffix(s.subjects.Get(), ".get"),
		},
		QueueGroup: QueueGroup,
	})
	if err != nil {
		return fmt.Errorf("reader service: %w", err)
	}
	defer func() {
		if err := svc.Stop(); err != nil {
			s.log.Warn().Err(err).Msg("stop reader service")
		}
	}()

	get, scan := handler(s, pool, s.getEndpoint()), handler(s, pool, s.scanEndpoint())
	own := "this replica only, even catching up"
	if err := svc.AddEndpoint("replica_get", get, micro.WithEndpointSubject(s.subjects.ReplicaGet(id)), micro.WithEndpointQueueGroupDisabled(),
		micro.WithEndpointMetadata(endpointMetadata(false, own))); err != nil {
		return fmt.Errorf("reader service: %w", err)
	}
	if err := svc.AddEndpoint("replica_scan", scan, micro.WithEndpointSubject(s.subjects.ReplicaScan(id)), micro.WithEndpointQueueGroupDisabled(),
		micro.WithEndpointMetadata(endpointMetadata(true, own))); err != nil {
		return fmt.Errorf("reader service: %w", err)
	}
	watch := s.watches.handler(ctx)
	if err := s.addWatchEndpoint(svc, "replica_watch", s.subjects.ReplicaWatch(id), false, watch, own); err != nil {
		return err
	}
	s.log.Info().Str("get", s.subjects.ReplicaGet(id)).Str("scan", s.subjects.ReplicaScan(id)).Msg("reader service started")

	joined := make(chan error, 1)
	go func() { joined <- s.join(ctx, svc, get, scan, watch) }()
	select {
	case <-ctx.Done():
		return <-joined
	case err := <-joined:
		if err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

// join adds the shared endpoints once the store is ready.
func (s *Service) join(ctx context.Context, svc micro.Service, get, scan, watch micro.Handler) error {
	if s.Ready != nil {
		if err := s.Ready(ctx); err != nil {
			if ctx.Err() == nil {
				s.log.Warn().Err(err).Msg("replica not ready; not taking shared reads")
			}
			return nil
		}
	}
	shared := "any caught-up replica"
	if err := svc.AddEndpoint("get", get, micro.WithEndpointSubject(s.subjects.Get()), micro.WithEndpointQueueGroup(QueueGroup),
		micro.WithEndpointMetadata(endpointMetadata(false, shared))); err != nil {
		return fmt.Errorf("reader service: %w", err)
	}
	if err := svc.AddEndpoint("scan", scan, micro.WithEndpointSubject(s.subjects.Scan()), micro.WithEndpointQueueGroup(QueueGroup),
		micro.WithEndpointMetadata(endpointMetadata(true, shared))); err != nil {
		return fmt.Errorf("reader service: %w", err)
	}
	if err := s.addWatchEndpoint(svc, "watch", s.subjects.Watch(), true, watch, shared); err != nil {
		return err
	}
	s.log.Info().Str("get", s.subjects.Get()).Str("scan", s.subjects.Scan()).Str("queue", QueueGroup).Msg("reader taking shared reads")
	return nil
}

// endpoint is how the service serves one kind of read (get or scan) over
// NATS: Req is its request, Res its result.
type endpoint[Req, Res any] struct {
	decode func(h nats.Header, data []byte) (Req, error)
	read   func(ctx context.Context, req Req) (Res, error)
	encode func(res Res, err error) (nats.Header, []byte)
	// atOnce reports whether a request needs no wait and so may be served
	// on micro's goroutine; nil sends every request to the pool.
	atOnce func(req Req) bool
	// mayNotFit reports whether a successful reply might be over the
	// max_payload (a value stored under a larger limit than this
	// server's), and describes it for the error.
	mayNotFit func(res Res) bool
	describe  func(req Req, res Res) string
}

// call is a decoded request handed to the pool.
type call[Req any] struct {
	micro.Request
	req Req
}

// getEndpoint serves gets; a get the replica can answer without waiting
// (its token applied, or eventual) is served on micro's goroutine.
func (s *Service) getEndpoint() endpoint[api.GetRequest, api.GetResult] {
	return endpoint[api.GetRequest, api.GetResult]{
		decode:    func(h nats.Header, _ []byte) (api.GetRequest, error) { return wire.DecodeGetRequest(h) },
		read:      s.r.Get,
		encode:    wire.EncodeGetReply,
		atOnce:    func(g api.GetRequest) bool { return s.r.answersAtOnce(g.ReadSpec) },
		mayNotFit: func(api.GetResult) bool { return true },
		describe:  func(g api.GetRequest, _ api.GetResult) string { return fmt.Sprintf("the reply to a get of %q", g.Key) },
	}
}

// scanEndpoint serves scans, every one in the pool.
func (s *Service) scanEndpoint() endpoint[api.ScanRequest, api.ScanResult] {
	return endpoint[api.ScanRequest, api.ScanResult]{
		decode: wire.DecodeScanRequest,
		read:   s.r.Scan,
		encode: wire.EncodeScanReply,
		// Only a page of one value stored under a larger limit.
		mayNotFit: func(res api.ScanResult) bool { return len(res.Items) > 0 },
		describe: func(_ api.ScanRequest, res api.ScanResult) string {
			return fmt.Sprintf("a scan page of %q", res.Items[0].Key)
		},
	}
}

// handler decodes on micro's goroutine, answering bad requests at once.
// A request e.atOnce accepts is served there too, sparing a goroutine; the
// rest go to the pool, where they may wait for their token.
func handler[Req, Res any](s *Service, pool *wire.Pool, e endpoint[Req, Res]) micro.Handler {
	serve := func(ctx context.Context, req micro.Request, r Req) {
		res, err := e.read(ctx, r)
		err = s.shutdown(ctx, err)
		h, body := e.encode(res, err)
		if err == nil && e.mayNotFit(res) {
			if err = wire.ReplyFits(s.r.MaxPayload(), h, body, func() string { return e.describe(r, res) }); err != nil {
				h, body = e.encode(res, err)
			}
		}
		s.respond(req, h, body, err)
	}
	pooled := pool.Handler(func(ctx context.Context, req micro.Request) {
		c := req.(*call[Req])
		serve(ctx, c.Request, c.req)
	})
	return micro.HandlerFunc(func(req micro.Request) {
		r, err := e.decode(nats.Header(req.Headers()), req.Data())
		if err != nil {
			var zero Res
			h, body := e.encode(zero, err)
			s.respond(req, h, body, err)
			return
		}
		if e.atOnce != nil && e.atOnce(r) && pool.Do(func(ctx context.Context) { serve(ctx, req, r) }) {
			return
		}
		pooled.Handle(&call[Req]{Request: req, req: r})
	})
}

// shutdown turns a read cut short by the service stopping into
// api.ErrUnavailable, so that the client retries elsewhere.
func (s *Service) shutdown(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return api.Errorf(api.ErrUnavailable, "replica %s is shutting down", s.r.Replica())
	}
	return err
}

func (s *Service) respond(req micro.Request, h nats.Header, body []byte, err error) {
	if err := wire.Respond(req, h, body, err); err != nil {
		s.log.Debug().Err(err).Str("subject", req.Subject()).Msg("respond")
	}
}
