// Package stack composes a whole Tidemark pipeline in one process, on a
// NATS connection and a stream that the caller provides: the writer and its
// NATS service, the replicas (each over its own Badger directory, applying
// the stream and serving reads over NATS), the read router, the status
// monitor and the HTTP gateway. `tidemark dev`, the tests and the benchmark
// all run it; the separate roles (`tidemark writer`, `replica`, `gateway`)
// run one part each.
package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/gateway"
	"github.com/tidemark/tidemark/replica"
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/wire"
	"github.com/tidemark/tidemark/writer"
)

// Config is what a Stack is made of.
type Config struct {
	// Conn and Stream are the NATS connection and the stream everything
	// runs on; Subjects are the services' subjects.
	Conn     *nats.Conn
	Stream   *stream.Stream
	Subjects wire.Subjects
	// Logger receives every part's logs (the writer's and the gateway's
	// with a role field); the zero value discards them.
	Logger zerolog.Logger

	// Writer configures the writer; the stack sets its Stream and Logger,
	// and its Records (strong reads from the replicas over NATS) when unset.
	Writer writer.Config
	// Replicas configure the replicas, one each: ID and Dir are required;
	// the stack sets Stream, Conn, Subjects and Logger.
	Replicas []replica.Config
	// Gateway configures the gateway. The stack sets its Logger, and its
	// Writer, Reader and Monitor when unset.
	Gateway gateway.Config
	// Local sends the gateway's writes and reads to the writer and
	// replicas of this process directly rather than over NATS.
	Local bool
	// NoRouter sends reads over NATS to the shared subject (any ready
	// replica) instead of routing them by the replicas' advertised progress.
	NoRouter bool
}

// Front is the HTTP front of a pipeline, what the gateway role runs: the
// gateway, the NATS transport it writes and reads through, the router of
// its reads and the monitor of its status page.
type Front struct {
	// Transport reaches the writer and the replicas over NATS; Router, when
	// set, routes its reads.
	Transport *client.NATS
	Router    *client.Router
	// Monitor feeds the gateway's status page; Gateway serves HTTP.
	Monitor *gateway.Monitor
	Gateway *gateway.Gateway
}

// NewFront returns the front of the pipeline on conn whose stream is named
// streamName. The gateway writes, reads and watches over NATS unless gc
// sets its Writer, Reader or Watcher; its Monitor is made unless gc sets one; noRouter sends
// reads to the shared subject (any ready replica) instead of routing them
// by the replicas' advertised progress.
func NewFront(conn *nats.Conn, streamName string, subjects wire.Subjects, gc gateway.Config, noRouter bool) (*Front, error) {
	f := &Front{Transport: client.NewNATS(conn, subjects)}
	if !noRouter {
		router, err := client.NewRouter(conn, subjects)
		if err != nil {
			return nil, fmt.Errorf("read router: %w", err)
		}
		f.Router, f.Transport.Router = router, router
	}
	if gc.Monitor == nil {
		f.Monitor = gateway.NewMonitor(gateway.MonitorConfig{Conn: conn, Stream: streamName,
			Subjects: subjects, WriterService: writer.ServiceName})
		if err := f.Monitor.Open(); err != nil {
			_ = f.Close()
			return nil, err
		}
		gc.Monitor = f.Monitor
	}
	if gc.Writer == nil {
		gc.Writer = f.Transport
	}
	if gc.Reader == nil {
		gc.Reader = f.Transport
	}
	if gc.Watcher == nil {
		gc.Watcher = f.Transport // watches go to the replicas over NATS, in-process ones too
	}
	f.Gateway = gateway.New(gc)
	return f, nil
}

// Close stops the router and the monitor.
func (f *Front) Close() error {
	var errs []error
	if f.Router != nil {
		if err := f.Router.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close read router: %w", err))
		}
	}
	if f.Monitor != nil {
		if err := f.Monitor.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close monitor: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Stack is a running pipeline.
type Stack struct {
	// Writer is the writer behind WriterService.
	Writer        *writer.Writer
	WriterService *writer.Service
	// Replicas are the replicas, in the order of Config.Replicas.
	Replicas []*replica.Replica
	// Front is the gateway with its transport, router and monitor; nil
	// until Start has made it.
	*Front

	cancel context.CancelFunc
	errs   chan error // the first error of a part that stopped on its own

	ctx     context.Context           // what the parts run under
	configs map[string]replica.Config // by replica id, for StartReplica
	mu      sync.Mutex
	running map[string]*running // by replica id
	wg      sync.WaitGroup
	closed  bool
}

// running is a replica that runs.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

// Start opens every part and runs the writer service and the replicas
// until Close. It does not wait for the replicas to be ready (WaitReady)
// and serves no HTTP (Serve).
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	if cfg.Conn == nil || cfg.Stream == nil {
		return nil, errors.New("stack: a NATS connection and a stream are required")
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Stack{cancel: cancel, errs: make(chan error, 1+len(cfg.Replicas)), running: map[string]*running{},
		ctx: rctx, configs: map[string]replica.Config{}}

	wc := cfg.Writer
	wc.Stream = cfg.Stream
	wc.Logger = cfg.Logger.With().Str("role", "writer").Logger()
	if wc.Records == nil {
		wc.Records = client.NewNATS(cfg.Conn, cfg.Subjects)
	}
	s.Writer = writer.New(wc)
	s.WriterService = writer.NewService(cfg.Conn, cfg.Subjects, s.Writer, wc.Logger)
	s.goRun("writer service", func() error { return s.WriterService.Run(rctx) })

	for _, rc := range cfg.Replicas {
		rc.Stream, rc.Conn, rc.Subjects = cfg.Stream, cfg.Conn, cfg.Subjects
		rc.Logger = cfg.Logger
		s.configs[rc.ID] = rc
		r, err := s.startReplica(rctx, rc)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.Replicas = append(s.Replicas, r)
	}

	gc := cfg.Gateway
	gc.Logger = cfg.Logger.With().Str("role", "gateway").Logger()
	if cfg.Local {
		if gc.Writer == nil {
			gc.Writer = s.Writer
		}
		if gc.Reader == nil {
			gc.Reader = replica.NewLocal(s.Replicas...)
		}
	}
	front, err := NewFront(cfg.Conn, cfg.Stream.Name(), cfg.Subjects, gc, cfg.NoRouter)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	s.Front = front
	return s, nil
}

// goRun runs fn until it returns; an error it returns before Close is the
// stack's (Err).
func (s *Stack) goRun(what string, fn func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
			select {
			case s.errs <- fmt.Errorf("%s: %w", what, err):
			default:
			}
		}
	}()
}

func (s *Stack) startReplica(ctx context.Context, rc replica.Config) (*replica.Replica, error) {
	r := replica.New(rc)
	if err := r.Open(); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	run := &running{cancel: cancel, done: make(chan error, 1)}
	s.mu.Lock()
	s.running[rc.ID] = run
	s.mu.Unlock()
	s.goRun("replica "+rc.ID, func() error {
		err := r.Run(rctx)
		run.done <- err
		return err
	})
	return r, nil
}

// Err delivers the first error of a part that stopped on its own.
func (s *Stack) Err() <-chan error { return s.errs }

// Replica returns the replica with id, or nil.
func (s *Stack) Replica(id string) *replica.Replica {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.Replicas {
		if r.ID() == id {
			return r
		}
	}
	return nil
}

// Ready reports whether every replica still running is ready, or why not.
func (s *Stack) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.Replicas {
		if _, ok := s.running[r.ID()]; !ok {
			continue
		}
		if err := r.Ready(); err != nil {
			return fmt.Errorf("replica %s: %w", r.ID(), err)
		}
	}
	return nil
}

// WaitReady waits until every replica has caught up and serves reads.
func (s *Stack) WaitReady(ctx context.Context) error {
	for _, r := range s.Replicas {
		if err := r.WaitReady(ctx); err != nil {
			return fmt.Errorf("replica %s not ready: %w", r.ID(), err)
		}
	}
	return nil
}

// Serve serves the gateway on ln until ctx ends; it drains requests in
// flight before it returns.
func (s *Stack) Serve(ctx context.Context, ln net.Listener) error { return s.Gateway.Serve(ctx, ln) }

// StopReplica stops replica id as if its process ended: it stops serving
// and applying, and its Badger directory is closed. The rest goes on.
func (s *Stack) StopReplica(id string) error {
	s.mu.Lock()
	run, ok := s.running[id]
	delete(s.running, id)
	s.mu.Unlock()
	r := s.Replica(id)
	if !ok || r == nil {
		return fmt.Errorf("replica %q is not running", id)
	}
	run.cancel()
	err := <-run.done
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if cerr := r.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close replica %s: %w", id, cerr)
	}
	return err
}

// StartReplica starts again replica id, which StopReplica stopped, over
// its directory, as a new process would.
func (s *Stack) StartReplica(id string) error {
	s.mu.Lock()
	_, running := s.running[id]
	rc, known := s.configs[id]
	closed := s.closed
	s.mu.Unlock()
	switch {
	case !known:
		return fmt.Errorf("no replica %q", id)
	case running || closed:
		return fmt.Errorf("replica %q is running, or the stack is closed", id)
	}
	r, err := s.startReplica(s.ctx, rc)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for i := range s.Replicas {
		if s.Replicas[i].ID() == id {
			s.Replicas[i] = r
		}
	}
	s.mu.Unlock()
	return nil
}

// Close stops the writer service and the replicas, waits for them, and
// closes the replicas' stores, the router and the monitor. It returns the
// first error of closing them.
func (s *Stack) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	open := s.running // the replicas StopReplica has not closed
	s.running = map[string]*running{}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	var errs []error
	for _, r := range s.Replicas {
		if _, ok := open[r.ID()]; !ok {
			continue
		}
		if err := r.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close replica %s: %w", r.ID(), err))
		}
	}
	if s.Front != nil {
		if err := s.Front.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
