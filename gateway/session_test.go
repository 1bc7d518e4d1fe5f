package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/writer"
)

// TestLateWriteIsNotApplied reproduces a write delivered late: a writer's
// NATS connection holds a session's first write (its bytes stuck, as in a
// buffer flushed after a reconnect) until its caller has given up and the
// session's second write has been stored through another writer. When the
// held bytes finally reach the server, the stream refuses them: write 1's
// claim on its session number comes after write 2's, so write 1 is never
// stored, the session's writes are never reordered, and no replica has a
// write to leave out. The first write's caller was told the outcome was
// unknown, not that it succeeded.
func TestLateWriteIsNotApplied(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2})
	ctx := context.Background()

	proxy, _, slowStream := testenv.ProxyStream(t, s.Server, s.Config)
	slow := writer.New(writer.Config{Stream: slowStream, RetryTimeout: 300 * time.Millisecond,
		AttemptTimeout: 100 * time.Millisecond, Logger: zerolog.Nop()})
	// The session has a marker already, so the slow writer's first request
	// is its claim, which the proxy holds.
	w0 := put(t, s, "cart", "empty", api.HeaderSession, "s", api.HeaderSessionSeq, "1", api.HeaderWriteID, "s-1")

	// Write 2 of session s, through the slow writer, whose bytes are held.
	proxy.Hold()
	_, err := slow.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "cart", Value: []byte("one item"),
		Session: "s", SessionSeq: 2, WriteID: "s-2"})
	if !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("held write: err=%v, want ErrUnavailable (an unknown outcome)", err)
	}
	// Write 3 of the session, through the gateway, is stored.
	w2 := put(t, s, "cart", "two items", api.HeaderSession, "s", api.HeaderSessionSeq, "3", api.HeaderWriteID, "s-3")

	// Now write 2's held requests reach the server, after write 3. The
	// stream takes one connection's messages in order, so once a later
	// write through the slow connection is stored, they have been handled.
	proxy.Release()
	var probe api.WriteResult
	testenv.Eventually(t, 10*time.Second, "a write through the slow connection", func() bool {
		probe, err = slow.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "probe", Value: []byte("p")})
		return err == nil
	})
	for seq := w0.Revision; seq <= probe.Revision; seq++ {
		m, err := s.Stream.Handle().GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data) == "one item" {
			t.Fatalf("the late write is in the stream at %d", seq)
		}
	}
	tok := s.Stream.Token(w2.Revision).String()
	for _, id := range []string{"r1", "r2"} {
		r := do(t, "GET", s.URL+"/v1/kv/cart", "", api.HeaderToken, tok, api.HeaderReplica, id)
		if r.Status != 200 || r.Body != "two items" {
			t.Fatalf("%s after the late write: status=%d body=%q, want two items", id, r.Status, r.Body)
		}
		if got := s.Replica(t, id).Replicator().Stats().Skipped; got != 0 {
			t.Fatalf("%s skipped %d writes, want 0: the stream keeps session order", id, got)
		}
	}

	// The same late write sent again through a writer that has seen write 2
	// is refused at once with a clear error.
	r := do(t, "PUT", s.URL+"/v1/kv/cart", "one item", api.HeaderSession, "s", api.HeaderSessionSeq, "2",
		api.HeaderWriteID, "s-2")
	if r.Status != http.StatusConflict || errorCode(t, r) != api.CodeOutOfOrder {
		t.Fatalf("late write through the gateway: status=%d body=%s, want 409 %s", r.Status, r.Body, api.CodeOutOfOrder)
	}
	// A retry of write 3 itself (same write id) is not out of order, and
	// returns the same revision; the same sequence with another write id is.
	again := put(t, s, "cart", "two items", api.HeaderSession, "s", api.HeaderSessionSeq, "3", api.HeaderWriteID, "s-3")
	if got, want := again.Revision, w2.Revision; got != want {
		t.Fatalf("retried write 3: revision %d, want %d", got, want)
	}
	r = do(t, "PUT", s.URL+"/v1/kv/cart", "other", api.HeaderSession, "s", api.HeaderSessionSeq, "3")
	if r.Status != http.StatusConflict {
		t.Fatalf("write 3 with another write id: status=%d, want 409", r.Status)
	}
}
