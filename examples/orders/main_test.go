package main

import (
	"github.com/tidemark/tidemark/api"

	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
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

// startNotify runs a stand-in for examples/notify until the test ends: a
// micro service on NotifySubject that reads the order from an embedded
// replica, as of the request's token, and records a notification. It
// returns the replica, for the test to hold back.
func startNotify(t *testing.T, s *stacktest.Stack) *replica.Replica {
	t.Helper()
	nc := testenv.Connect(t, s.Server.ClientURL()).Conn
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := stream.Open(ctx, js, stream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := replica.New(replica.Config{ID: "notify", Dir: t.TempDir(), Stream: st})
	if err := r.Open(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		r.Replicator().Resume()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("close replica: %v", err)
		}
	})
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	tm := client.New(client.NewNATS(nc, s.Subjects), client.WithReader(r))
	svc, err := micro.AddService(nc, micro.Config{Name: "notify-standin", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	err = svc.AddEndpoint("notify", client.MicroHandler(ctx, func(ctx context.Context, req micro.Request) {
		id := string(req.Data())
		res, err := tm.Get(ctx, "order/"+id, client.WithWait(20*time.Second))
		if err == nil {
			_, err = tm.Put(ctx, "notification/"+id, []byte("sent"))
		}
		if err != nil {
			_ = req.Error(api.Code(err), err.Error(), nil)
			return
		}
		_ = req.Respond(append([]byte("seen "), res.Record.Value...))
	}), micro.WithEndpointSubject(NotifySubject))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func do(t *testing.T, method, url, token, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set(api.HeaderToken, token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestOrders places an order while the downstream service's replica is held
// back: orders propagates the order's token over NATS, so the downstream
// read waits for the order instead of missing it, and the response's token
// covers the downstream's own write.
func TestOrders(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	notify := startNotify(t, s)
	srv := httptest.NewServer(newServer(testenv.Connect(t, s.Server.ClientURL()).Conn).handler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	notify.Replicator().Pause()
	var resumed atomic.Bool
	time.AfterFunc(300*time.Millisecond, func() { resumed.Store(true); notify.Replicator().Resume() })
	resp, body := do(t, http.MethodPost, srv.URL+"/orders", "", `{"id":"42","item":"apples","qty":2}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /orders: %s %s", resp.Status, body)
	}
	if !resumed.Load() {
		t.Fatalf("POST /orders returned before the downstream replica was resumed: %s", body)
	}
	var c created
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatal(err)
	}
	if want := `seen {"id":"42","item":"apples","qty":2}`; c.Notification != want {
		t.Fatalf("notification=%q, want %q", c.Notification, want)
	}
	tok, err := api.ParseToken(resp.Header.Get(api.HeaderToken))
	if err != nil || tok.Seq <= c.Revision {
		t.Fatalf("response token %v (%v), want one past the order's revision %d (the notification's write)", tok, err, c.Revision)
	}

	// A read without the token on the held back replica: the old state.
	notify.Replicator().Pause()
	w, err := client.New(s.Transport).Put(ctx, "order/43", []byte(`{"id":"43","item":"pears","qty":1}`))
	if err != nil {
		t.Fatal(err)
	}
	reply, err := s.Conn.RequestWithContext(ctx, NotifySubject, []byte("43"))
	if err != nil {
		t.Fatal(err)
	}
	if got := reply.Header.Get(micro.ErrorCodeHeader); got != api.CodeNotFound {
		t.Fatalf("downstream without the token: %q %q, want %s", got, reply.Data, api.CodeNotFound)
	}
	time.AfterFunc(100*time.Millisecond, notify.Replicator().Resume)
	m := nats.NewMsg(NotifySubject)
	m.Data = []byte("43")
	if reply, err = client.RequestNATS(client.WithToken(ctx, w.Token), s.Conn.Conn, m); err != nil || !bytes.HasPrefix(reply.Data, []byte("seen ")) {
		t.Fatalf("downstream with the token: %q, %v", reply.Data, err)
	}

	// GET with the token of the POST: read-your-writes through orders.
	resp, body = do(t, http.MethodGet, srv.URL+"/orders/42", tok.String(), "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"item":"apples"`) {
		t.Fatalf("GET /orders/42: %s %s", resp.Status, body)
	}
	if got := resp.Header.Get(api.HeaderToken); got == "" {
		t.Fatalf("GET /orders/42: no %s in the response", api.HeaderToken)
	}

	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{http.MethodPost, "/orders", `{"id":"42","item":"apples","qty":2}`, http.StatusConflict},
		{http.MethodPost, "/orders", `{"id":"a/b","item":"x","qty":1}`, http.StatusBadRequest},
		{http.MethodPost, "/orders", `{"id":"44","item":"x","qty":0}`, http.StatusBadRequest},
		{http.MethodPost, "/orders", `not json`, http.StatusBadRequest},
		{http.MethodGet, "/orders/nope", "", http.StatusNotFound},
	} {
		if resp, body := do(t, tc.method, srv.URL+tc.path, tok.String(), tc.body); resp.StatusCode != tc.want {
			t.Fatalf("%s %s %s: %s %s, want %d", tc.method, tc.path, tc.body, resp.Status, body, tc.want)
		}
	}
}

// TestRun runs the command as `go run` would, until it is stopped.
func TestRun(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testenv.LogBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--nats", s.Server.ClientURL(), "--http", "127.0.0.1:0"}, &stdout, &stderr)
	}()
	addr := regexp.MustCompile(`listening on (http://\S+)`)
	var url string
	testenv.Eventually(t, 20*time.Second, "orders to listen", func() bool {
		if m := addr.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
		}
		return url != ""
	})
	if resp, body := do(t, http.MethodGet, url+"/orders/none", "", ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /orders/none: %s %s", resp.Status, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
}
