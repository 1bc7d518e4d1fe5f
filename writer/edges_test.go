package writer_test

import (
	"github.com/tidemark/tidemark/api"

	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/writer"
)

// A write id names one write: reusing it for another key, op or value is
// refused with ErrWriteIDReused and stores nothing, on every write path;
// the same write sent again gets its revision.
func TestWrite_WriteIDReused(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		first := put("a", "1")
		first.WriteID = "X"
		v1 := mustWrite(t, w, first)
		mustWrite(t, w, put("a", "other")) // the key moves on
		cur := lastSeq(t, e)

		with := func(req api.WriteRequest) api.WriteRequest { req.WriteID = "X"; return req }
		ifAbsent := func(req api.WriteRequest) api.WriteRequest { req.IfAbsent = true; return req }
		ifRev := func(req api.WriteRequest, rev uint64) api.WriteRequest { req.IfRevision = rev; return req }
		session := func(req api.WriteRequest, n uint64) api.WriteRequest {
			req.Session, req.SessionSeq = "s", n
			return req
		}
		for _, tc := range []struct {
			name string
			req  api.WriteRequest
		}{
			{"another key", with(put("b", "1"))},
			{"another value", with(put("a", "2"))},
			{"a delete", with(del("a"))},
			{"another key, create only", with(ifAbsent(put("fresh", "1")))},
			{"another value, if-match", with(ifRev(put("a", "3"), cur))},
			{"another key, in a session", with(session(put("c", "1"), 1))},
			{"another key, create only in a session", with(session(ifAbsent(put("d", "1")), 2))},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := lastSeq(t, e)
				res, err := w.Write(testContext(t), tc.req)
				if !errors.Is(err, api.ErrWriteIDReused) {
					t.Fatalf("Write=%+v, %v; want %v", res, err, api.ErrWriteIDReused)
				}
				if got, want := api.Code(err), api.CodeWriteIDReused; got != want {
					t.Fatalf("Code=%q, want %q", got, want)
				}
				// Nothing stored but, in a session, its order marker.
				for seq := before + 1; seq <= lastSeq(t, e); seq++ {
					if m := getMsg(t, e, seq); m.Header.Get(api.HeaderOp) != string(stream.OpSession) {
						t.Fatalf("message %d on %s stored by a refused write", seq, m.Subject)
					}
				}
			})
		}
		if got, want := mustWrite(t, w, first).Revision, v1.Revision; got != want {
			t.Fatalf("the same write again: Revision=%d, want %d", got, want)
		}
	})
}

// Two writers (separate connections, as separate processes) given the same
// session number at once never both succeed, and every write they
// acknowledge is one the replicas apply: the stream holds each session's
// acknowledged writes in increasing order.
func TestWrite_SessionOrderAcrossWriters(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		ws := separateWriters(newWriter, e, 2)
		for _, conditional := range []bool{false, true} {
			t.Run(fmt.Sprintf("conditional=%v", conditional), func(t *testing.T) {
				for trial := range 20 {
					sess := fmt.Sprintf("s%v%d", conditional, trial)
					// Same number through both writers; then numbers 1 and 2 at once.
					for _, nums := range [][2]uint64{{1, 1}, {2, 3}} {
						errs := make([]error, 2)
						res := make([]api.WriteResult, 2)
						var wg sync.WaitGroup
						for i := range 2 {
							wg.Go(func() {
								req := put(fmt.Sprintf("%s-%d-k%d", sess, nums[0], i), fmt.Sprint(i))
								req.Session, req.SessionSeq = sess, nums[i]
								req.IfAbsent = conditional
								res[i], errs[i] = ws[i].Write(testContext(t), req)
							})
						}
						wg.Wait()
						ok := 0
						for i, err := range errs {
							switch {
							case err == nil:
								ok++
							case !errors.Is(err, api.ErrOutOfOrder):
								t.Fatalf("trial %d %v: write %d: %v, want nil or %v", trial, nums, i, err, api.ErrOutOfOrder)
							}
						}
						if nums[0] == nums[1] && ok != 1 {
							t.Fatalf("trial %d: %d writes with session number %d succeeded, want exactly 1", trial, ok, nums[0])
						}
						if ok == 2 && (res[0].Revision > res[1].Revision) != (nums[0] > nums[1]) {
							t.Fatalf("trial %d: write %d at %d and write %d at %d: stored out of session order",
								trial, nums[0], res[0].Revision, nums[1], res[1].Revision)
						}
					}
				}
			})
		}
		// Every replica applies the stream by the session rule: a write whose
		// number is not above its session's highest so far is left out. Read
		// the stream as a replica does: nothing may be left out.
		high := map[string]uint64{}
		for seq := uint64(1); seq <= lastSeq(t, e); seq++ {
			m := getMsg(t, e, seq)
			ent, err := stream.DecodeMessage(e.Stream.Subject(), m.Subject, m.Header, m.Data)
			if err != nil {
				t.Fatalf("message %d: %v", seq, err)
			}
			if ent.Op == stream.OpSession || ent.Session == "" {
				continue
			}
			if ent.SessionSeq <= high[ent.Session] {
				t.Fatalf("message %d: write %d of session %s after write %d: replicas would leave it out",
					seq, ent.SessionSeq, ent.Session, high[ent.Session])
			}
			high[ent.Session] = ent.SessionSeq
		}
	})
}

// A writer that keeps running while its stream is deleted and recreated
// (by another writer's Ensure) hands out tokens of the new stream for
// writes the new stream holds, never of the old one; and it takes the new
// stream's tokens at once.
func TestWrite_StreamRecreated(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		conn := testenv.Connect(t, e.Server.ClientURL())
		js, err := jetstream.New(conn.Conn)
		if err != nil {
			t.Fatal(err)
		}
		st, err := stream.Open(testContext(t), js, e.Config)
		if err != nil {
			t.Fatal(err)
		}
		w := newWriter(nil, writer.Config{Stream: st})
		for i := range 5 {
			mustWrite(t, w, put(fmt.Sprint("k", i), "old"))
		}
		old := st.ID()
		if err := e.JS.DeleteStream(testContext(t), e.Config.Name); err != nil {
			t.Fatal(err)
		}
		fresh, err := stream.Ensure(testContext(t), e.JS, e.Config)
		if err != nil {
			t.Fatal(err)
		}
		if fresh.ID() == old {
			t.Fatal("recreated stream kept its identity")
		}
		res := mustWrite(t, w, put("k", "new"))
		if got, want := res.Token.Stream, fresh.ID(); got != want {
			t.Fatalf("token of a write into the recreated stream names stream %s, want %s (the old one was %s)", got, want, old)
		}
		m, err := fresh.Handle().GetMsg(testContext(t), res.Revision)
		if err != nil || string(m.Data) != "new" {
			t.Fatalf("recreated stream at %d: %v %v, want the write", res.Revision, m, err)
		}
		// A token of the old stream is refused; one of the new is taken.
		req := put("k", "newer")
		req.Token = api.NewToken(old, 1)
		if _, err := w.Write(testContext(t), req); !errors.Is(err, api.ErrTokenStreamMismatch) {
			t.Fatalf("write with an old-stream token: %v, want %v", err, api.ErrTokenStreamMismatch)
		}
		req.Token = res.Token
		mustWrite(t, w, req)
	})
}

// A store restored from an older copy lost its tail: a token the writer
// handed out from that tail is past the stream's end, and a write with it
// is refused as from the future (the session starts again), never stored
// at a revision below the token it was sent with.
func TestWrite_TokenOfALostTail(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		for i := range 5 {
			mustWrite(t, w, put(fmt.Sprint("k", i), "kept"))
		}
		backup := e.BackupStore(t)
		var lost api.WriteResult
		testenv.Eventually(t, 10*time.Second, "a write after the restart", func() bool {
			var err error
			lost, err = w.Write(testContext(t), put("k", "lost"))
			return err == nil
		})
		e.RestoreStore(t, backup)
		// A write sent before the writer is back cannot know of the restore;
		// one sent after its connection is back must.
		testenv.Eventually(t, 10*time.Second, "the writer's connection to come back", func() bool {
			return e.Conn.Conn.IsConnected() && e.Stream.Suspected()
		})

		req := put("k", "after")
		req.Token = lost.Token
		var err error
		testenv.Eventually(t, 10*time.Second, "the writer to answer after the restore", func() bool {
			_, err = w.Write(testContext(t), req)
			return !errors.Is(err, api.ErrUnavailable)
		})
		if !errors.Is(err, api.ErrTokenFromFuture) {
			t.Fatalf("write with a token of the lost tail (%v): %v, want %v", lost.Token, err, api.ErrTokenFromFuture)
		}
	})
}

// A write in flight while the store is restored from an older copy lands
// in the restored stream at or below the session's token: the stream lost
// acknowledged writes that the token covers. The writer answers it as an
// unknown outcome, without a token (not the request's, which now points at
// other writes), and the session's token is refused from then on.
func TestWrite_StoredBelowTheTokenAfterALostTail(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		w := newWriter(e, writer.Config{})
		for i := range 5 {
			mustWrite(t, w, put(fmt.Sprint("k", i), "kept"))
		}
		backup := e.BackupStore(t)
		// The reconnect marks the stream suspect; the next write clears it.
		testenv.Eventually(t, 10*time.Second, "the writer's connection to come back", func() bool {
			return e.Conn.Conn.IsConnected() && e.Stream.Suspected()
		})
		testenv.Eventually(t, 10*time.Second, "a write after the restart", func() bool {
			_, err := w.Write(testContext(t), put("k", "lost"))
			return err == nil
		})
		mustWrite(t, w, put("k", "lost too"))
		first := put("k", "acknowledged")
		first.WriteID = "X"
		acked := mustWrite(t, w, first)
		if e.Stream.Suspected() {
			t.Fatal("stream still suspect after writes: the next write would check its token with the server")
		}

		e.StopServer()
		testenv.RestoreDir(t, backup, e.StoreDir())
		testenv.Eventually(t, 10*time.Second, "the writer's connection to notice", e.Conn.Conn.IsReconnecting)
		// A retry that reuses the write id with other content, sent while the
		// server is down: it passes the token check on what the writer knew,
		// and waits in the connection's buffer for the restored server, whose
		// duplicate window does not know the id.
		retry := put("k", "retried")
		retry.WriteID = "X"
		retry.Token = acked.Token
		type outcome struct {
			res api.WriteResult
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			res, err := w.Write(testContext(t), retry)
			done <- outcome{res, err}
		}()
		testenv.Eventually(t, 10*time.Second, "the write to wait in the connection's buffer", func() bool {
			n, err := e.Conn.Conn.Buffered()
			return err == nil && n > 0
		})
		e.StartServerAgain(t)
		got := <-done
		if !errors.Is(got.err, api.ErrUnavailable) {
			t.Fatalf("write stored below its token %v after a lost tail: %+v, %v; want %v", acked.Token, got.res, got.err, api.ErrUnavailable)
		}
		if !got.res.Token.IsZero() || got.res.Revision != 0 {
			t.Fatalf("failed write returned %+v, want no revision and no token", got.res)
		}
		if last := lastSeq(t, e); last > acked.Token.Seq {
			t.Fatalf("restored stream's last sequence %d is past the token %v: the test did not lose the tail", last, acked.Token)
		}
		// The session's token is from history the stream no longer holds.
		if _, err := w.Write(testContext(t), retry); !errors.Is(err, api.ErrTokenFromFuture) {
			t.Fatalf("write with a token of the lost tail (%v) after the refusal: %v, want %v", acked.Token, err, api.ErrTokenFromFuture)
		}
	})
}
