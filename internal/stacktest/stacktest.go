// Package stacktest runs a whole Tidemark pipeline in one test process, with
// real components: an embedded NATS server, the writer service, replicas
// over Badger in temporary directories serving over NATS, and the HTTP
// gateway on a real loopback listener. Tests reach into it for the test
// hooks (pausing a replica's apply) and talk to it as clients would.
package stacktest

import (
	"github.com/tidemark/tidemark/internal/natsserver"
	"github.com/tidemark/tidemark/internal/stack"

	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

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
	// AccessLog turns on the gateway's access log (to Logger).
	AccessLog bool
	// MaxPayload is the NATS server's max_payload (default the embedded
	// server's).
	MaxPayload int32
	// WatchWindow bounds each replica's watch window (default the replica's);
	// WatchProgress is the gateway's progress interval (default its own).
	WatchWindow   int
	WatchProgress time.Duration
	// WatchClientTimeout is how long a replica keeps a silent watcher;
	// WatchUnacked is the most events it sends beyond the acknowledged.
	WatchClientTimeout time.Duration
	WatchUnacked       int
	// NoRouter sends reads to the shared subject (any ready replica)
	// instead of routing them by the replicas' advertised progress.
	NoRouter bool
	// Compaction runs a compactor in r1.
	Compaction replica.Compaction
}

// Stack is a running pipeline (package stack) on an embedded NATS server.
type Stack struct {
	*testenv.Env
	*stack.Stack
	// URL is the gateway's base URL.
	URL string
	// Subjects are the service subjects.
	Subjects wire.Subjects
}

// Start starts a stack that is stopped when the test ends.
func Start(t testing.TB, opts Options) *Stack {
	t.Helper()
	if opts.Replicas == 0 {
		opts.Replicas = 2
	}
	env := testenv.StartServer(t, natsserver.ServerConfig{MaxPayload: opts.MaxPayload})
	dir := t.TempDir()
	var replicas []replica.Config
	for i := 1; i <= opts.Replicas; i++ {
		id := fmt.Sprintf("r%d", i)
		rc := replica.Config{ID: id, Dir: filepath.Join(dir, id), DefaultWait: opts.DefaultWait, MaxWait: opts.MaxWait,
			WatchWindow: opts.WatchWindow, WatchClientTimeout: opts.WatchClientTimeout, WatchUnacked: opts.WatchUnacked}
		if i == 1 {
			rc.Compaction = opts.Compaction
		}
		replicas = append(replicas, rc)
	}
	st, err := stack.Start(context.Background(), stack.Config{
		Conn: env.Conn.Conn, Stream: env.Stream, Subjects: wire.Subjects{}, Logger: opts.Logger,
		Writer:   writer.Config{MaxValueBytes: opts.MaxValueBytes},
		Replicas: replicas,
		Gateway: gateway.Config{MaxValueBytes: opts.MaxValueBytes, DefaultWait: opts.DefaultWait, MaxWait: opts.MaxWait,
			Signer: opts.Signer, Affinity: opts.Affinity, AccessLog: opts.AccessLog, WatchProgress: opts.WatchProgress},
		NoRouter: opts.NoRouter,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{Env: env, Stack: st}
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.URL = "http://" + ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- st.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("gateway: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("stack: %v", err)
		}
		select {
		case err := <-st.Err():
			t.Errorf("stack: %v", err)
		default:
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := st.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	// The shared read endpoints join their queue group just after ready.
	testenv.Eventually(t, 10*time.Second, "replicas serving shared reads", func() bool {
		_, err := s.Transport.Get(ctx, api.GetRequest{Key: "stacktest-probe", ReadSpec: api.ReadSpec{Wait: time.Second}})
		return err == nil || api.Code(err) == api.CodeNotFound
	})
	return s
}

// StopReplica stops replica id as if its process ended: it stops serving
// and applying, and its Badger directory is closed. The other replicas go on.
func (s *Stack) StopReplica(t testing.TB, id string) {
	t.Helper()
	if err := s.Stack.StopReplica(id); err != nil {
		t.Fatal(err)
	}
}

// Replica returns the replica with id, or fails the test.
func (s *Stack) Replica(t testing.TB, id string) *replica.Replica {
	t.Helper()
	r := s.Stack.Replica(id)
	if r == nil {
		t.Fatalf("no replica %q", id)
	}
	return r
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
