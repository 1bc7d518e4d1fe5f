package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url, body string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func TestDevEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole pipeline twice")
	}
	data := t.TempDir()
	base, stop := startDev(t, data)

	waitReady(t, base)
	r := do(t, "PUT", base+"/v1/kv/greeting", "hello")
	if r.status != 200 {
		t.Fatalf("PUT status=%d body=%s", r.status, r.body)
	}
	var put struct {
		Key      string `json:"key"`
		Revision uint64 `json:"revision"`
		Token    string `json:"token"`
	}
	if err := json.Unmarshal([]byte(r.body), &put); err != nil {
		t.Fatal(err)
	}
	if put.Token == "" || put.Revision == 0 || r.header.Get("Tidemark-Token") != put.Token {
		t.Fatalf("PUT reply %+v, header token %q", put, r.header.Get("Tidemark-Token"))
	}
	// Each read with the token sees the write, whichever replica serves it.
	for i := 0; i < 10; i++ {
		g := do(t, "GET", base+"/v1/kv/greeting", "", "Tidemark-Token", put.Token)
		if g.status != 200 || g.body != "hello" {
			t.Fatalf("GET with token: status=%d body=%q", g.status, g.body)
		}
		if got, want := g.header.Get("ETag"), `"1"`; put.Revision == 1 && got != want {
			t.Fatalf("ETag=%s, want %s", got, want)
		}
	}
	s := do(t, "GET", base+"/v1/kv?prefix=greet", "", "Tidemark-Token", put.Token)
	if s.status != 200 || !strings.Contains(s.body, `"key":"greeting"`) {
		t.Fatalf("scan: status=%d body=%s", s.status, s.body)
	}
	d := do(t, "DELETE", base+"/v1/kv/greeting", "", "Tidemark-Token", put.Token)
	if d.status != 200 {
		t.Fatalf("DELETE status=%d body=%s", d.status, d.body)
	}
	delTok := d.header.Get("Tidemark-Token")
	g := do(t, "GET", base+"/v1/kv/greeting", "", "Tidemark-Token", delTok)
	if g.status != 404 || !strings.Contains(g.body, `"not_found"`) {
		t.Fatalf("GET after delete: status=%d body=%s", g.status, g.body)
	}
	r = do(t, "PUT", base+"/v1/kv/kept", "across restarts")
	keptTok := r.header.Get("Tidemark-Token")
	if err := stop(); err != nil {
		t.Fatalf("dev stopped with %v", err)
	}

	// Restart on the same data: data and tokens survive.
	base, _ = startDev(t, data)
	waitReady(t, base)
	g = do(t, "GET", base+"/v1/kv/kept", "", "Tidemark-Token", keptTok)
	if g.status != 200 || g.body != "across restarts" {
		t.Fatalf("GET after restart: status=%d body=%q", g.status, g.body)
	}
	g = do(t, "GET", base+"/v1/kv/greeting", "", "Tidemark-Token", keptTok)
	if g.status != 404 {
		t.Fatalf("deleted key after restart: status=%d", g.status)
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
