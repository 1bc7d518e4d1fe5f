package writer_test

import (
	"github.com/tidemark/tidemark/api"

	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/writer"
)

// Conditional writes on keys with a time to live, with no replica running:
// the writer itself moves the idle stream's time with a clock tick when an
// expiry is due. If-None-Match recreates an expired key and fails on a live
// one; If-Match on an expired key fails and on a live one writes; a write
// id names its TTL too.
func TestConditionalTTL(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		ctx := testContext(t)
		ttl := func(req api.WriteRequest, d time.Duration) api.WriteRequest { req.TTL = d; return req }

		short := mustWrite(t, w, ttl(put("short", "v1"), time.Second))
		live := mustWrite(t, w, ttl(put("live", "v1"), time.Hour))
		// A retry under the same write id must carry the same TTL.
		retry := ttl(put("retried", "v"), time.Minute)
		retry.WriteID = "retried-1"
		first := mustWrite(t, w, retry)
		if again := mustWrite(t, w, retry); again.Revision != first.Revision {
			t.Fatalf("retry stored at %d, want the first's %d", again.Revision, first.Revision)
		}
		retry.TTL = 2 * time.Minute
		if _, err := w.Write(ctx, retry); !errors.Is(err, api.ErrWriteIDReused) {
			t.Fatalf("the write id with another TTL: %v, want write_id_reused", err)
		}

		// Live keys: If-None-Match loses, If-Match wins.
		req := put("live", "v2")
		req.IfAbsent = true
		if _, err := w.Write(ctx, req); !errors.Is(err, api.ErrRevisionMismatch) {
			t.Fatalf("If-None-Match on a live TTL key: %v, want revision_mismatch", err)
		}
		req = put("live", "v2")
		req.IfRevision = live.Revision
		mustWrite(t, w, req)

		// Once short's expiry time has passed on this machine's clock the
		// stream is idle, short of a tick, and the writer publishes one.
		m, err := e.Stream.Handle().GetMsg(ctx, short.Revision)
		if err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, "the expiry time to pass", func() bool { return time.Now().After(m.Time.Add(time.Second)) })
		before := lastSeq(t, e)
		req = put("short", "v2")
		req.IfAbsent = true
		again := mustWrite(t, w, req)
		if again.Revision <= before+1 {
			t.Fatalf("recreated at %d, right after %d: want a clock tick between", again.Revision, before)
		}
		tick, err := e.Stream.Handle().GetMsg(ctx, again.Revision-1)
		if err != nil {
			t.Fatal(err)
		}
		if tick.Subject != stream.TickSubject(e.Stream.Subject()) || tick.Header.Get(api.HeaderOp) != string(stream.OpTick) || tick.Time.Before(m.Time.Add(time.Second)) {
			t.Fatalf("message %d before the recreation: %s %q at %v; want a tick at or after the expiry", tick.Sequence, tick.Subject, tick.Header.Get(api.HeaderOp), tick.Time)
		}

		// If-Match on a put whose TTL ran out fails, saying why.
		gone := mustWrite(t, w, ttl(put("gone", "v"), time.Second))
		gm, err := e.Stream.Handle().GetMsg(ctx, gone.Revision)
		if err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, "the expiry time to pass", func() bool { return time.Now().After(gm.Time.Add(time.Second)) })
		mustWrite(t, w, put("other", "moves the stream's time")) // stream time now past the expiry
		req = put("gone", "v2")
		req.IfRevision = gone.Revision
		if _, err := w.Write(ctx, req); !errors.Is(err, api.ErrRevisionMismatch) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("If-Match on an expired key: %v, want revision_mismatch: it expired", err)
		}
	})
}
