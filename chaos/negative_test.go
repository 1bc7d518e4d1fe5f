package chaos_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/chaos"
	"github.com/tidemark/tidemark/chaos/checker"
	"github.com/tidemark/tidemark/chaos/history"
	"github.com/tidemark/tidemark/chaos/workload"
	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
)

// lagging runs a workload on an in-process stack of two replicas while r2
// keeps falling behind (its apply loop paused most of the time), then lets
// r2 catch up and returns the checked history.
func lagging(t *testing.T, noTokens bool) (*checker.Report, *history.History) {
	t.Helper()
	s := stacktest.Start(t, stacktest.Options{Replicas: 2})
	lag := s.Replica(t, "r2").Replicator()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer lag.Resume()
		for ctx.Err() == nil {
			lag.Pause()
			t := time.NewTimer(400 * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			lag.Resume()
			t = time.NewTimer(50 * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}()
	ops, err := workload.Run(ctx, workload.Config{
		Seed: 7, Sessions: 6, Gateways: []string{s.URL}, NATS: s.Conn.Conn, Subjects: s.Subjects,
		Replicas: []string{"r1", "r2"}, NoTokens: noTokens, SessionOrder: !noTokens, SharedKeys: 4, OwnKeys: 2, MaxThink: -1,
	})
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	tr := client.NewNATS(s.Conn.Conn, s.Subjects)
	bg := context.Background()
	if _, err := chaos.Converge(bg, s.JS, tr, []string{"r1", "r2"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	h := &history.History{Version: history.Version, Ops: ops, Final: &history.Final{}}
	if h.Final.Stream, err = chaos.DumpStream(bg, s.JS, s.Config); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r1", "r2"} {
		rep, err := chaos.DumpReplica(bg, tr, id, h.Final.Stream)
		if err != nil {
			t.Fatal(err)
		}
		h.Final.Replicas = append(h.Final.Replicas, rep)
	}
	return checker.Check(h), h
}

// TestLaggingReplicaWithTokens is the control's control: the same workload
// with tokens (and session-ordered writes) has no violations although r2
// lags.
func TestLaggingReplicaWithTokens(t *testing.T) {
	r, h := lagging(t, false)
	t.Log(r.Summary())
	if !r.OK() {
		t.Fatalf("violations with tokens:\n%s", r.Summary())
	}
	ordered := 0
	for _, m := range h.Final.Stream {
		// A transaction's ops are ordered by its marker, which carries
		// the session.
		if m.SessionID != "" || m.TxnIndex > 0 {
			ordered++
		}
	}
	if got, want := ordered, len(h.Final.Stream); got != want {
		t.Fatalf("%d of %d stream messages carry a session or are ops of a transaction; want all", got, want)
	}
}

// TestNegativeNoTokens: sessions that hop between replicas without their
// tokens, one replica lagging, must be caught breaking read-your-writes or
// monotonic reads, while durability still holds.
func TestNegativeNoTokens(t *testing.T) {
	r, _ := lagging(t, true)
	t.Log(r.Summary())
	if r.Counts[checker.ReadYourWrites]+r.Counts[checker.MonotonicReads] == 0 {
		t.Fatalf("the checker found no read-your-writes or monotonic-reads violation without tokens:\n%s", r.Summary())
	}
	for _, k := range []checker.Kind{checker.LostWrite, checker.DuplicateWrite, checker.ReplicaNotFold, checker.PhantomRead, checker.SnapshotMismatch} {
		if r.Counts[k] != 0 {
			t.Fatalf("%s without tokens, where only session guarantees should break:\n%s", k, r.Summary())
		}
	}
}
