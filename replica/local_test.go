package replica_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/reader"
	"github.com/tidemark/tidemark/replica"
)

// TestLocalRouting reads through a Local over two in-process replicas, one
// of them paused: token reads go to the one that has applied the token,
// named reads to the named one, and a forwarded read that times out on the
// lagging replica is answered by the other.
func TestLocalRouting(t *testing.T) {
	f := newFixture(t)
	r1 := f.start(t, "r1", false, false)
	r2 := f.start(t, "r2", false, false)
	waitReady(t, r1)
	waitReady(t, r2)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	r2.Replicator().Pause()
	res, err := f.w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "k", Value: []byte("v1")})
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, r1, res.Revision)
	l := replica.NewLocal(r1.Replica, r2.Replica)

	for range 20 { // round robin would reach r2 within a few reads
		g, err := l.Get(ctx, api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Token: res.Token, Wait: time.Second}})
		if err != nil || g.Replica != "r1" || string(g.Record.Value) != "v1" {
			t.Fatalf("token read: %+v, %v; want v1 from r1", g, err)
		}
	}
	s, err := l.Scan(ctx, api.ScanRequest{Prefix: "k", ReadSpec: api.ReadSpec{Token: res.Token, Wait: time.Second}})
	if err != nil || s.Replica != "r1" || len(s.Items) != 1 {
		t.Fatalf("token scan: %+v, %v; want one item from r1", s, err)
	}

	// Named: r2 has not applied the write, and a read pinned to it waits.
	_, err = l.Get(ctx, api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Token: res.Token, Replica: "r2", Wait: 50 * time.Millisecond}})
	if !errors.Is(err, api.ErrTokenWaitTimeout) {
		t.Fatalf("read pinned to the paused r2: %v; want token_wait_timeout", err)
	}
	if _, err := l.Get(ctx, api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Replica: "r9"}}); !errors.Is(err, api.ErrUnknownReplica) {
		t.Fatalf("read of an unknown replica: %v; want %v", err, api.ErrUnknownReplica)
	}
	// Named and Forward: r2 cannot reach the token, so the read goes on to r1.
	g, err := l.Get(ctx, api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Token: res.Token, Replica: "r2", Wait: 200 * time.Millisecond, Forward: true}})
	if err != nil || g.Replica != "r1" || string(g.Record.Value) != "v1" {
		t.Fatalf("forwarded read pinned to the paused r2: %+v, %v; want v1 from r1", g, err)
	}

	// Forward: r2 is ahead of r1, both behind the token. The read starts on
	// the freshest, r2, which stays paused; when it times out there, the
	// read is forwarded to r1, resumed meanwhile.
	r1.Replicator().Pause()
	r2.Replicator().Resume()
	res2, err := f.w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "k", Value: []byte("v2"), Token: res.Token})
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, r2, res2.Revision)
	r2.Replicator().Pause()
	res3, err := f.w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "k", Value: []byte("v3"), Token: res2.Token})
	if err != nil {
		t.Fatal(err)
	}
	const wait = 2 * time.Second
	timeouts := tokenTimeouts(t, r2.Replica)
	type result struct {
		g    api.GetResult
		err  error
		took time.Duration
	}
	got := make(chan result, 1)
	go func() {
		start := time.Now()
		g, err := l.Get(ctx, api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Token: res3.Token, Wait: wait, Forward: true}})
		got <- result{g, err, time.Since(start)}
	}()
	// Resume r1 once the read has timed out on r2, so that only the
	// forwarded read can be answered.
	testenv.Eventually(t, testTimeout, "the read to time out on r2", func() bool {
		return tokenTimeouts(t, r2.Replica) > timeouts
	})
	r1.Replicator().Resume()
	r := <-got
	if r.err != nil || r.g.Replica != "r1" || string(r.g.Record.Value) != "v3" {
		t.Fatalf("forwarded read: %+v, %v; want v3 from r1", r.g, r.err)
	}
	if first := wait - wait/4; r.took < first {
		t.Fatalf("read answered after %v, before the first replica's share of the wait (%v) ran out: it was not forwarded", r.took, first)
	}
	r2.Replicator().Resume()
}

// tokenTimeouts returns how many gets r answered with token_wait_timeout.
func tokenTimeouts(t *testing.T, r *replica.Replica) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(r.Collector()); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != reader.MetricReads {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["op"] == "get" && labels["outcome"] == api.CodeTokenWaitTimeout {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
