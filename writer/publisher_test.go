package writer_test

import (
	"github.com/tidemark/tidemark/internal/natsserver"

	"github.com/tidemark/tidemark/api"

	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/writer"
)

// Many writes at once through one writer: each gets its own revision, and
// the message at that revision is the write.
func TestWrite_Concurrent(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})

		const callers, each = 64, 8
		reqs := make([]api.WriteRequest, callers*each)
		for i := range reqs {
			reqs[i] = put(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
			if i%each == each-1 {
				reqs[i] = del(fmt.Sprintf("k%d", i-1))
			}
		}
		res := make([]api.WriteResult, len(reqs))
		errs := make([]error, len(reqs))
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				for i := c * each; i < (c+1)*each; i++ {
					res[i], errs[i] = w.Write(testContext(t), reqs[i])
				}
			})
		}
		wg.Wait()

		seen := make(map[uint64]int)
		for i, req := range reqs {
			if errs[i] != nil {
				t.Fatalf("write %d: %v", i, errs[i])
			}
			rev := res[i].Revision
			if j, ok := seen[rev]; ok {
				t.Fatalf("writes %d and %d both got revision %d", j, i, rev)
			}
			seen[rev] = i
			if got, want := res[i].Token, e.Stream.Token(rev); got != want {
				t.Fatalf("write %d: Token=%v, want %v", i, got, want)
			}
			m := getMsg(t, e, rev)
			if got, want := m.Subject, e.Stream.KeySubject(req.Key); got != want {
				t.Fatalf("write %d: revision %d has subject %q, want %q", i, rev, got, want)
			}
			if got, want := m.Header.Get(api.HeaderOp), string(req.Op); got != want {
				t.Fatalf("write %d: revision %d has op %q, want %q", i, rev, got, want)
			}
			if !bytes.Equal(m.Data, req.Value) {
				t.Fatalf("write %d: revision %d has data %q, want %q", i, rev, m.Data, req.Value)
			}
		}
		if got, want := lastSeq(t, e), uint64(len(reqs)); got != want {
			t.Fatalf("stream LastSeq=%d, want %d", got, want)
		}
	})
}

// Conditional writes racing through one writer: their expectations travel
// with each message, and the losers' refusals are recognised.
func TestWrite_ConditionalConcurrentOneWriter(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		mustWrite(t, w, put("deleted", "x"))
		mustWrite(t, w, del("deleted"))
		current := mustWrite(t, w, put("current", "x"))

		for _, tt := range []struct {
			name string
			req  api.WriteRequest
		}{
			{"if-absent new", api.WriteRequest{Op: api.OpPut, Key: "new", IfAbsent: true}},
			{"if-absent deleted", api.WriteRequest{Op: api.OpPut, Key: "deleted", IfAbsent: true}},
			{"if-match", api.WriteRequest{Op: api.OpPut, Key: "current", IfRevision: current.Revision}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				oneWins(t, slices.Repeat([]*writer.Writer{w}, 16), tt.req)
			})
		}
	})
}

// A write whose context has ended publishes nothing.
func TestWrite_ContextCancelled(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		first := mustWrite(t, w, put("a", "1"))

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		const writes = 8
		errs := make([]error, writes)
		var wg sync.WaitGroup
		for i := range writes {
			wg.Go(func() { _, errs[i] = w.Write(ctx, put("k", fmt.Sprint(i))) })
		}
		wg.Wait()
		for i, err := range errs {
			if !errors.Is(err, api.ErrUnavailable) {
				t.Fatalf("write %d: err=%v, want %v", i, err, api.ErrUnavailable)
			}
		}
		if got, want := lastSeq(t, e), first.Revision; got != want {
			t.Fatalf("stream LastSeq=%d, want %d (a cancelled write was published)", got, want)
		}
	})
}

// Writes waiting for their acks, or for room to wait for them, return when
// their context ends: their outcome is unknown, and a retry with the same
// write id would tell.
func TestWrite_ContextEndsWhilePending(t *testing.T) {
	for _, tt := range []struct {
		name      string
		writes    int
		published int // that the server receives before the context ends
	}{
		{"one", 1, 1},
		{"many", 64, 64},
		{"more than can wait for acks", writer.MaxPendingAcks + 16, writer.MaxPendingAcks},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := testenv.Start(t)
			// Long timeouts: only the context ends the writes.
			w := newWriter(e, writer.Config{RetryTimeout: time.Minute, AttemptTimeout: time.Minute})
			received := silence(t, e)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errs := make(chan error, tt.writes)
			for i := range tt.writes {
				go func() {
					_, err := w.Write(ctx, put(fmt.Sprint("k", i), "v"))
					errs <- err
				}()
			}
			wait := testContext(t)
			for range tt.published {
				select {
				case <-received:
				case err := <-errs:
					t.Fatalf("a write returned before its context ended: %v", err)
				case <-wait.Done():
					t.Fatal("the writes did not reach the server")
				}
			}
			cancel()
			for range tt.writes {
				select {
				case err := <-errs:
					if !errors.Is(err, api.ErrUnavailable) {
						t.Fatalf("err=%v, want %v", err, api.ErrUnavailable)
					}
				case <-wait.Done():
					t.Fatal("writes still wait after their context ended")
				}
			}
		})
	}
}

// A write waiting for its ack when the connection closes fails at once, as
// one on a closed connection does.
func TestWrite_ConnectionClosesWhilePending(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{RetryTimeout: time.Minute, AttemptTimeout: time.Minute})
		received := silence(t, e)

		errs := make(chan error, 1)
		go func() {
			_, err := w.Write(testContext(t), put("k", "v"))
			errs <- err
		}()
		<-received
		e.Conn.Close()
		wantClosed(t, <-errs)
		_, err := w.Write(testContext(t), put("k", "v"))
		wantClosed(t, err)
	})
}

// The connection closes after the writer has published on it.
func TestWrite_ConnectionClosedAfterWrites(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		mustWrite(t, w, put("k", "v"))
		e.Conn.Close()
		_, err := w.Write(testContext(t), put("k", "v"))
		wantClosed(t, err)
	})
}

func wantClosed(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "connection closed") {
		t.Fatalf("err=%v, want %v saying the connection closed", err, api.ErrUnavailable)
	}
}

// A value the writer accepts but the stream or the NATS server does not.
func TestWrite_TooLargeForTheServer(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		t.Run("stream maximum message size", func(t *testing.T) {
			e := testenv.Start(t)
			w := newWriter(e, writer.Config{})
			ctx := testContext(t)
			s, err := e.JS.Stream(ctx, e.Stream.Name())
			if err != nil {
				t.Fatal(err)
			}
			cfg := s.CachedInfo().Config
			cfg.MaxMsgSize = 1024
			if _, err := e.JS.UpdateStream(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			_, err = w.Write(ctx, put("k", strings.Repeat("v", 2000)))
			wantTooLarge(t, err, "stream's maximum message size")
		})
		t.Run("NATS maximum payload", func(t *testing.T) {
			e := testenv.Start(t)
			w := newWriter(e, writer.Config{MaxValueBytes: 2 * natsserver.DefaultMaxPayload})
			_, err := w.Write(testContext(t), put("k", strings.Repeat("v", natsserver.DefaultMaxPayload)))
			wantTooLarge(t, err, "max_payload is 8388608 bytes")
		})
	})
}

func wantTooLarge(t *testing.T, err error, msg string) {
	t.Helper()
	if !errors.Is(err, api.ErrValueTooLarge) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("err=%v, want %v mentioning %q", err, api.ErrValueTooLarge, msg)
	}
}

// silence replaces the stream with a subscriber, on a connection of its own,
// that receives the writes and never answers: every publish waits for its
// ack. It returns the messages received.
func silence(t *testing.T, e *testenv.Env) <-chan *nats.Msg {
	t.Helper()
	if err := e.JS.DeleteStream(testContext(t), e.Stream.Name()); err != nil {
		t.Fatal(err)
	}
	nc := testenv.Connect(t, e.Server.ClientURL())
	received := make(chan *nats.Msg, 2*writer.MaxPendingAcks)
	if _, err := nc.Subscribe(e.Stream.Subject()+".>", func(m *nats.Msg) { received <- m }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return received
}
