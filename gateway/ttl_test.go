package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"strconv"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
)

// Tidemark-TTL on an HTTP put: bad values and a TTL on a delete are 400
// invalid_request and store nothing; a key expires at one stream position,
// so a session that read the expired 404 on one replica never sees the
// value again on another that applied the stream only up to the put (its
// token makes that replica wait, then 404 at the same revision).
func TestTTLOverHTTP(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2})
	for _, bad := range []string{"0s", "500ms", "-1s", "10", "later"} {
		r := do(t, "PUT", s.URL+"/v1/kv/bad", "v", api.HeaderTTL, bad)
		if r.Status != 400 || errorCode(t, r) != api.CodeInvalidRequest {
			t.Fatalf("PUT with Tidemark-TTL %q: %d %s, want 400 invalid_request", bad, r.Status, r.Body)
		}
	}
	if r := do(t, "GET", s.URL+"/v1/kv/bad", "", api.HeaderConsistency, string(api.Strong)); r.Status != 404 || r.Header.Get(api.HeaderRevision) != "" {
		t.Fatalf("GET of refused puts: %d, revision %q; want 404, never written", r.Status, r.Header.Get(api.HeaderRevision))
	}

	w := put(t, s, "k", "v", api.HeaderTTL, "1s")
	if r := do(t, "DELETE", s.URL+"/v1/kv/k", "", api.HeaderTTL, "5s"); r.Status != 400 || errorCode(t, r) != api.CodeInvalidRequest {
		t.Fatalf("DELETE with Tidemark-TTL: %d %s, want 400 invalid_request", r.Status, r.Body)
	}
	lag := s.Replica(t, "r2")
	testenv.Eventually(t, 10*time.Second, "both replicas to apply the put", func() bool {
		return s.Replica(t, "r1").Applied() >= w.Revision && lag.Applied() >= w.Revision
	})
	lag.Replicator().Pause()
	defer lag.Replicator().Resume()

	var gone stacktest.Response
	testenv.Eventually(t, 20*time.Second, "the key to expire on r1", func() bool {
		gone = do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderToken, w.Token, api.HeaderReplica, "r1")
		return gone.Status == 404
	})
	expiredAt, err := strconv.ParseUint(gone.Header.Get(api.HeaderRevision), 10, 64)
	if err != nil || expiredAt <= w.Revision {
		t.Fatalf("404 after expiry: revision %q, want the expiry's, after the put's %d", gone.Header.Get(api.HeaderRevision), w.Revision)
	}
	token := gone.Header.Get(api.HeaderToken)
	// Without the session's token the paused replica still has the value;
	// with it, the read waits and, as r2 stays paused, times out: never
	// the value.
	if r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderReplica, "r2"); r.Status != 200 || r.Body != "v" {
		t.Fatalf("GET on the paused replica without a token: %d %q, want 200 v", r.Status, r.Body)
	}
	if r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderToken, token, api.HeaderReplica, "r2", api.HeaderWait, "300ms"); r.Status != 504 {
		t.Fatalf("GET on the paused replica with the token of the 404: %d %q, want 504", r.Status, r.Body)
	}
	lag.Replicator().Resume()
	r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderToken, token, api.HeaderReplica, "r2", api.HeaderWait, "10s")
	if r.Status != 404 || r.Header.Get(api.HeaderRevision) != strconv.FormatUint(expiredAt, 10) {
		t.Fatalf("GET on the resumed replica with the token: %d, revision %q; want 404 expired at %d", r.Status, r.Header.Get(api.HeaderRevision), expiredAt)
	}
}
