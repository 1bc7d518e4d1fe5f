package client_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replica"
	"github.com/tidemark/tidemark/stream"
)

// embed runs a replica in the test process, as a service embeds one: its
// own NATS connection, the stream opened (not created), its own Badger
// directory, no NATS service.
func embed(t *testing.T, s *stacktest.Stack, id string) (*replica.Replica, *nats.Conn) {
	t.Helper()
	nc := testenv.Connect(t, s.Server.ClientURL()).Conn
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := stream.Open(tctx(t, 10*time.Second), js, stream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := replica.New(replica.Config{ID: id, Dir: t.TempDir(), Stream: st})
	if err := r.Open(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		r.Replicator().Resume()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica %s Run: %v", id, err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("replica %s Close: %v", id, err)
		}
	})
	if err := r.WaitReady(tctx(t, 30*time.Second)); err != nil {
		t.Fatalf("replica %s not ready: %v", id, err)
	}
	return r, nc
}

func TestEmbeddedReplica(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	ctx := tctx(t, 30*time.Second)
	local, nc := embed(t, s, "embedded")
	// Writes go to the writer over NATS, reads to the local replica.
	c := client.New(client.NewNATS(nc, s.Subjects), client.WithReader(local))
	sess := c.NewSession()

	w1, err := sess.Put(ctx, "e/1", []byte("one"))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err := sess.Get(ctx, "e/1")
	if err != nil || string(got.Record.Value) != "one" || got.Replica != "embedded" {
		t.Fatalf("Get=%q from %q, %v; want one from the embedded replica", got.Record.Value, got.Replica, err)
	}

	// A token from anywhere: a session of another process, over HTTP.
	testWaitApplied(t, local.Applied, w1.Revision) // before the pause holds it where it is
	local.Replicator().Pause()
	other := client.New(client.NewHTTP(s.URL)).NewSession()
	w2, err := other.Put(ctx, "e/2", []byte("two"))
	if err != nil {
		t.Fatalf("Put over HTTP: %v", err)
	}
	if _, err := c.Get(ctx, "e/2"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get without the token from the held back replica: err=%v, want %v", err, api.ErrNotFound)
	}
	resumed, err := client.ResumeSession(c, other.String())
	if err != nil {
		t.Fatal(err)
	}
	var released atomic.Bool
	time.AfterFunc(300*time.Millisecond, func() { released.Store(true); local.Replicator().Resume() })
	got, err = resumed.Get(ctx, "e/2")
	if err != nil || string(got.Record.Value) != "two" {
		t.Fatalf("Get with the token=%q, %v; want two", got.Record.Value, err)
	}
	if !released.Load() || got.Applied < w2.Revision {
		t.Fatalf("Get with the token returned before the replica applied %d (applied %d)", w2.Revision, got.Applied)
	}

	page, err := resumed.Scan(ctx, "e/")
	if err != nil || len(page.Items) != 2 {
		t.Fatalf("Scan=%+v, %v; want 2 keys", page, err)
	}
}

// TestChain runs A -> B -> C: A writes through the gateway over HTTP, then
// calls B (an HTTP service) with its session; B calls C over NATS; C reads
// A's write from its embedded replica, which is held back, and writes an
// audit record. A and C never talk, yet C sees A's write, and A sees C's.
func TestChain(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	ctx := tctx(t, 30*time.Second)

	// C: a micro service with an embedded replica.
	local, ncC := embed(t, s, "service-c")
	c := client.New(client.NewNATS(ncC, s.Subjects), client.WithReader(local))
	svc, err := micro.AddService(ncC, micro.Config{Name: "chain-c", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	err = svc.AddEndpoint("lookup", client.MicroHandler(ctx, func(ctx context.Context, req micro.Request) {
		key := string(req.Data())
		res, err := c.Get(ctx, key, client.WithWait(20*time.Second))
		if err != nil {
			_ = req.Error(api.Code(err), err.Error(), nil)
			return
		}
		if _, err := c.Put(ctx, "audit/"+key, []byte("seen by c")); err != nil {
			_ = req.Error(api.Code(err), err.Error(), nil)
			return
		}
		_ = req.Respond(res.Record.Value)
	}), micro.WithEndpointSubject("chain.c.lookup"))
	if err != nil {
		t.Fatal(err)
	}

	// B: an HTTP service that asks C.
	ncB := testenv.Connect(t, s.Server.ClientURL()).Conn
	b := httptest.NewServer(client.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := nats.NewMsg("chain.c.lookup")
		m.Data = []byte(r.URL.Query().Get("key"))
		reply, err := client.RequestNATS(r.Context(), ncB, m)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
			http.Error(w, code, http.StatusBadGateway)
			return
		}
		_, _ = w.Write(reply.Data)
	})))
	t.Cleanup(b.Close)
	ask := func(ctx context.Context, key string) (int, string) {
		t.Helper()
		hc := &http.Client{Transport: client.RoundTripper(nil)}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL+"?key="+key, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	// A writes while C's replica is held back.
	local.Replicator().Pause()
	a := client.New(client.NewHTTP(s.URL)).NewSession()
	w, err := a.Put(ctx, "order/1", []byte("2 apples"))
	if err != nil {
		t.Fatalf("A: Put: %v", err)
	}
	// Without A's session the chain reads C's old state.
	if status, body := ask(ctx, "order/1"); status != http.StatusBadGateway || body != api.CodeNotFound+"\n" {
		t.Fatalf("chain without the token: %d %q, want 502 %q", status, body, api.CodeNotFound)
	}
	// With it C waits for A's write.
	var released atomic.Bool
	time.AfterFunc(300*time.Millisecond, func() { released.Store(true); local.Replicator().Resume() })
	status, body := ask(client.WithSession(ctx, a), "order/1")
	if status != http.StatusOK || body != "2 apples" {
		t.Fatalf("chain with the token: %d %q, want 200 %q", status, body, "2 apples")
	}
	if !released.Load() {
		t.Fatalf("C answered before its replica was resumed")
	}
	// C's write came back to A through B: A reads it on any replica.
	if a.Token().Seq <= w.Revision {
		t.Fatalf("A's token %v did not move past its own write %d: C's write did not come back", a.Token(), w.Revision)
	}
	for _, r := range s.Replicas {
		r.Replicator().Pause()
	}
	time.AfterFunc(100*time.Millisecond, func() {
		for _, r := range s.Replicas {
			r.Replicator().Resume()
		}
	})
	audit, err := a.Get(ctx, "audit/order/1")
	if err != nil || string(audit.Record.Value) != "seen by c" {
		t.Fatalf("A: Get of C's write=%q, %v", audit.Record.Value, err)
	}
	if got, want := a.Token().Seq, audit.Record.Revision; got < want {
		t.Fatalf("A's token %d is behind C's write %d", got, want)
	}
}
