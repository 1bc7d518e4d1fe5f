// Package stacktest runs a whole Tidemark pipeline in one test process, with
// real components: an embedded NATS server, the writer service, replicas
// over Badger in temporary directories serving over NATS, and the HTTP
// gateway on a real loopback listener. Tests reach into it for the test
// hooks (pausing a replica's apply) and talk to it as clients would.
package stacktest

import (
	"github.com/tidemark/tidemark/internal/natsserver"

	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/gateway"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replica"
	"github.com/tidemark/tidemark/writer"
)

// Options shape a Stack; the zero value is two replicas with defaults.
type Options struct {
	// Replicas is the number of replicas (default 2).
	Replicas int
	// MaxValueBytes bounds values (default the gateway's).
	MaxValueBytes int
	// DefaultWait and MaxWait bound token waits (defaults the gateway's).
	DefaultWait, MaxWait time.Duration
	// Logger receives the components' logs; the zero value discards them.
	Logger zerolog.Logger
	// Signer signs the gateway's tokens; Affinity turns on sticky sessions.
	Signer   *api.Signer
	Affinity bool
	// MaxPayload is the NATS server's max_payload (default the embedded
	// server's).
	MaxPayload int32
	// NoRouter sends reads to the shared subject (any ready replica)
	// instead of routing them by the replicas' advertised progress.
	NoRouter bool
}

// Stack is a running pipeline.
type Stack struct {
	*testenv.Env
	// Writer is the writer behind the writer service.
	Writer *writer.Writer
	// Replicas are the replicas, with ids r1, r2, ...
	Replicas []*replica.Replica
	// Transport reaches the writer and replicas over NATS.
	Transport *client.NATS
	// Gateway is the HTTP gateway; URL is its base URL. Monitor feeds its
	// status.
	Gateway *gateway.Gateway
	Monitor *gateway.Monitor
	URL     string
	// Subjects are the service subjects.
	Subjects wire.Subjects

	opts Options
	dir  string

	mu      sync.Mutex
	running map[string]running
}

// Start starts a stack that is stopped when the test ends.
func Start(t testing.TB, opts Options) *Stack {
	t.Helper()
	if opts.Replicas == 0 {
		opts.Replicas = 2
	}
	s := &Stack{Env: testenv.StartServer(t, natsserver.ServerConfig{MaxPayload: opts.MaxPayload}), opts: opts, dir: t.TempDir(), running: map[string]running{}}
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	t.Cleanup(func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Errorf("stack: %v", err)
		}
	})
	s.Writer = writer.New(writer.Config{Stream: s.Stream, MaxValueBytes: opts.MaxValueBytes, Logger: opts.Logger,
		Records: client.NewNATS(s.Conn.Conn, s.Subjects)})
	wsvc := writer.NewService(s.Conn.Conn, s.Subjects, s.Writer, opts.Logger)
	g.Go(func() error { return wsvc.Run(gctx) })
	for i := 1; i <= opts.Replicas; i++ {
		s.Replicas = append(s.Replicas, s.startReplica(t, g, gctx, fmt.Sprintf("r%d", i)))
	}
	t.Cleanup(s.stopReplicas)
	s.Transport = client.NewNATS(s.Conn.Conn, s.Subjects)
	if !opts.NoRouter {
		router, err := client.NewRouter(s.Conn.Conn, s.Subjects)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = router.Close() })
		s.Transport.Router = router
	}
	s.Monitor = gateway.NewMonitor(gateway.MonitorConfig{Conn: s.Conn.Conn, JS: s.JS, Stream: s.Stream.Name(),
		Subjects: s.Subjects, WriterService: writer.ServiceName})
	if err := s.Monitor.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Monitor.Close() })
	s.Gateway = gateway.New(gateway.Config{
		Monitor: s.Monitor,
		Writer:  s.Transport, Reader: s.Transport, MaxValueBytes: opts.MaxValueBytes,
		DefaultWait: opts.DefaultWait, MaxWait: opts.MaxWait, Logger: opts.Logger,
		Signer: opts.Signer, Affinity: opts.Affinity,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.URL = "http://" + ln.Addr().String()
	g.Go(func() error { return s.Gateway.Serve(gctx, ln) })
	for _, r := range s.Replicas {
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		err := r.WaitReady(wctx)
		wcancel()
		if err != nil {
			t.Fatalf("replica %s not ready: %v", r.ID(), err)
		}
	}
	// The shared read endpoints join their queue group just after ready.
	testenv.Eventually(t, 10*time.Second, "replicas serving shared reads", func() bool {
		_, err := s.Transport.Get(ctx, api.GetRequest{Key: "stacktest-probe", ReadSpec: api.ReadSpec{Wait: time.Second}})
		return err == nil || api.Code(err) == api.CodeNotFound
	})
	return s
}

func (s *Stack) startReplica(t testing.TB, g *errgroup.Group, ctx context.Context, id string) *replica.Replica {
	t.Helper()
	r := replica.New(replica.Config{
		ID: id, Dir: filepath.Join(s.dir, id), Stream: s.Stream, Conn: s.Conn.Conn, Subjects: s.Subjects,
		DefaultWait: s.opts.DefaultWait, MaxWait: s.opts.MaxWait, Logger: s.opts.Logger,
	})
	if err := r.Open(); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	s.mu.Lock()
	s.running[id] = running{cancel: cancel, done: done, replica: r}
	s.mu.Unlock()
	g.Go(func() error { err := r.Run(rctx); done <- err; return err })
	return r
}

type running struct {
	cancel  context.CancelFunc
	done    chan error
	replica *replica.Replica
}

// StopReplica stops replica id as if its process ended: it stops serving
// and applying, and its Badger directory is closed. The other replicas go on.
func (s *Stack) StopReplica(t testing.TB, id string) {
	t.Helper()
	s.mu.Lock()
	run, ok := s.running[id]
	delete(s.running, id)
	s.mu.Unlock()
	if !ok {
		t.Fatalf("replica %q is not running", id)
	}
	run.cancel()
	if err := <-run.done; err != nil {
		t.Fatalf("replica %s: %v", id, err)
	}
	if err := run.replica.Close(); err != nil {
		t.Fatalf("close replica %s: %v", id, err)
	}
}

func (s *Stack) stopReplicas() {
	s.mu.Lock()
	runs := s.running
	s.running = map[string]running{}
	s.mu.Unlock()
	for _, run := range runs {
		run.cancel()
		<-run.done
		_ = run.replica.Close()
	}
}

// Replica returns the replica with id, or fails the test.
func (s *Stack) Replica(t testing.TB, id string) *replica.Replica {
	t.Helper()
	for _, r := range s.Replicas {
		if r.ID() == id {
			return r
		}
	}
	t.Fatalf("no replica %q", id)
	return nil
}

// HTTPClient is a client for the gateway with a short timeout.
var HTTPClient = &http.Client{Timeout: 60 * time.Second}

// Response is an HTTP response read whole.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Do sends an HTTP request and reads the whole response. hdr holds header
// name and value pairs; the name "Cookie" adds the value as the session
// token cookie (tidemark_token), and "Cookie:NAME" as the cookie NAME.
func Do(t testing.TB, method, url, body string, hdr ...string) Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		name, value := hdr[i], hdr[i+1]
		switch {
		case name == "Cookie":
			req.AddCookie(&http.Cookie{Name: "tidemark_token", Value: value})
		case strings.HasPrefix(name, "Cookie:"):
			req.AddCookie(&http.Cookie{Name: strings.TrimPrefix(name, "Cookie:"), Value: value})
		default:
			req.Header.Set(name, value)
		}
	}
	resp, err := HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// RunWriter runs a writer service for e's stream on e's connection until
// the test ends, and returns once it answers a PING.
func RunWriter(t testing.TB, e *testenv.Env, subjects wire.Subjects) *writer.Writer {
	t.Helper()
	w := writer.New(writer.Config{Stream: e.Stream, Logger: zerolog.Nop()})
	svc := writer.NewService(e.Conn.Conn, subjects, w, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("writer service: %v", err)
		}
	})
	ping, err := micro.ControlSubject(micro.PingVerb, writer.ServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "writer service to answer PING", func() bool {
		_, err := e.Conn.Request(ping, nil, time.Second)
		return err == nil
	})
	return w
}
