package main

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
)

// start runs the notify service on s until the test ends.
func start(t *testing.T, s *stacktest.Stack) *notifier {
	t.Helper()
	nc := testenv.Connect(t, s.Server.ClientURL()).Conn
	ctx, cancel := context.WithCancel(context.Background())
	n, err := open(ctx, nc, "notify-test", t.TempDir(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.run(ctx) }()
	t.Cleanup(func() {
		n.replica.Replicator().Resume()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		n.close()
	})
	waitAnswering(t, s.Conn.Conn)
	return n
}

// waitAnswering waits until the service answers (an unknown order: not_found).
func waitAnswering(t *testing.T, nc *nats.Conn) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, "notify to answer", func() bool {
		reply, err := nc.Request(Subject, []byte("no-such-order"), time.Second)
		return err == nil && reply.Header.Get(micro.ErrorCodeHeader) == api.CodeNotFound
	})
}

// TestNotify is the chain orders -> notify with the test as orders: it
// writes an order through the gateway while notify's embedded replica is
// held back, then asks notify over NATS. Without the token notify does not
// see the order; with it notify waits for its replica and confirms the
// order, and the token of notify's own write comes back.
func TestNotify(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	n := start(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	n.replica.Replicator().Pause()
	orders := client.New(client.NewHTTP(s.URL)).NewSession()
	value, _ := json.Marshal(order{ID: "7", Item: "apples", Qty: 2})
	w, err := orders.Put(ctx, "order/7", value)
	if err != nil {
		t.Fatalf("Put order: %v", err)
	}

	// Without the token: notify's replica has not seen the order.
	reply, err := s.Conn.RequestWithContext(ctx, Subject, []byte("7"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := reply.Header.Get(micro.ErrorCodeHeader), api.CodeNotFound; got != want {
		t.Fatalf("notify without the token: error code %q, want %q (body %q)", got, want, reply.Data)
	}

	// With it: notify waits until its replica has applied the order.
	var resumed atomic.Bool
	time.AfterFunc(300*time.Millisecond, func() { resumed.Store(true); n.replica.Replicator().Resume() })
	m := nats.NewMsg(Subject)
	m.Data = []byte("7")
	reply, err = client.RequestNATS(client.WithSession(ctx, orders), s.Conn.Conn, m)
	if err != nil {
		t.Fatal(err)
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		t.Fatalf("notify with the token: %s: %s", code, reply.Header.Get(micro.ErrorHeader))
	}
	if got, want := string(reply.Data), "order 7 confirmed: 2 x apples"; got != want {
		t.Fatalf("notify with the token=%q, want %q", got, want)
	}
	if !resumed.Load() {
		t.Fatalf("notify answered before its replica was resumed")
	}

	// Notify's write came back in the reply's token: the session reads it.
	if orders.Token().Seq <= w.Revision {
		t.Fatalf("session token %v did not move past the order %d", orders.Token(), w.Revision)
	}
	got, err := orders.Get(ctx, "notification/7")
	if err != nil || string(got.Record.Value) != "order 7 confirmed: 2 x apples" {
		t.Fatalf("Get notification=%q, %v", got.Record.Value, err)
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
		done <- run(ctx, []string{"--nats", s.Server.ClientURL(), "--data", t.TempDir(), "--id", "n1"}, &stdout, &stderr)
	}()
	waitAnswering(t, s.Conn.Conn)
	if !strings.Contains(stdout.String(), "answering on "+Subject) {
		t.Fatalf("stdout %q does not say where it answers", stdout.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if err := run(context.Background(), []string{"--nope"}, &stdout, &stderr); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("run with an unknown flag: err=%v", err)
	}
}
