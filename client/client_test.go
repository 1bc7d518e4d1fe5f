package client_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
)

// tctx is a context that ends with the test, bounded by d.
func tctx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// transports returns both transports to s, by name.
func transports(s *stacktest.Stack) []struct {
	name string
	t    client.Transport
} {
	return []struct {
		name string
		t    client.Transport
	}{
		{"nats", client.NewNATS(s.Conn.Conn, s.Subjects)},
		{"http", client.NewHTTP(s.URL)},
	}
}

// pauseAll holds back every replica of s until the returned func resumes them.
func pauseAll(s *stacktest.Stack) (resume func()) {
	for _, r := range s.Replicas {
		r.Replicator().Pause()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, r := range s.Replicas {
				r.Replicator().Resume()
			}
		})
	}
}

func TestSession_ReadYourWrites(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	for _, tr := range transports(s) {
		t.Run(tr.name, func(t *testing.T) {
			c := client.New(tr.t)
			sess := c.NewSession()
			ctx := tctx(t, 30*time.Second)
			key := "ryw/" + tr.name

			v1, err := sess.Put(ctx, key, []byte("v1"))
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if got, want := sess.Token(), v1.Token; got != want {
				t.Fatalf("Token()=%v, want the put's %v", got, want)
			}
			// Every replica must have applied v1 before they are held back,
			// so that "old state" below is v1. A session Get proves only
			// that the replica which served it had; pausing holds a replica
			// where it is, so wait for each one first.
			for _, r := range s.Replicas {
				testWaitApplied(t, r.Applied, v1.Revision)
			}
			resume := pauseAll(s)
			t.Cleanup(resume)

			v2, err := sess.Put(ctx, key, []byte("v2"))
			if err != nil {
				t.Fatalf("Put v2: %v", err)
			}
			// Without the session: served at once, the old state.
			old, err := c.Get(ctx, key)
			if err != nil {
				t.Fatalf("Get without session: %v", err)
			}
			if got, want := string(old.Record.Value), "v1"; got != want {
				t.Fatalf("Get without session=%q, want the old %q", got, want)
			}
			// With it: waits until a replica has applied v2.
			var resumed atomic.Bool
			timer := time.AfterFunc(300*time.Millisecond, func() { resumed.Store(true); resume() })
			defer timer.Stop()
			got, err := sess.Get(ctx, key, client.WithWait(20*time.Second))
			if err != nil {
				t.Fatalf("Get in session: %v", err)
			}
			if !resumed.Load() {
				t.Fatalf("Get in session returned %q before the replicas were resumed", got.Record.Value)
			}
			if string(got.Record.Value) != "v2" || got.Record.Revision != v2.Revision {
				t.Fatalf("Get in session=%q@%d, want v2@%d", got.Record.Value, got.Record.Revision, v2.Revision)
			}
			if got.Token.Seq < v2.Revision || sess.Token().Seq < v2.Revision {
				t.Fatalf("tokens %v and %v are behind revision %d", got.Token, sess.Token(), v2.Revision)
			}
		})
	}
}

// testWaitApplied waits until applied() reaches seq.
func testWaitApplied(t *testing.T, applied func() uint64, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for applied() < seq {
		if time.Now().After(deadline) {
			t.Fatalf("applied %d, want %d", applied(), seq)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSession_WaitTimeout(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	for _, tr := range transports(s) {
		t.Run(tr.name, func(t *testing.T) {
			ctx := tctx(t, 30*time.Second)
			sess := client.New(tr.t).NewSession()
			resume := pauseAll(s)
			defer resume()
			w, err := sess.Put(ctx, "timeout/"+tr.name, []byte("v"))
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			_, err = sess.Get(ctx, "timeout/"+tr.name, client.WithWait(100*time.Millisecond))
			if !errors.Is(err, api.ErrTokenWaitTimeout) {
				t.Fatalf("Get of a held back write: err=%v, want %v", err, api.ErrTokenWaitTimeout)
			}
			if got := sess.Token(); got != w.Token {
				t.Fatalf("Token()=%v after a timeout, want %v", got, w.Token)
			}
		})
	}
}

func TestClient_Operations(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	for _, tr := range transports(s) {
		t.Run(tr.name, func(t *testing.T) {
			ctx := tctx(t, 30*time.Second)
			sess := client.New(tr.t).NewSession()
			p := tr.name + "/ops/"

			created, err := sess.Put(ctx, p+"a", []byte("1"), client.IfAbsent())
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			_, err = sess.Put(ctx, p+"a", []byte("2"), client.IfAbsent())
			if !errors.Is(err, api.ErrRevisionMismatch) {
				t.Fatalf("create of an existing key: err=%v, want %v", err, api.ErrRevisionMismatch)
			}
			updated, err := sess.Put(ctx, p+"a", []byte("2"), client.IfRevision(created.Revision))
			if err != nil {
				t.Fatalf("update at revision: %v", err)
			}
			if _, err := sess.Put(ctx, p+"a", []byte("3"), client.IfRevision(created.Revision)); !errors.Is(err, api.ErrRevisionMismatch) {
				t.Fatalf("update at a stale revision: err=%v, want %v", err, api.ErrRevisionMismatch)
			}
			got, err := sess.Get(ctx, p+"a")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if string(got.Record.Value) != "2" || got.Record.Revision != updated.Revision {
				t.Fatalf("Get=%q@%d, want 2@%d", got.Record.Value, got.Record.Revision, updated.Revision)
			}

			// A write id makes a retry store once.
			first, err := sess.Put(ctx, p+"b", []byte("x"), client.WithWriteID("order-"+tr.name))
			if err != nil {
				t.Fatalf("Put with a write id: %v", err)
			}
			again, err := client.New(tr.t).Put(ctx, p+"b", []byte("x"), client.WithWriteID("order-"+tr.name))
			if err != nil {
				t.Fatalf("Put with the same write id: %v", err)
			}
			if again.Revision != first.Revision {
				t.Fatalf("retried Put: Revision=%d, want the first's %d", again.Revision, first.Revision)
			}

			del, err := sess.Delete(ctx, p+"a", client.IfRevision(updated.Revision))
			if err != nil {
				t.Fatalf("Delete: %v", err)
			}
			miss, err := sess.Get(ctx, p+"a")
			if !errors.Is(err, api.ErrNotFound) {
				t.Fatalf("Get of a deleted key: err=%v, want %v", err, api.ErrNotFound)
			}
			if !miss.Record.Deleted || miss.Record.Revision != del.Revision {
				t.Fatalf("Get of a deleted key=%+v, want deleted at %d", miss.Record, del.Revision)
			}

			// Scan pages, and ScanAll over them.
			for i := range 5 {
				if _, err := sess.Put(ctx, fmt.Sprintf("%sscan/%d", p, i), []byte{byte('0' + i)}); err != nil {
					t.Fatal(err)
				}
			}
			page, err := sess.Scan(ctx, p+"scan/", client.WithLimit(2))
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if len(page.Items) != 2 || page.Items[0].Key != p+"scan/0" || page.Next != p+"scan/1" {
				t.Fatalf("Scan=%+v", page)
			}
			page, err = sess.Scan(ctx, p+"scan/", client.WithLimit(2), client.WithAfter(page.Next))
			if err != nil || len(page.Items) != 2 || page.Items[0].Key != p+"scan/2" {
				t.Fatalf("Scan page 2=%+v, %v", page, err)
			}
			var keys []string
			for rec, err := range sess.ScanAll(ctx, p+"scan/", client.WithLimit(2)) {
				if err != nil {
					t.Fatalf("ScanAll: %v", err)
				}
				keys = append(keys, rec.Key)
			}
			if got, want := fmt.Sprint(keys), fmt.Sprint([]string{p + "scan/0", p + "scan/1", p + "scan/2", p + "scan/3", p + "scan/4"}); got != want {
				t.Fatalf("ScanAll=%v, want %v", got, want)
			}

			// Errors come back as the stream sentinels.
			if _, err := sess.Put(ctx, "", []byte("x")); !errors.Is(err, api.ErrInvalidKey) {
				t.Fatalf("Put of an empty key: err=%v, want %v", err, api.ErrInvalidKey)
			}
			if _, err := sess.Scan(ctx, "", client.WithLimit(5000)); !errors.Is(err, api.ErrInvalidRequest) {
				t.Fatalf("Scan over the limit: err=%v, want %v", err, api.ErrInvalidRequest)
			}
			future := client.New(tr.t)
			fs, err := client.ResumeSession(future, s.Stream.Token(1<<40).String())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fs.Get(ctx, p+"b"); !errors.Is(err, api.ErrTokenFromFuture) {
				t.Fatalf("Get with a token from the future: err=%v, want %v", err, api.ErrTokenFromFuture)
			}
			other, err := client.ResumeSession(future, api.NewToken("0123456789ab", 1).String())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.Get(ctx, p+"b"); !errors.Is(err, api.ErrTokenStreamMismatch) {
				t.Fatalf("Get with another stream's token: err=%v, want %v", err, api.ErrTokenStreamMismatch)
			}
		})
	}
}

func TestSession_ExportResume(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	ctx := tctx(t, 30*time.Second)
	// One process writes over HTTP and exports its session...
	a := client.New(client.NewHTTP(s.URL)).NewSession()
	if got := a.String(); got != "" {
		t.Fatalf("String() of a new session=%q, want \"\"", got)
	}
	resume := pauseAll(s)
	defer resume()
	w, err := a.Put(ctx, "handoff", []byte("from a"))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	exported := a.String()
	if exported != w.Token.String() {
		t.Fatalf("String()=%q, want the put's token %q", exported, w.Token)
	}
	// ...another resumes it over NATS and reads the write.
	b, err := client.ResumeSession(client.New(client.NewNATS(s.Conn.Conn, s.Subjects)), exported)
	if err != nil {
		t.Fatalf("ResumeSession: %v", err)
	}
	if b.ID() == a.ID() {
		t.Fatalf("resumed session has the same id %q; want its own", b.ID())
	}
	time.AfterFunc(100*time.Millisecond, resume)
	got, err := b.Get(ctx, "handoff")
	if err != nil || string(got.Record.Value) != "from a" {
		t.Fatalf("Get in the resumed session=%q, %v; want %q", got.Record.Value, err, "from a")
	}

	if _, err := client.ResumeSession(client.New(client.NewHTTP(s.URL)), "not a token"); !errors.Is(err, api.ErrInvalidToken) {
		t.Fatalf("ResumeSession of garbage: err=%v, want %v", err, api.ErrInvalidToken)
	}
	if err := b.Merge(api.NewToken("0123456789ab", 1)); !errors.Is(err, api.ErrTokenStreamMismatch) {
		t.Fatalf("Merge of another stream's token: err=%v, want %v", err, api.ErrTokenStreamMismatch)
	}
	if got, want := b.Token(), w.Token; got.Stream != want.Stream || got.Seq < want.Seq {
		t.Fatalf("Token()=%v after a refused merge, want at least %v", got, want)
	}
}

// recorder is a Transport that passes writes on and records them; lose
// makes it report a write that was stored as failed, as a reply lost on
// the way back does.
type recorder struct {
	client.Transport

	mu       sync.Mutex
	writes   []api.WriteRequest
	inFlight int
	overlap  bool
	lose     int // the next lose writes are reported as failed
}

func (r *recorder) Write(ctx context.Context, req api.WriteRequest) (api.WriteResult, error) {
	r.mu.Lock()
	r.writes = append(r.writes, req)
	r.inFlight++
	r.overlap = r.overlap || r.inFlight > 1
	r.mu.Unlock()
	res, err := r.Transport.Write(ctx, req)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight--
	if err == nil && r.lose > 0 {
		r.lose--
		return api.WriteResult{Key: req.Key, Token: req.Token}, api.Errorf(api.ErrUnavailable, "reply lost")
	}
	return res, err
}

func (r *recorder) sent() []api.WriteRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]api.WriteRequest(nil), r.writes...)
}

func TestSession_OrderedWrites(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	ctx := tctx(t, 30*time.Second)
	rec := &recorder{Transport: client.NewNATS(s.Conn.Conn, s.Subjects)}
	sess := client.New(rec).NewSession()

	// Concurrent writes of one session go one at a time, numbered in the
	// order they are sent.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := sess.Put(ctx, fmt.Sprintf("ordered/%d", i), []byte("v")); err != nil {
				t.Errorf("Put: %v", err)
			}
		})
	}
	wg.Wait()
	sent := rec.sent()
	if rec.overlap {
		t.Fatalf("a session had two writes in flight at once")
	}
	if got, want := len(sent), 20; got != want {
		t.Fatalf("sent %d writes, want %d", got, want)
	}
	for i, w := range sent {
		if w.Session != sess.ID() || w.SessionSeq != uint64(i+1) || w.WriteID == "" {
			t.Fatalf("write %d: Session=%q SessionSeq=%d WriteID=%q, want %q, %d and an id", i, w.Session, w.SessionSeq, w.WriteID, sess.ID(), i+1)
		}
	}
	if got := sess.Token().Seq; got < 20 {
		t.Fatalf("Token().Seq=%d after 20 writes, want at least 20", got)
	}
}

func TestSession_IndeterminateWrite(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	ctx := tctx(t, 30*time.Second)
	nats := client.NewNATS(s.Conn.Conn, s.Subjects)

	t.Run("retried by the session", func(t *testing.T) {
		rec := &recorder{Transport: nats, lose: 1}
		sess := client.New(rec).NewSession()
		res, err := sess.Put(ctx, "lost/1", []byte("v"))
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		sent := rec.sent()
		if len(sent) != 2 || sent[0].WriteID != sent[1].WriteID || sent[0].SessionSeq != sent[1].SessionSeq {
			t.Fatalf("sent %+v, want the same write twice", sent)
		}
		assertStoredOnce(t, s, "lost/1", res.Revision)
	})
	t.Run("called again", func(t *testing.T) {
		rec := &recorder{Transport: nats, lose: 1}
		sess := client.New(rec, client.WithWriteAttempts(1)).NewSession()
		if _, err := sess.Put(ctx, "lost/2", []byte("v")); !errors.Is(err, api.ErrUnavailable) {
			t.Fatalf("Put with its reply lost: err=%v, want %v", err, api.ErrUnavailable)
		}
		res, err := sess.Put(ctx, "lost/2", []byte("v"))
		if err != nil {
			t.Fatalf("Put again: %v", err)
		}
		// A different write afterwards gets the next number and its own id.
		if _, err := sess.Put(ctx, "lost/3", []byte("w")); err != nil {
			t.Fatalf("Put of another value: %v", err)
		}
		sent := rec.sent()
		if len(sent) != 3 || sent[0].WriteID != sent[1].WriteID || sent[0].SessionSeq != 1 || sent[1].SessionSeq != 1 ||
			sent[2].SessionSeq != 2 || sent[2].WriteID == sent[0].WriteID {
			t.Fatalf("sent %+v, want write 1 twice with one id, then write 2", sent)
		}
		assertStoredOnce(t, s, "lost/2", res.Revision)
	})
}

// TestSession_LateWrite shows what the numbering buys: a session's write
// that arrives after a later write of the session (its reply was lost, the
// caller moved on, and the request turned up late) is refused, so the later
// write stays the key's value.
func TestSession_LateWrite(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	ctx := tctx(t, 30*time.Second)
	for _, tr := range transports(s) {
		t.Run(tr.name, func(t *testing.T) {
			key := "late/" + tr.name
			rec := &recorder{Transport: tr.t}
			sess := client.New(rec).NewSession()
			first, err := sess.Put(ctx, key, []byte("first"))
			if err != nil {
				t.Fatal(err)
			}
			second, err := sess.Put(ctx, key, []byte("second"))
			if err != nil {
				t.Fatal(err)
			}
			// The first write again, as a late copy of its request: same
			// session, number and write id.
			late := rec.sent()[0]
			if _, err := tr.t.Write(ctx, late); !errors.Is(err, api.ErrOutOfOrder) {
				t.Fatalf("late write: err=%v, want %v", err, api.ErrOutOfOrder)
			}
			got, err := sess.Get(ctx, key)
			if err != nil || string(got.Record.Value) != "second" || got.Record.Revision != second.Revision {
				t.Fatalf("Get=%q@%d, %v; want second@%d (first was %d)", got.Record.Value, got.Record.Revision, err, second.Revision, first.Revision)
			}
		})
	}
}

// assertStoredOnce checks that the stream holds exactly one message on
// key's subject, the write at rev.
func assertStoredOnce(t *testing.T, s *stacktest.Stack, key string, rev uint64) {
	t.Helper()
	ctx := tctx(t, 10*time.Second)
	info, err := s.Stream.Handle().Info(ctx, jetstream.WithSubjectFilter(s.Stream.KeySubject(key)))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.State.Subjects[s.Stream.KeySubject(key)], uint64(1); got != want {
		t.Fatalf("%d messages stored for %q, want %d (revision %d)", got, key, want, rev)
	}
}
