package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"strconv"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
)

// TestRoutingPrefersReplicaThatReachedToken: with r2 held back, token reads
// that name no replica go to r1, which has the write, and do not wait.
func TestRoutingPrefersReplicaThatReachedToken(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2})
	s.Replica(t, "r2").Replicator().Pause()
	defer s.Replica(t, "r2").Replicator().Resume()
	w := put(t, s, "k", "v")
	// r1 advertises its progress within milliseconds.
	testenv.Eventually(t, 10*time.Second, "the router to hear r1 reach the write", func() bool {
		return s.Transport.Router.Pick(w.Revision, "r2") == "r1" && s.Transport.Router.Pick(w.Revision, "") == "r1"
	})
	for i := 0; i < 20; i++ {
		r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderToken, w.Token, api.HeaderWait, "1s")
		if r.Status != 200 || r.Body != "v" || r.Header.Get(api.HeaderReplica) != "r1" {
			t.Fatalf("read %d: status=%d body=%q replica=%s, want 200 v r1", i, r.Status, r.Body, r.Header.Get(api.HeaderReplica))
		}
	}
}

// TestForwardOnTimeout: a read routed to a replica that advertised progress
// it does not have (say, it restarted from an older state) times out there
// and, with Tidemark-On-Timeout: forward, is served by the freshest other
// replica instead; with the default (fail) it is a 504.
func TestForwardOnTimeout(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2})
	put(t, s, "k", "old")
	lag := s.Replica(t, "r2").Replicator()
	lag.Pause()
	defer lag.Resume()
	// The router stops hearing advertisements, so what it believes is
	// only what the test tells it: r1 is behind, r2 far ahead.
	router := s.Transport.Router
	if err := router.Close(); err != nil {
		t.Fatal(err)
	}
	w := put(t, s, "k", "v")
	testenv.Eventually(t, 10*time.Second, "r1 to apply the write", func() bool { return s.Replica(t, "r1").Applied() >= w.Revision })
	router.Observe("r2", w.Revision+1000, 1e6, true)
	router.Observe("r1", 0, 1, true) // known, but (as far as the router knows) behind
	if got := router.Pick(w.Revision, ""); got != "r2" {
		t.Fatalf("router picks %q, want the misleading r2", got)
	}
	if got := router.Freshest("r2"); got != "r1" {
		t.Fatalf("freshest other than r2 is %q, want r1", got)
	}
	r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderToken, w.Token, api.HeaderWait, "300ms")
	if r.Status != 504 || r.Header.Get(api.HeaderReplica) != "r2" {
		t.Fatalf("without forward: status=%d replica=%s body=%s, want 504 from r2", r.Status, r.Header.Get(api.HeaderReplica), r.Body)
	}
	r = do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderToken, w.Token, api.HeaderWait, "400ms", api.HeaderOnTimeout, "forward")
	if r.Status != 200 || r.Body != "v" || r.Header.Get(api.HeaderReplica) != "r1" {
		t.Fatalf("with forward: status=%d body=%q replica=%s, want 200 v r1", r.Status, r.Body, r.Header.Get(api.HeaderReplica))
	}
}

// TestConsistencyLevels: strong reads see other sessions' acknowledged
// writes (waiting for them), eventual reads never wait and say how far
// behind they may be, and a write sent with a token gets a later revision.
func TestConsistencyLevels(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2})
	first := put(t, s, "k", "first")
	for _, id := range []string{"r1", "r2"} {
		testenv.Eventually(t, 10*time.Second, id+" to apply", func() bool { return s.Replica(t, id).Applied() >= first.Revision })
	}
	lag := s.Replica(t, "r2").Replicator()
	lag.Pause()
	// Another session writes; this session has no token for it.
	other := put(t, s, "k", "second")

	// Eventual: the lagging replica answers at once with what it has.
	r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderReplica, "r2", api.HeaderConsistency, "eventual")
	if r.Status != 200 || r.Body != "first" {
		t.Fatalf("eventual: status=%d body=%q, want first", r.Status, r.Body)
	}
	applied, _ := strconv.ParseUint(r.Header.Get(api.HeaderApplied), 10, 64)
	streamLast, _ := strconv.ParseUint(r.Header.Get(api.HeaderStreamLast), 10, 64)
	if applied != first.Revision || streamLast < other.Revision {
		t.Fatalf("eventual: applied=%d stream last=%d, want %d and >= %d", applied, streamLast, first.Revision, other.Revision)
	}
	// Session with no token: also served at once (nothing to wait for).
	if r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderReplica, "r2"); r.Body != "first" {
		t.Fatalf("session without token: %q", r.Body)
	}
	// Strong: waits until the replica has the other session's write.
	time.AfterFunc(100*time.Millisecond, lag.Resume)
	r = do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderReplica, "r2", api.HeaderConsistency, "strong")
	if r.Status != 200 || r.Body != "second" {
		t.Fatalf("strong: status=%d body=%q, want second", r.Status, r.Body)
	}
	// Strong on a replica that cannot catch up: 504, never stale.
	lag.Pause()
	defer lag.Resume()
	put(t, s, "k", "third")
	r = do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderReplica, "r2", api.HeaderConsistency, "strong", api.HeaderWait, "200ms")
	if r.Status != 504 {
		t.Fatalf("strong on a stuck replica: status=%d body=%q, want 504", r.Status, r.Body)
	}
	// Bad level.
	if r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderConsistency, "linearizable"); r.Status != 400 {
		t.Fatalf("bad consistency: status=%d", r.Status)
	}

	// Writes follow reads: a write sent with a token gets a later revision.
	g := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderReplica, "r1", api.HeaderConsistency, "strong")
	tok, err := api.ParseToken(g.Header.Get(api.HeaderToken))
	if err != nil {
		t.Fatal(err)
	}
	w := put(t, s, "after-read", "x", api.HeaderToken, tok.String())
	if w.Revision <= tok.Seq {
		t.Fatalf("write with token %d got revision %d", tok.Seq, w.Revision)
	}
}
