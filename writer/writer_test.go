package writer_test

import (
	"github.com/tidemark/tidemark/internal/natsserver"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/writer"
)

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newWriterFunc returns a writer of cfg on e's stream, or on cfg.Stream
// when it is set.
type newWriterFunc func(e *testenv.Env, cfg writer.Config) *writer.Writer

// inModes runs test once for each way a writer publishes: one write after
// another, and with group commit, every write in an atomic batch.
func inModes(t *testing.T, test func(t *testing.T, newWriter newWriterFunc)) {
	for _, mode := range []struct {
		name string
		new  func(writer.Config) *writer.Writer
	}{
		{"one-by-one", writer.New},
		{"batches", writer.NewBatchingEveryWrite},
	} {
		t.Run(mode.name, func(t *testing.T) {
			test(t, func(e *testenv.Env, cfg writer.Config) *writer.Writer {
				if cfg.Stream == nil {
					cfg.Stream = e.Stream
				}
				return mode.new(cfg)
			})
		})
	}
}

// newWriter is a writer of cfg on e's stream that publishes one write
// after another.
func newWriter(e *testenv.Env, cfg writer.Config) *writer.Writer {
	cfg.Stream = e.Stream
	return writer.New(cfg)
}

func put(key, value string) api.WriteRequest {
	return api.WriteRequest{Op: api.OpPut, Key: key, Value: []byte(value)}
}

func del(key string) api.WriteRequest {
	return api.WriteRequest{Op: api.OpDelete, Key: key}
}

func mustWrite(t *testing.T, w *writer.Writer, req api.WriteRequest) api.WriteResult {
	t.Helper()
	res, err := w.Write(testContext(t), req)
	if err != nil {
		t.Fatalf("Write(%s %q): %v", req.Op, req.Key, err)
	}
	return res
}

// lastSeq asks the server for the stream's last sequence.
func lastSeq(t *testing.T, e *testenv.Env) uint64 {
	t.Helper()
	info, err := e.Stream.Info(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

func getMsg(t *testing.T, e *testenv.Env, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	ctx := testContext(t)
	s, err := e.JS.Stream(ctx, e.Stream.Name())
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		t.Fatalf("GetMsg(%d): %v", seq, err)
	}
	return m
}

func TestWrite(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})

		reqs := []api.WriteRequest{put("a", "1"), put("b/ü ?", ""), put("a", "2"), del("a")}
		var prev api.WriteResult
		for i, req := range reqs {
			res := mustWrite(t, w, req)
			if got, want := res.Key, req.Key; got != want {
				t.Fatalf("write %d: Key=%q, want %q", i, got, want)
			}
			if res.Revision <= prev.Revision {
				t.Fatalf("write %d: Revision=%d, want > %d", i, res.Revision, prev.Revision)
			}
			if got, want := res.Token, e.Stream.Token(res.Revision); got != want {
				t.Fatalf("write %d: Token=%v, want %v", i, got, want)
			}
			if got, want := e.Stream.KnownLast(), res.Revision; got < want {
				t.Fatalf("write %d: KnownLast()=%d, want >= %d", i, got, want)
			}

			m := getMsg(t, e, res.Revision)
			if got, want := m.Subject, e.Stream.KeySubject(req.Key); got != want {
				t.Fatalf("write %d: Subject=%q, want %q", i, got, want)
			}
			if got, want := m.Header.Get(api.HeaderOp), string(req.Op); got != want {
				t.Fatalf("write %d: op header=%q, want %q", i, got, want)
			}
			if got, want := string(m.Data), string(req.Value); got != want {
				t.Fatalf("write %d: data=%q, want %q", i, got, want)
			}
			if m.Header.Get(stream.HeaderMsgID) == "" {
				t.Fatalf("write %d: no %s header", i, stream.HeaderMsgID)
			}
			ent, err := stream.DecodeEntry(e.Stream.Subject(), m.Subject, m.Header.Get(api.HeaderOp), m.Data)
			if err != nil {
				t.Fatalf("write %d: DecodeEntry: %v", i, err)
			}
			if got, want := ent.Key, req.Key; got != want {
				t.Fatalf("write %d: entry Key=%q, want %q", i, got, want)
			}
			prev = res
		}
		if got, want := lastSeq(t, e), prev.Revision; got != want {
			t.Fatalf("stream LastSeq=%d, want %d", got, want)
		}
	})
}

func TestWrite_Token(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		first := mustWrite(t, w, put("a", "1"))

		req := put("b", "2")
		req.Token = first.Token
		res := mustWrite(t, w, req)
		if got, want := res.Token, e.Stream.Token(res.Revision); got != want {
			t.Fatalf("Token=%v, want %v", got, want)
		}
		if res.Revision <= first.Revision {
			t.Fatalf("Revision=%d, want > %d", res.Revision, first.Revision)
		}
	})
}

func TestWrite_Duplicate(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})

		req := put("k", "v")
		req.WriteID = "write-1"
		first := mustWrite(t, w, req)
		mustWrite(t, w, put("other", "x"))
		last := lastSeq(t, e)

		// A retry, made by a session that has seen a later write since: the
		// same revision, and a token that does not go back.
		retry := req
		retry.Token = e.Stream.Token(last)
		res := mustWrite(t, w, retry)
		if got, want := res.Revision, first.Revision; got != want {
			t.Fatalf("retry Revision=%d, want %d", got, want)
		}
		if got, want := res.Token, e.Stream.Token(last); got != want {
			t.Fatalf("retry Token=%v, want %v", got, want)
		}
		if got, want := lastSeq(t, e), last; got != want {
			t.Fatalf("stream LastSeq=%d after retry, want %d (stored twice?)", got, want)
		}

		// Without a write id every write is new.
		a := mustWrite(t, w, put("k", "v"))
		b := mustWrite(t, w, put("k", "v"))
		if a.Revision == b.Revision {
			t.Fatalf("two writes without write id got one revision %d", a.Revision)
		}
	})
}

func TestWrite_Invalid(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{MaxValueBytes: 8})
		first := mustWrite(t, w, put("a", "1"))

		for _, tt := range []struct {
			name string
			req  api.WriteRequest
			want error
			msg  string // in the error message
		}{
			{"value too large", put("a", "123456789"), api.ErrValueTooLarge, "9 bytes, over the configured limit of 8 bytes"},
			{"empty key", put("", "v"), api.ErrInvalidKey, "empty"},
			{"long key", put(strings.Repeat("k", api.MaxKeyLen+1), "v"), api.ErrInvalidKey, "1025 bytes"},
			{"key not utf-8", put("a\xff", "v"), api.ErrInvalidKey, "UTF-8"},
			{"unknown op", api.WriteRequest{Op: "merge", Key: "a"}, api.ErrInvalidRequest, "merge"},
			{"delete with value", api.WriteRequest{Op: api.OpDelete, Key: "a", Value: []byte("x")}, api.ErrInvalidRequest, "value"},
			{"delete if absent", api.WriteRequest{Op: api.OpDelete, Key: "a", IfAbsent: true}, api.ErrInvalidRequest, "If-None-Match"},
			{"both conditions", api.WriteRequest{Op: api.OpPut, Key: "a", IfAbsent: true, IfRevision: 1}, api.ErrInvalidRequest, "together"},
			{"long write id", api.WriteRequest{Op: api.OpPut, Key: "a", WriteID: strings.Repeat("x", api.MaxWriteIDLen+1)}, api.ErrInvalidRequest, "write id"},
			{"write id with newline", api.WriteRequest{Op: api.OpPut, Key: "a", WriteID: "x\r\ny"}, api.ErrInvalidRequest, "write id"},
			{"foreign token", api.WriteRequest{Op: api.OpPut, Key: "a", Token: api.NewToken("0ther", 1)}, api.ErrTokenStreamMismatch, "0ther"},
			{"future token", api.WriteRequest{Op: api.OpPut, Key: "a", Token: e.Stream.Token(first.Revision + 100)}, api.ErrTokenFromFuture, "101"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				res, err := w.Write(testContext(t), tt.req)
				if !errors.Is(err, tt.want) {
					t.Fatalf("Write: err=%v, want %v", err, tt.want)
				}
				if !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("Write: err=%q, want it to mention %q", err, tt.msg)
				}
				if got, want := res.Revision, uint64(0); got != want {
					t.Fatalf("Revision=%d, want %d", got, want)
				}
				if got, want := lastSeq(t, e), first.Revision; got != want {
					t.Fatalf("stream LastSeq=%d, want %d (something was published)", got, want)
				}
			})
		}
	})
}

func TestWrite_IfRevision(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		v1 := mustWrite(t, w, put("k", "1"))

		req := put("k", "2")
		req.IfRevision = v1.Revision
		v2 := mustWrite(t, w, req)
		if got, want := string(getMsg(t, e, v2.Revision).Data), "2"; got != want {
			t.Fatalf("stored value=%q, want %q", got, want)
		}

		// The same condition again loses: the key is at v2 now.
		req = put("k", "3")
		req.IfRevision = v1.Revision
		_, err := w.Write(testContext(t), req)
		wantMismatch(t, err, fmt.Sprintf("current revision is %d", v2.Revision))

		// A revision of another key.
		other := mustWrite(t, w, put("other", "x"))
		req.IfRevision = other.Revision
		_, err = w.Write(testContext(t), req)
		wantMismatch(t, err, fmt.Sprintf("current revision is %d", v2.Revision))

		// A revision beyond the stream, and a key never written.
		req.IfRevision = other.Revision + 1000
		_, err = w.Write(testContext(t), req)
		wantMismatch(t, err, fmt.Sprintf("current revision is %d", v2.Revision))
		req = put("never", "x")
		req.IfRevision = v1.Revision
		_, err = w.Write(testContext(t), req)
		wantMismatch(t, err, "does not exist")

		if got, want := lastSeq(t, e), other.Revision; got != want {
			t.Fatalf("stream LastSeq=%d, want %d (a lost write was published)", got, want)
		}

		// A conditional delete.
		d := del("k")
		d.IfRevision = v2.Revision
		mustWrite(t, w, d)
	})
}

func TestWrite_IfRevisionDeleted(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		v1 := mustWrite(t, w, put("k", "1"))
		gone := mustWrite(t, w, del("k"))

		// Neither the put before the delete nor the delete itself is a current
		// revision of the key: it does not exist. JetStream's expected last
		// subject sequence would accept the delete's sequence.
		for _, rev := range []uint64{v1.Revision, gone.Revision} {
			req := put("k", "2")
			req.IfRevision = rev
			_, err := w.Write(testContext(t), req)
			wantMismatch(t, err, fmt.Sprintf("deleted at revision %d", gone.Revision))
		}
		if got, want := lastSeq(t, e), gone.Revision; got != want {
			t.Fatalf("stream LastSeq=%d, want %d (a lost write was published)", got, want)
		}
	})
}

func TestWrite_IfAbsent(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		create := func(value string) api.WriteRequest {
			req := put("k", value)
			req.IfAbsent = true
			return req
		}

		v1 := mustWrite(t, w, create("1"))
		_, err := w.Write(testContext(t), create("2"))
		wantMismatch(t, err, fmt.Sprintf("current revision is %d", v1.Revision))

		mustWrite(t, w, del("k"))
		v3 := mustWrite(t, w, create("3"))
		if got, want := string(getMsg(t, e, v3.Revision).Data), "3"; got != want {
			t.Fatalf("stored value=%q, want %q", got, want)
		}
		_, err = w.Write(testContext(t), create("4"))
		wantMismatch(t, err, fmt.Sprintf("current revision is %d", v3.Revision))
		if got, want := lastSeq(t, e), v3.Revision; got != want {
			t.Fatalf("stream LastSeq=%d, want %d (a lost write was published)", got, want)
		}
	})
}

func TestWrite_IfAbsentConcurrent(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		mustWrite(t, w, put("deleted", "x"))
		mustWrite(t, w, del("deleted"))

		for _, key := range []string{"new", "deleted"} {
			t.Run(key, func(t *testing.T) {
				oneWins(t, separateWriters(newWriter, e, 8), api.WriteRequest{Op: api.OpPut, Key: key, IfAbsent: true})
			})
		}
	})
}

func TestWrite_IfRevisionConcurrent(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		v1 := mustWrite(t, w, put("k", "1"))
		oneWins(t, separateWriters(newWriter, e, 8), api.WriteRequest{Op: api.OpPut, Key: "k", IfRevision: v1.Revision})
	})
}

// separateWriters returns n Writers on e: as if on separate writer processes.
func separateWriters(newWriter newWriterFunc, e *testenv.Env, n int) []*writer.Writer {
	ws := make([]*writer.Writer, n)
	for i := range ws {
		ws[i] = newWriter(e, writer.Config{})
	}
	return ws
}

// oneWins writes req through each of ws at once, with value i for ws[i]:
// exactly one write must win, the others lose with ErrRevisionMismatch.
func oneWins(t *testing.T, ws []*writer.Writer, req api.WriteRequest) {
	t.Helper()
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Go(func() {
			req := req
			req.Value = []byte(fmt.Sprint(i))
			_, errs[i] = w.Write(testContext(t), req)
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, api.ErrRevisionMismatch):
			t.Fatalf("write %d: err=%v, want nil or %v", i, err, api.ErrRevisionMismatch)
		}
	}
	if got, want := won, 1; got != want {
		t.Fatalf("%d writes won, want %d", got, want)
	}
}

// A retried conditional write that was stored returns its revision, even
// though its condition no longer holds (a single JetStream server checks the
// expected sequence before the duplicate window).
func TestWrite_ConditionalDuplicate(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})

		create := put("c", "1")
		create.IfAbsent = true
		create.WriteID = "create-1"
		v1 := mustWrite(t, w, create)
		if got, want := mustWrite(t, w, create).Revision, v1.Revision; got != want {
			t.Fatalf("retried IfAbsent: Revision=%d, want %d", got, want)
		}

		update := put("c", "2")
		update.IfRevision = v1.Revision
		update.WriteID = "update-1"
		v2 := mustWrite(t, w, update)
		mustWrite(t, w, put("c", "3")) // another writer moves the key on
		if got, want := mustWrite(t, w, update).Revision, v2.Revision; got != want {
			t.Fatalf("retried If-Match: Revision=%d, want %d", got, want)
		}

		// A different write with the same condition still loses.
		other := update
		other.WriteID = "update-2"
		_, err := w.Write(testContext(t), other)
		wantMismatch(t, err, "current revision is")
		if got, want := lastSeq(t, e), v2.Revision+1; got != want {
			t.Fatalf("stream LastSeq=%d, want %d", got, want)
		}
	})
}

func wantMismatch(t *testing.T, err error, msg string) {
	t.Helper()
	if !errors.Is(err, api.ErrRevisionMismatch) {
		t.Fatalf("err=%v, want %v", err, api.ErrRevisionMismatch)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Fatalf("err=%q, want it to mention %q", err, msg)
	}
	if got, want := api.Code(err), api.CodeRevisionMismatch; got != want {
		t.Fatalf("Code=%q, want %q", got, want)
	}
}

// The stream's server goes away mid-write and comes back: the write retries
// with the same message id until it is stored, once.
func TestWrite_RetriesUntilStreamIsBack(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		dir := t.TempDir()
		e := testenv.StartDir(t, dir)
		retrying := make(chan struct{})
		var once sync.Once
		log := zerolog.New(signalWriter{"retrying", func() { once.Do(func() { close(retrying) }) }}).Level(zerolog.DebugLevel)
		w := newWriter(e, writer.Config{Logger: log, AttemptTimeout: 250 * time.Millisecond})
		mustWrite(t, w, put("before", "x"))

		addr := e.Server.Addr().String()
		e.Server.Shutdown()
		e.Server.WaitForShutdown()

		type result struct {
			res api.WriteResult
			err error
		}
		done := make(chan result, 1)
		req := put("k", "v")
		go func() {
			res, err := w.Write(testContext(t), req)
			done <- result{res, err}
		}()
		select {
		case <-retrying:
		case r := <-done:
			t.Fatalf("Write with the server down returned %+v, %v; want it to retry", r.res, r.err)
		}
		s, err := natsserver.StartServer(natsserver.ServerConfig{Listen: addr, StoreDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })

		r := <-done
		if r.err != nil {
			t.Fatalf("Write: %v", r.err)
		}
		if got, want := r.res.Revision, uint64(2); got != want {
			t.Fatalf("Revision=%d, want %d", got, want)
		}
		if got, want := lastSeq(t, e), uint64(2); got != want {
			t.Fatalf("stream LastSeq=%d, want %d", got, want)
		}
	})
}

func TestWrite_Unavailable(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{RetryTimeout: 300 * time.Millisecond})
		if err := e.JS.DeleteStream(testContext(t), e.Stream.Name()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := w.Write(testContext(t), put("k", "v"))
		if !errors.Is(err, api.ErrUnavailable) {
			t.Fatalf("err=%v, want %v", err, api.ErrUnavailable)
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Fatalf("Write took %v, want about the retry timeout", elapsed)
		}

		// The caller's context ends the retries too.
		w = newWriter(e, writer.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if _, err := w.Write(ctx, put("k", "v")); !errors.Is(err, api.ErrUnavailable) {
			t.Fatalf("err=%v, want %v", err, api.ErrUnavailable)
		}
	})
}

func TestWrite_ConnectionClosed(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		e.Conn.Close()
		_, err := w.Write(testContext(t), put("k", "v"))
		if !errors.Is(err, api.ErrUnavailable) {
			t.Fatalf("err=%v, want %v", err, api.ErrUnavailable)
		}
	})
}

// signalWriter calls fn on every log line that contains substr.
type signalWriter struct {
	substr string
	fn     func()
}

func (s signalWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), s.substr) {
		s.fn()
	}
	return len(p), nil
}
