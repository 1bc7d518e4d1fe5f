package main

import (
	"github.com/tidemark/tidemark/internal/natsserver"

	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

func TestHealthHTTP(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = io.WriteString(w, "ready\n")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready: catching up: applied 7\n")
		case "/hang":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	defer close(release)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string // empty: healthy
	}{
		{name: "200", args: []string{srv.URL + "/ok"}},
		{name: "204", args: []string{srv.URL + "/nocontent"}},
		{name: "503 quotes the body", args: []string{srv.URL + "/down"}, wantErr: "503 Service Unavailable: not ready: catching up: applied 7"},
		{name: "404", args: []string{srv.URL + "/missing"}, wantErr: "404"},
		{name: "timeout", args: []string{"--timeout", "200ms", srv.URL + "/hang"}, wantErr: "deadline exceeded"},
		{name: "refused", args: []string{closed.URL + "/readyz"}, wantErr: "connection refused"},
		{name: "unsupported scheme", args: []string{"ftp://127.0.0.1/"}, wantErr: "unsupported URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			start := time.Now()
			err := run(context.Background(), append([]string{"health"}, tt.args...), &stdout, &stderr)
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Fatalf("health took %v, want it bounded by its timeout", elapsed)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("health %v: %v", tt.args, err)
				}
				if got, want := stdout.String(), "ok\n"; got != want {
					t.Fatalf("stdout=%q, want %q", got, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("health %v: err=%v, want it to contain %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestHealthUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"a", "b"}, {"--bogus", "http://127.0.0.1/"}} {
		var stdout, stderr bytes.Buffer
		if got, want := run(context.Background(), append([]string{"health"}, args...), &stdout, &stderr), errUsage; got != want {
			t.Fatalf("health %v: err=%v, want %v", args, got, want)
		}
		if !strings.Contains(stderr.String(), "Usage: tidemark health") {
			t.Fatalf("health %v: stderr=%q, want the usage", args, stderr.String())
		}
	}
}

func TestHealthNATSService(t *testing.T) {
	srv, err := natsserver.StartServer(natsserver.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	svc, err := micro.AddService(nc, micro.Config{Name: "tidemark-writer", Version: "0.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	health := func(args ...string) error {
		var stdout, stderr bytes.Buffer
		return run(context.Background(), append([]string{"health", "--timeout", "500ms"}, args...), &stdout, &stderr)
	}
	// A list of servers, the first of them down, as a compose file passes it.
	urls := "nats://127.0.0.1:1," + srv.ClientURL()
	if err := health("--service", "tidemark-writer", urls); err != nil {
		t.Fatalf("health of a running service: %v", err)
	}
	if err := health("--service", "tidemark-absent", srv.ClientURL()); err == nil || !strings.Contains(err.Error(), "tidemark-absent") {
		t.Fatalf("health of an absent service: err=%v, want it to name the service", err)
	}
	if err := health(srv.ClientURL()); err == nil || !strings.Contains(err.Error(), "--service") {
		t.Fatalf("health of a nats URL without --service: err=%v, want it to ask for --service", err)
	}
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := health("--service", "tidemark-writer", srv.ClientURL()); err == nil {
		t.Fatal("health of a stopped service: got nil error")
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	if err := health("--service", "tidemark-writer", srv.ClientURL()); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("health with NATS down: err=%v, want a connect error", err)
	}
}
