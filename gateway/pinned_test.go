package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/gateway"
	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replica"
)

// TestPinnedReplica names replicas in Tidemark-Replica: one that does not
// exist is a 400 unknown_replica a client does not retry, and a read pinned
// to a replica that has stopped answering (its replies held, as a paused
// process's are) is forwarded with Tidemark-On-Timeout: forward, never a
// 503 after the wait.
func TestPinnedReplica(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})

	// r2 serves over its own connection, through a proxy that can hold
	// everything it sends.
	proxy, conn := testenv.Proxy(t, s.Server)
	r2 := replica.New(replica.Config{ID: "r2", Dir: filepath.Join(t.TempDir(), "r2"), Stream: s.Stream,
		Conn: conn.Conn, Subjects: s.Subjects, Logger: zerolog.Nop()})
	if err := r2.Open(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r2.Run(ctx) }()
	t.Cleanup(func() {
		proxy.Release()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica r2: %v", err)
		}
		_ = r2.Close()
	})

	w := put(t, s, "k", "v")
	testenv.Eventually(t, 10*time.Second, "r2 serving the write", func() bool {
		r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderToken, w.Token, api.HeaderReplica, "r2")
		return r.Status == 200
	})

	r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderReplica, "r9")
	if r.Status != http.StatusBadRequest || errorCode(t, r) != api.CodeUnknownReplica {
		t.Fatalf("read of replica r9: status=%d body=%s, want 400 %s", r.Status, r.Body, api.CodeUnknownReplica)
	}
	if got := r.Header.Get("Retry-After"); got != "" {
		t.Fatalf("read of replica r9: Retry-After=%q, want none", got)
	}

	proxy.Hold() // r2 receives reads but its answers never leave
	const wait = time.Second
	start := time.Now()
	r = do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderToken, w.Token, api.HeaderReplica, "r2",
		api.HeaderWait, wait.String(), api.HeaderOnTimeout, "forward")
	if r.Status != 200 || r.Body != "v" || r.Header.Get(api.HeaderReplica) != "r1" {
		t.Fatalf("forwarded read pinned to the silent r2: status=%d replica=%q body=%s, want v from r1",
			r.Status, r.Header.Get(api.HeaderReplica), r.Body)
	}
	if took := time.Since(start); took >= wait+gateway.DefaultReplyMargin {
		t.Fatalf("forwarded read took %v, want it answered within the wait of %v and its margin", took, wait)
	}
}
