package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
)

// startDev runs `tidemark dev` in-process on free ports over dataDir and
// returns the gateway's base URL and a function that stops it (as SIGINT
// would) and returns its error.
func startDev(t *testing.T, dataDir string, extra ...string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	args := append([]string{"dev", "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--data", dataDir, "--log-level", "warn"}, extra...)
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, pw, io.Discard)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if !sent && len(f) == 2 && f[0] == "gateway" {
				urlc <- f[1]
				sent = true
			}
		}
	}()
	var base string
	select {
	case base = <-urlc:
	case err := <-done:
		cancel()
		t.Fatalf("tidemark dev exited early: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("tidemark dev did not print its address")
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return base, stop
}

func do(t *testing.T, method, url, body string, hdr ...string) stacktest.Response {
	t.Helper()
	return stacktest.Do(t, method, url, body, hdr...)
}

func TestDevEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole pipeline twice")
	}
	data := t.TempDir()
	base, stop := startDev(t, data)

	waitReady(t, base)
	r := do(t, "PUT", base+"/v1/kv/greeting", "hello")
	if r.Status != 200 {
		t.Fatalf("PUT status=%d body=%s", r.Status, r.Body)
	}
	var put struct {
		Key      string `json:"key"`
		Revision uint64 `json:"revision"`
		Token    string `json:"token"`
	}
	if err := json.Unmarshal([]byte(r.Body), &put); err != nil {
		t.Fatal(err)
	}
	if put.Token == "" || put.Revision == 0 || r.Header.Get("Tidemark-Token") != put.Token {
		t.Fatalf("PUT reply %+v, header token %q", put, r.Header.Get("Tidemark-Token"))
	}
	// Each read with the token sees the write, whichever replica serves it.
	for i := 0; i < 10; i++ {
		g := do(t, "GET", base+"/v1/kv/greeting", "", "Tidemark-Token", put.Token)
		if g.Status != 200 || g.Body != "hello" {
			t.Fatalf("GET with token: status=%d body=%q", g.Status, g.Body)
		}
		if got, want := g.Header.Get("ETag"), `"1"`; put.Revision == 1 && got != want {
			t.Fatalf("ETag=%s, want %s", got, want)
		}
	}
	s := do(t, "GET", base+"/v1/kv?prefix=greet", "", "Tidemark-Token", put.Token)
	if s.Status != 200 || !strings.Contains(s.Body, `"key":"greeting"`) {
		t.Fatalf("scan: status=%d body=%s", s.Status, s.Body)
	}
	// A watch (GET /v1/watch, over the Go client's HTTP transport) starts
	// with the session's write.
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	var watched []string
	tok, err := api.ParseToken(put.Token)
	if err != nil {
		t.Fatal(err)
	}
	for ev, err := range client.New(client.NewHTTP(base)).Watch(client.WithToken(wctx, tok), "greet") {
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		watched = append(watched, string(ev.Type)+" "+ev.Key)
		if ev.Type == api.EventSynced {
			break
		}
	}
	wcancel()
	if got, want := strings.Join(watched, ", "), "put greeting, synced "; got != want {
		t.Fatalf("watch events %q, want %q", got, want)
	}
	// Metrics: the build, writes by op (delete, not del), and every read's wait.
	m := do(t, "GET", base+"/metrics", "")
	for _, want := range []string{`tidemark_build_info{goversion="`, "tidemark_gateway_token_wait_seconds_count 11"} {
		if !strings.Contains(m.Body, want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	d := do(t, "DELETE", base+"/v1/kv/greeting", "", "Tidemark-Token", put.Token)
	if d.Status != 200 {
		t.Fatalf("DELETE status=%d body=%s", d.Status, d.Body)
	}
	if m := do(t, "GET", base+"/metrics", ""); !strings.Contains(m.Body, `tidemark_writer_writes_total{op="delete",outcome="ok"} 1`) {
		t.Fatalf("/metrics lacks the delete as op=\"delete\"")
	}
	delTok := d.Header.Get("Tidemark-Token")
	g := do(t, "GET", base+"/v1/kv/greeting", "", "Tidemark-Token", delTok)
	if g.Status != 404 || !strings.Contains(g.Body, `"not_found"`) {
		t.Fatalf("GET after delete: status=%d body=%s", g.Status, g.Body)
	}
	r = do(t, "PUT", base+"/v1/kv/kept", "across restarts")
	keptTok := r.Header.Get("Tidemark-Token")
	if err := stop(); err != nil {
		t.Fatalf("dev stopped with %v", err)
	}

	// Restart on the same data: data and tokens survive.
	base, _ = startDev(t, data)
	waitReady(t, base)
	g = do(t, "GET", base+"/v1/kv/kept", "", "Tidemark-Token", keptTok)
	if g.Status != 200 || g.Body != "across restarts" {
		t.Fatalf("GET after restart: status=%d body=%q", g.Status, g.Body)
	}
	g = do(t, "GET", base+"/v1/kv/greeting", "", "Tidemark-Token", keptTok)
	if g.Status != 404 {
		t.Fatalf("deleted key after restart: status=%d", g.Status)
	}
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v", base, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A second dev on the same data directory, or on a port in use, fails at
// once with a message that says why, before it starts anything.
func TestDevRefusesBusyDataAndPorts(t *testing.T) {
	data := t.TempDir()
	base, _ := startDev(t, data)
	busyHTTP := strings.TrimPrefix(base, "http://")
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"same data", []string{"--data", data}, "in use by another process"},
		{"http port in use", []string{"--data", t.TempDir(), "--http", busyHTTP}, "gateway listen on " + busyHTTP},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"dev", "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--log-level", "warn"}, tt.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("second dev: %v, want an error naming %q", err, tt.want)
			}
			if ctx.Err() != nil {
				t.Fatalf("second dev took until its deadline to fail: %v", err)
			}
		})
	}
	// A NATS port in use.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	other := t.TempDir()
	err = run(context.Background(), []string{"dev", "--http", "127.0.0.1:0", "--nats-listen", l.Addr().String(), "--data", other, "--log-level", "warn"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "embedded NATS listen on") {
		t.Fatalf("dev on a busy NATS port: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, "nats")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dev on a busy NATS port created its store: %v", err)
	}
}
