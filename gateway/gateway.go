package gateway

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Defaults of the gateway.
const (
	DefaultAddr = ":8080"
	// DefaultReplyMargin is how much longer than the read's wait bound the
	// gateway waits for a replica's reply, so that the replica's own
	// token_wait_timeout arrives before the gateway gives up.
	DefaultReplyMargin = 2 * time.Second
	// DefaultWriteTimeout bounds a write, retries included.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMaxHeaderBytes bounds request headers.
	DefaultMaxHeaderBytes = 64 << 10
)

// Writer publishes writes. The NATS client transport and the writer itself
// both satisfy it.
type Writer interface {
	Write(ctx context.Context, req api.WriteRequest) (api.WriteResult, error)
}

// Reader serves reads from replicas. The NATS client transport satisfies it.
type Reader interface {
	Get(ctx context.Context, req api.GetRequest) (api.GetResult, error)
	Scan(ctx context.Context, req api.ScanRequest) (api.ScanResult, error)
}

// Config configures a Gateway.
type Config struct {
	// Addr is the HTTP listen address.
	Addr string
	// Writer and Reader reach the writers and replicas.
	Writer Writer
	Reader Reader
	// MaxValueBytes bounds a value. A Writer with a ValueLimit method (the
	// writer, the NATS client transport) may bound it further, to what the
	// NATS server's max_payload can carry.
	MaxValueBytes int
	// DefaultWait is a read's wait bound when the request sets none;
	// MaxWait caps what a request may ask for.
	DefaultWait, MaxWait time.Duration
	// Watcher serves watches (GET /v1/watch); nil uses the Reader when it
	// is one (the NATS client transport is).
	Watcher Watcher
	// WatchProgress is how often an idle watch gets a progress event;
	// api.DefaultWatchProgress when 0.
	WatchProgress time.Duration
	// Ready reports whether the gateway can serve (nil) or why not.
	Ready func() error
	// Signer, when set, signs the tokens handed to clients and rejects
	// tokens it did not sign (see api.Signer).
	Signer *api.Signer
	// Affinity pins a session's reads to the replica that served its first
	// read (cookie tidemark_replica) while that replica answers, as sticky
	// sessions would. Tokens still apply.
	Affinity bool
	// AccessLog logs one line per HTTP request (see accessLog): method,
	// path, status, bytes, duration, the replica that served it and the
	// token's sequence.
	AccessLog bool
	// Monitor, when set, gives the status (GET /v1/status, /status) the
	// stream, the replicas and the writers; without it the status has only
	// what the gateway observes itself.
	Monitor *Monitor
	// Registerer receives the gateway's metrics; nil uses a private registry.
	Registerer prometheus.Registerer
	// Gatherer serves /metrics; nil serves the private registry.
	Gatherer prometheus.Gatherer
	// Logger receives the gateway's log lines.
	Logger zerolog.Logger
}

// Gateway serves the HTTP API.
type Gateway struct {
	cfg     Config
	log     zerolog.Logger
	metrics *metrics
	handler http.Handler

	mu   sync.Mutex
	addr net.Addr

	// closing ends when the gateway shuts down, which ends its watches.
	closing context.Context
	close   context.CancelFunc
}

// New returns a gateway with defaults filled in; Run starts it.
func New(cfg Config) *Gateway {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.MaxValueBytes <= 0 {
		cfg.MaxValueBytes = api.DefaultMaxValueBytes
	}
	if cfg.DefaultWait <= 0 {
		cfg.DefaultWait = api.DefaultWait
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = api.DefaultMaxWait
	}
	if cfg.Ready == nil {
		cfg.Ready = func() error { return nil }
	}
	if cfg.WatchProgress <= 0 {
		cfg.WatchProgress = api.DefaultWatchProgress
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger}
	g.closing, g.close = context.WithCancel(context.Background())
	g.metrics = newMetrics(cfg.Registerer, cfg.Gatherer)
	g.handler = g.routes()
	if cfg.AccessLog {
		g.handler = g.accessLog(g.handler)
	}
	return g
}

// Handler returns the gateway's HTTP handler, for tests and embedding.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Addr returns the address the gateway listens on once Run has started, or nil.
func (g *Gateway) Addr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addr
}

// Run listens and serves until ctx ends, then shuts down gracefully,
// letting requests in flight finish.
func (g *Gateway) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("gateway listen: %w", err)
	}
	return g.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	g.mu.Lock()
	g.addr = ln.Addr()
	g.mu.Unlock()
	srv := &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		ErrorLog:          nil,
	}
	srv.RegisterOnShutdown(g.close) // watches would hold Shutdown up
	g.log.Info().Str("addr", ln.Addr().String()).Msg("gateway listening")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("gateway serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), g.cfg.MaxWait+DefaultReplyMargin)
	defer cancel()
	err := srv.Shutdown(shutCtx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("gateway shutdown: %w", err)
	}
	return nil
}
