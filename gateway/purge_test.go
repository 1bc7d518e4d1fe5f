package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
)

// TestConditionalWritesAfterPurge removes every message from the stream
// (as a purge or the stream's limits do) while the replicas keep the keys:
// conditional writes still see each key as it is, not as the emptied
// stream shows it.
func TestConditionalWritesAfterPurge(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2})
	ctx := context.Background()
	live := put(t, s, "live", "v1")
	put(t, s, "gone", "v1")
	gone := do(t, "DELETE", s.URL+"/v1/kv/gone", "")
	if gone.Status != 200 {
		t.Fatalf("DELETE: %d %s", gone.Status, gone.Body)
	}
	last, err := s.Stream.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Replicas {
		testenv.Eventually(t, 10*time.Second, "replica "+r.ID()+" to apply everything", func() bool { return r.Applied() == last })
	}
	if err := s.Stream.Handle().Purge(ctx); err != nil {
		t.Fatal(err)
	}

	// If-None-Match on a live key whose messages are gone: 412, nothing written.
	r := do(t, "PUT", s.URL+"/v1/kv/live", "overwrite", "If-None-Match", "*")
	if r.Status != http.StatusPreconditionFailed {
		t.Fatalf("If-None-Match on a live key after the purge: %d %s, want 412", r.Status, r.Body)
	}
	// If-Match on another revision: 412.
	r = do(t, "PUT", s.URL+"/v1/kv/live", "x", "If-Match", fmt.Sprintf(`"%d"`, live.Revision+1))
	if r.Status != http.StatusPreconditionFailed {
		t.Fatalf("If-Match on a wrong revision after the purge: %d %s, want 412", r.Status, r.Body)
	}
	if got, _ := s.Stream.LastSeq(ctx); got != last {
		t.Fatalf("stream last %d after refused writes, want %d", got, last)
	}
	// If-Match on the key's current revision: stored.
	r = do(t, "PUT", s.URL+"/v1/kv/live", "v2", "If-Match", fmt.Sprintf(`"%d"`, live.Revision))
	if r.Status != 200 {
		t.Fatalf("If-Match on the current revision after the purge: %d %s, want 200", r.Status, r.Body)
	}
	// Then the key has a message again: the same condition now loses.
	r = do(t, "PUT", s.URL+"/v1/kv/live", "v3", "If-Match", fmt.Sprintf(`"%d"`, live.Revision))
	if r.Status != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match after the update: %d %s, want 412", r.Status, r.Body)
	}
	// A key deleted, and one never written, can be created.
	for _, key := range []string{"gone", "never"} {
		if r := do(t, "PUT", s.URL+"/v1/kv/"+key, "new", "If-None-Match", "*"); r.Status != 200 {
			t.Fatalf("If-None-Match on %s after the purge: %d %s, want 200", key, r.Status, r.Body)
		}
	}
	r = do(t, "GET", s.URL+"/v1/kv/live", "", "Tidemark-Consistency", string(api.Strong))
	if r.Status != 200 || r.Body != "v2" {
		t.Fatalf("GET live: %d %q, want v2", r.Status, r.Body)
	}
}
