package reader

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/stream"
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
	DefaultMaxInFlight = stream.DefaultMaxInFlight
)

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

	nc       *nats.Conn
	subjects stream.Subjects
	r        *Reader
	log      zerolog.Logger
}

// NewService returns a service for r on nc under subjects.
func NewService(nc *nats.Conn, subjects stream.Subjects, r *Reader, logger zerolog.Logger) *Service {
	return &Service{
		MaxInFlight: DefaultMaxInFlight,
		nc:          nc,
		subjects:    subjects,
		r:           r,
		log:         logger.With().Str("replica", r.Replica()).Logger(),
	}
}

// Run registers the service and serves until ctx ends; it then stops the
// service, cancels the requests in flight (they are answered
// stream.ErrUnavailable) and waits for them.
func (s *Service) Run(ctx context.Context) error {
	id := s.r.Replica()
	if !validSubjectToken(id) {
		return fmt.Errorf("reader service: replica id %q: want a non-empty NATS subject token (no spaces, dots or wildcards)", id)
	}
	pool := stream.NewPool(ctx, s.MaxInFlight)
	defer pool.Close() // after the service has stopped
	svc, err := micro.AddService(s.nc, micro.Config{
		Name:        ServiceName,
		Version:     Version,
		Description: "Tidemark reads that honour a session token",
		Metadata:    map[string]string{"replica": id, "stream": s.r.cfg.Stream.ID()},
		QueueGroup:  QueueGroup,
	})
	if err != nil {
		return fmt.Errorf("reader service: %w", err)
	}
	defer func() {
		if err := svc.Stop(); err != nil {
			s.log.Warn().Err(err).Msg("stop reader service")
		}
	}()

	get, scan := s.getHandler(pool), s.scanHandler(pool)
	if err := svc.AddEndpoint("replica_get", get, micro.WithEndpointSubject(s.subjects.ReplicaGet(id)), micro.WithEndpointQueueGroupDisabled()); err != nil {
		return fmt.Errorf("reader service: %w", err)
	}
	if err := svc.AddEndpoint("replica_scan", scan, micro.WithEndpointSubject(s.subjects.ReplicaScan(id)), micro.WithEndpointQueueGroupDisabled()); err != nil {
		return fmt.Errorf("reader service: %w", err)
	}
	s.log.Info().Str("get", s.subjects.ReplicaGet(id)).Str("scan", s.subjects.ReplicaScan(id)).Msg("reader service started")

	joined := make(chan error, 1)
	go func() { joined <- s.join(ctx, svc, get, scan) }()
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
func (s *Service) join(ctx context.Context, svc micro.Service, get, scan micro.Handler) error {
	if s.Ready != nil {
		if err := s.Ready(ctx); err != nil {
			if ctx.Err() == nil {
				s.log.Warn().Err(err).Msg("replica not ready; not taking shared reads")
			}
			return nil
		}
	}
	if err := svc.AddEndpoint("get", get, micro.WithEndpointSubject(s.subjects.Get()), micro.WithEndpointQueueGroup(QueueGroup)); err != nil {
		return fmt.Errorf("reader service: %w", err)
	}
	if err := svc.AddEndpoint("scan", scan, micro.WithEndpointSubject(s.subjects.Scan()), micro.WithEndpointQueueGroup(QueueGroup)); err != nil {
		return fmt.Errorf("reader service: %w", err)
	}
	s.log.Info().Str("get", s.subjects.Get()).Str("scan", s.subjects.Scan()).Str("queue", QueueGroup).Msg("reader taking shared reads")
	return nil
}

// getCall is a decoded get request handed to the pool.
type getCall struct {
	micro.Request
	get stream.GetRequest
}

// scanCall is a decoded scan request handed to the pool.
type scanCall struct {
	micro.Request
	scan stream.ScanRequest
}

// getHandler decodes on micro's goroutine, answering bad requests at once,
// and serves the rest on the pool, where they may wait for their token.
func (s *Service) getHandler(pool *stream.Pool) micro.Handler {
	serve := pool.Handler(func(ctx context.Context, req micro.Request) {
		c := req.(*getCall)
		res, err := s.r.Get(ctx, c.get)
		err = s.shutdown(ctx, err)
		h, body := stream.EncodeGetReply(res, err)
		s.respond(c.Request, h, body, err)
	})
	return micro.HandlerFunc(func(req micro.Request) {
		g, err := stream.DecodeGetRequest(nats.Header(req.Headers()))
		if err != nil {
			h, body := stream.EncodeGetReply(stream.GetResult{}, err)
			s.respond(req, h, body, err)
			return
		}
		serve.Handle(&getCall{Request: req, get: g})
	})
}

// scanHandler is getHandler for scans.
func (s *Service) scanHandler(pool *stream.Pool) micro.Handler {
	serve := pool.Handler(func(ctx context.Context, req micro.Request) {
		c := req.(*scanCall)
		res, err := s.r.Scan(ctx, c.scan)
		err = s.shutdown(ctx, err)
		h, body := stream.EncodeScanReply(res, err)
		s.respond(c.Request, h, body, err)
	})
	return micro.HandlerFunc(func(req micro.Request) {
		sr, err := stream.DecodeScanRequest(nats.Header(req.Headers()), req.Data())
		if err != nil {
			h, body := stream.EncodeScanReply(stream.ScanResult{}, err)
			s.respond(req, h, body, err)
			return
		}
		serve.Handle(&scanCall{Request: req, scan: sr})
	})
}

// shutdown turns a read cut short by the service stopping into
// stream.ErrUnavailable, so that the client retries elsewhere.
func (s *Service) shutdown(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return stream.Errorf(stream.ErrUnavailable, "replica %s is shutting down", s.r.Replica())
	}
	return err
}

func (s *Service) respond(req micro.Request, h nats.Header, body []byte, err error) {
	if err := stream.Respond(req, h, body, err); err != nil {
		s.log.Debug().Err(err).Str("subject", req.Subject()).Msg("respond")
	}
}

// validSubjectToken reports whether id can be one token of a NATS subject.
func validSubjectToken(id string) bool {
	return id != "" && !strings.ContainsAny(id, ". \t\r\n*>")
}
