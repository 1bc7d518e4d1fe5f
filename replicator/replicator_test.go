package replicator_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
	"github.com/tidemark/tidemark/stream"
)

func TestApplyPutsAndDeletes(t *testing.T) {
	env := testenv.Start(t)
	r := open(t, env, t.TempDir())
	run(t, r)

	ws := []write{put("a", "1"), put("b", "2"), del("a"), put("c", ""), put("b", "3"), del("never")}
	last := publish(t, env, ws...)
	waitApplied(t, r, last)

	if got, want := r.Applied(), uint64(len(ws)); got != want {
		t.Fatalf("Applied()=%d, want %d", got, want)
	}
	checkState(t, r, fold(ws), last, []string{"a", "b", "c", "never", "x"})

	rec, applied, err := r.Get("a")
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get(a) err=%v, want ErrNotFound", err)
	}
	if got, want := rec, (api.Record{Key: "a", Revision: 3, Deleted: true}); got.Key != want.Key || got.Revision != want.Revision || !got.Deleted {
		t.Fatalf("Get(a)=%+v, want %+v", got, want)
	}
	if got, want := applied, last; got != want {
		t.Fatalf("Get(a) applied=%d, want %d", got, want)
	}
	if rec, _, err := r.Get("c"); err != nil || rec.Value == nil || len(rec.Value) != 0 {
		t.Fatalf("Get(c)=%+v, %v; want an empty, non-nil value", rec, err)
	}
}

func TestScanPaging(t *testing.T) {
	env := testenv.Start(t)
	r := open(t, env, t.TempDir())
	run(t, r)

	var ws []write
	for i := range 10 {
		ws = append(ws, put(fmt.Sprintf("k%02d", i), fmt.Sprint(i)))
	}
	ws = append(ws, del("k05"), put("j", "before"), put("l", "after"))
	waitApplied(t, r, publish(t, env, ws...))

	tests := []struct {
		name          string
		prefix, after string
		limit         int
		keys          []string
		next          string
	}{
		{"first page", "k", "", 3, []string{"k00", "k01", "k02"}, "k02"},
		{"second page", "k", "k02", 3, []string{"k03", "k04", "k06"}, "k06"},
		{"last page exact", "k", "k06", 3, []string{"k07", "k08", "k09"}, ""},
		{"after the end", "k", "k09", 3, nil, ""},
		{"after before prefix", "k", "a", 2, []string{"k00", "k01"}, "k01"},
		{"after past prefix", "k", "kz", 2, nil, ""},
		{"no prefix", "", "k08", 5, []string{"k09", "l"}, ""},
		{"after a deleted key", "k", "k05", 1, []string{"k06"}, "k06"},
		{"no match", "zz", "", 10, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, next, _, err := r.Scan(tt.prefix, tt.after, tt.limit, nil)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, it := range items {
				keys = append(keys, it.Key)
			}
			if got, want := fmt.Sprint(keys), fmt.Sprint(tt.keys); got != want {
				t.Fatalf("keys=%v, want %v", got, want)
			}
			if got, want := next, tt.next; got != want {
				t.Fatalf("next=%q, want %q", got, want)
			}
		})
	}
}

func TestBatching(t *testing.T) {
	env := testenv.Start(t)
	const n = 3000
	ws := make([]write, n)
	for i := range ws {
		ws[i] = put(fmt.Sprintf("key-%d", i%100), fmt.Sprint(i+1))
	}
	publishAsync(t, env, 1, ws)

	r := open(t, env, t.TempDir())
	run(t, r)
	waitApplied(t, r, n)

	st := r.Stats()
	t.Logf("stats %+v", st)
	if got, want := st.Messages, uint64(n); got != want {
		t.Fatalf("Messages=%d, want %d", got, want)
	}
	if st.Batches == 0 || st.Batches > n/4 {
		t.Fatalf("Batches=%d, want 1 to %d for %d messages", st.Batches, n/4, n)
	}
	checkState(t, r, fold(ws), n, nil)
}

func TestRestartResumes(t *testing.T) {
	env := testenv.Start(t)
	dir := t.TempDir()
	first := []write{put("a", "1"), put("b", "2"), put("c", "3"), del("b"), put("a", "4")}
	second := []write{del("a"), put("b", "5"), put("d", "6"), put("c", "7")}
	all := append(append([]write{}, first...), second...)
	universe := []string{"a", "b", "c", "d"}

	r1 := open(t, env, dir)
	stop := run(t, r1)
	waitApplied(t, r1, publish(t, env, first...))
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := r1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	last := publish(t, env, second...)
	r2 := open(t, env, dir)
	if got, want := r2.Applied(), uint64(len(first)); got != want {
		t.Fatalf("Applied() after reopen=%d, want %d", got, want)
	}
	checkState(t, r2, fold(first), uint64(len(first)), universe)
	run(t, r2)
	waitApplied(t, r2, last)
	checkState(t, r2, fold(all), last, universe)
	if got, want := r2.Stats().Messages, uint64(len(second)); got != want {
		t.Fatalf("Messages applied after restart=%d, want %d", got, want)
	}
}

func TestWaitApplied(t *testing.T) {
	env := testenv.Start(t)
	r := open(t, env, t.TempDir())
	run(t, r)

	if err := r.WaitApplied(context.Background(), 0); err != nil {
		t.Fatalf("WaitApplied(0)=%v, want nil", err)
	}

	woke := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		woke <- r.WaitApplied(ctx, 2)
	}()
	publish(t, env, put("a", "1"))
	select {
	case err := <-woke:
		t.Fatalf("WaitApplied(2) returned %v after one message", err)
	default:
	}
	publish(t, env, put("b", "2"))
	select {
	case err := <-woke:
		if err != nil {
			t.Fatalf("WaitApplied(2)=%v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("WaitApplied(2) did not wake")
	}

	const bound = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	if err := r.WaitApplied(ctx, 1000); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied(1000)=%v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el < bound {
		t.Fatalf("WaitApplied returned after %v, before its %v deadline", el, bound)
	}

	// Close wakes waiters at once with ErrClosed.
	closed := make(chan error, 1)
	go func() { closed <- r.WaitApplied(context.Background(), 1000) }()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if !errors.Is(err, replicator.ErrClosed) {
			t.Fatalf("WaitApplied after Close=%v, want ErrClosed", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Close did not wake the waiter")
	}
	if err := r.WaitApplied(context.Background(), 1000); !errors.Is(err, replicator.ErrClosed) {
		t.Fatalf("WaitApplied on a closed replicator=%v, want ErrClosed", err)
	}
	if err := r.WaitApplied(context.Background(), 2); err != nil {
		t.Fatalf("WaitApplied(2) on a closed replicator=%v, want nil (already applied)", err)
	}
	if _, _, err := r.Get("a"); !errors.Is(err, replicator.ErrClosed) {
		t.Fatalf("Get on a closed replicator=%v, want ErrClosed", err)
	}
}

func TestPauseResume(t *testing.T) {
	env := testenv.Start(t)
	r := open(t, env, t.TempDir())
	run(t, r)
	waitApplied(t, r, publish(t, env, put("a", "1")))

	r.Pause()
	r.Pause() // idempotent
	before := r.Stats()
	last := publish(t, env, put("a", "2"), put("b", "3"), put("c", "4"))
	// The paused replica still receives: the delivered message's pending
	// count tells the stream handle the last sequence.
	testenv.Eventually(t, testTimeout, "the paused replica to receive", func() bool {
		return env.Stream.KnownLast() >= last
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.WaitApplied(ctx, last); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied while paused=%v, want DeadlineExceeded", err)
	}
	if got, want := r.Applied(), uint64(1); got != want {
		t.Fatalf("Applied() while paused=%d, want %d", got, want)
	}
	if rec, _, _ := r.Get("a"); string(rec.Value) != "1" {
		t.Fatalf("Get(a) while paused=%q, want 1", rec.Value)
	}

	r.Resume()
	r.Resume()
	waitApplied(t, r, last)
	after := r.Stats()
	t.Logf("batches while resuming: %d", after.Batches-before.Batches)
	if rec, _, _ := r.Get("a"); string(rec.Value) != "2" {
		t.Fatalf("Get(a) after Resume=%q, want 2", rec.Value)
	}
}

func TestReady(t *testing.T) {
	env := testenv.Start(t)
	ws := make([]write, 200)
	for i := range ws {
		ws[i] = put(fmt.Sprint(i), "v")
	}
	publishAsync(t, env, 1, ws)

	r := open(t, env, t.TempDir())
	if r.Ready() {
		t.Fatal("Ready() before Run")
	}
	r.Pause()
	run(t, r)
	if r.Ready() {
		t.Fatal("Ready() while paused behind the stream")
	}
	r.Resume()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if got, want := r.Applied(), uint64(len(ws)); got < want {
		t.Fatalf("Applied() when ready=%d, want >= %d", got, want)
	}
	if !r.Ready() {
		t.Fatal("Ready()=false after WaitReady")
	}
	if err := r.Err(); err != nil {
		t.Fatalf("Err()=%v", err)
	}
}

func TestReadyEmptyStream(t *testing.T) {
	env := testenv.Start(t)
	r := open(t, env, t.TempDir())
	run(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady on an empty stream: %v", err)
	}
}

func purge(t testing.TB, env *testenv.Env, opts ...jetstream.StreamPurgeOpt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s, err := env.JS.Stream(ctx, env.Config.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx, opts...); err != nil {
		t.Fatalf("purge: %v", err)
	}
}

// checkGap checks that a replica stopped with ErrGap and refuses to serve.
func checkGap(t *testing.T, r *replicator.Replicator, runErr <-chan error) {
	t.Helper()
	if err := waitErr(t, runErr); !errors.Is(err, replicator.ErrGap) {
		t.Fatalf("Run=%v, want ErrGap", err)
	}
	if err := r.Err(); !errors.Is(err, replicator.ErrGap) {
		t.Fatalf("Err()=%v, want ErrGap", err)
	}
	if r.Ready() {
		t.Fatal("Ready() after a gap")
	}
	if err := r.WaitApplied(context.Background(), r.Applied()+1); !errors.Is(err, replicator.ErrGap) {
		t.Fatalf("WaitApplied after a gap=%v, want ErrGap", err)
	}
	if err := r.WaitReady(context.Background()); !errors.Is(err, replicator.ErrGap) {
		t.Fatalf("WaitReady after a gap=%v, want ErrGap", err)
	}
}

func TestGapNewReplica(t *testing.T) {
	env := testenv.Start(t)
	publish(t, env, put("a", "1"), put("b", "2"))
	purge(t, env)
	publish(t, env, put("c", "3"))

	r := open(t, env, t.TempDir())
	checkGap(t, r, runErr(t, r))
	if got, want := r.Applied(), uint64(0); got != want {
		t.Fatalf("Applied()=%d, want %d", got, want)
	}
}

func TestGapBehindReplica(t *testing.T) {
	env := testenv.Start(t)
	dir := t.TempDir()
	r1 := open(t, env, dir)
	stop := run(t, r1)
	waitApplied(t, r1, publish(t, env, put("a", "1"), put("b", "2")))
	_ = stop()
	_ = r1.Close()

	publish(t, env, put("c", "3"), put("d", "4"), put("e", "5"))
	purge(t, env, jetstream.WithPurgeKeep(1)) // the stream keeps only 5

	r2 := open(t, env, dir)
	checkGap(t, r2, runErr(t, r2))
	if got, want := r2.Applied(), uint64(2); got != want {
		t.Fatalf("Applied()=%d, want %d", got, want)
	}
}

func TestGapInStream(t *testing.T) {
	env := testenv.Start(t)
	publish(t, env, put("a", "1"), put("b", "2"), put("a", "3"))
	// Purging one subject leaves a hole at 2 that the start check cannot
	// see (the stream still starts at 1); the delivery check must.
	purge(t, env, jetstream.WithPurgeSubject(env.Stream.KeySubject("b")))

	r := open(t, env, t.TempDir())
	checkGap(t, r, runErr(t, r))
	if got, want := r.Applied(), uint64(1); got != want {
		t.Fatalf("Applied()=%d, want %d", got, want)
	}
	if rec, _, err := r.Get("a"); err != nil || string(rec.Value) != "1" {
		t.Fatalf("Get(a)=%+v, %v; want 1", rec, err)
	}
}

func TestBadMessage(t *testing.T) {
	env := testenv.Start(t)
	dir := t.TempDir()
	publish(t, env, put("a", "1"))
	garbage := write{op: "frobnicate", key: "b", value: []byte("?")}
	publish(t, env, garbage, put("c", "3"))

	for attempt := range 2 { // and again after a restart: never skipped
		r := open(t, env, dir)
		if err := waitErr(t, runErr(t, r)); !errors.Is(err, replicator.ErrBadMessage) {
			t.Fatalf("attempt %d: Run=%v, want ErrBadMessage", attempt, err)
		}
		if err := r.Err(); !errors.Is(err, replicator.ErrBadMessage) {
			t.Fatalf("attempt %d: Err()=%v, want ErrBadMessage", attempt, err)
		}
		if got, want := r.Applied(), uint64(1); got != want {
			t.Fatalf("attempt %d: Applied()=%d, want %d", attempt, got, want)
		}
		if _, _, err := r.Get("c"); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("attempt %d: Get(c)=%v, want ErrNotFound (after the bad message)", attempt, err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenRejectsOtherStream(t *testing.T) {
	env := testenv.Start(t)
	dir := t.TempDir()
	r1 := open(t, env, dir)
	stop := run(t, r1)
	waitApplied(t, r1, publish(t, env, put("a", "1")))
	_ = stop()
	_ = r1.Close()

	// An empty directory opened once is claimed by whichever stream opens
	// it next: it holds nothing of the old stream.
	empty := t.TempDir()
	_ = open(t, env, empty).Close()

	recreated := recreate(t, env)

	r2 := replicator.New(replicator.Config{Dir: dir, Stream: recreated, Logger: testLogger(t)})
	if err := r2.Open(); !errors.Is(err, replicator.ErrStreamMismatch) {
		t.Fatalf("Open on another stream's data=%v, want ErrStreamMismatch", err)
	}
	r3 := replicator.New(replicator.Config{Dir: empty, Stream: recreated, Logger: testLogger(t)})
	if err := r3.Open(); err != nil {
		t.Fatalf("Open of a directory that applied nothing: %v", err)
	}
	_ = r3.Close()
}

func TestLifecycleErrors(t *testing.T) {
	env := testenv.Start(t)
	r := replicator.New(replicator.Config{Dir: t.TempDir(), Stream: env.Stream, Logger: testLogger(t)})
	if err := r.Run(context.Background()); !errors.Is(err, replicator.ErrNotOpen) {
		t.Fatalf("Run before Open=%v, want ErrNotOpen", err)
	}
	if _, _, err := r.Get("a"); !errors.Is(err, replicator.ErrNotOpen) {
		t.Fatalf("Get before Open=%v, want ErrNotOpen", err)
	}
	if err := replicator.New(replicator.Config{Stream: env.Stream}).Open(); err == nil {
		t.Fatal("Open without a directory succeeded")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Open(); !errors.Is(err, replicator.ErrClosed) {
		t.Fatalf("Open after Close=%v, want ErrClosed", err)
	}
	if err := r.Run(context.Background()); !errors.Is(err, replicator.ErrClosed) {
		t.Fatalf("Run after Close=%v, want ErrClosed", err)
	}
}

func TestRunStops(t *testing.T) {
	env := testenv.Start(t)
	r := open(t, env, t.TempDir())
	stop := run(t, r)
	waitApplied(t, r, publish(t, env, put("a", "1")))
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel=%v, want nil", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s, err := env.JS.Stream(ctx, env.Config.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.CachedInfo().State.Consumers, 0; got != want {
		t.Fatalf("consumers after Run=%d, want %d", got, want)
	}
	if err := r.Err(); !errors.Is(err, replicator.ErrStopped) {
		t.Fatalf("Err() after Run=%v, want ErrStopped", err)
	}
	if err := r.WaitApplied(context.Background(), 5); !errors.Is(err, replicator.ErrStopped) {
		t.Fatalf("WaitApplied after Run=%v, want ErrStopped", err)
	}
	if err := r.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

// TestStreamRecreatedWhileRunning recreates the stream under a running
// replica. The ordered consumer resumes on the new stream at the next
// sequence by itself; the replica must notice the new consumer and rebuild
// from the new stream rather than apply its writes on top of the old
// state. The periodic check is off, so only the consumer and JetStream's
// announcements tell.
func TestStreamRecreatedWhileRunning(t *testing.T) {
	env := testenv.Start(t)
	r := open(t, env, t.TempDir(), func(c *replicator.Config) { c.CheckInterval = time.Hour })
	errc := runErr(t, r)
	waitApplied(t, r, publish(t, env, put("a", "1"), put("b", "2")))

	recreated := recreate(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, w := range []write{put("x", "new"), put("y", "new"), put("z", "new")} {
		if _, err := env.JS.PublishMsg(ctx, w.msg(recreated.Subject())); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, testTimeout, "the replica to rebuild from the new stream", func() bool {
		_, _, errA := r.Get("a")
		z, applied, errZ := r.Get("z")
		if errA == nil && errZ == nil {
			t.Fatalf("a of the old stream and z of the new served together (applied %d): writes of the new stream applied on the old state", applied)
		}
		return errZ == nil && string(z.Value) == "new" && applied == 3 && r.StreamID() == recreated.ID()
	})
	select {
	case err := <-errc:
		t.Fatalf("Run=%v; want it to go on", err)
	default:
	}
}

// TestStreamDeletedWhileIdle checks that the periodic check stops a replica
// whose stream was deleted, though no message arrives to tell it; it waits,
// not serving, until the stream is created again, and then rebuilds.
func TestStreamDeletedWhileIdle(t *testing.T) {
	env := testenv.Start(t)
	r := open(t, env, t.TempDir(), func(c *replicator.Config) { c.CheckInterval = 20 * time.Millisecond })
	errc := runErr(t, r)
	waitApplied(t, r, publish(t, env, put("a", "1")))
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := env.JS.DeleteStream(ctx, env.Config.Name); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, testTimeout, "the replica to stop serving", func() bool {
		err := r.Err()
		return errors.Is(err, replicator.ErrDiverged) && strings.Contains(err.Error(), "deleted")
	})
	if _, _, err := r.Get("a"); err == nil {
		t.Fatal("Get(a) served the deleted stream's state")
	}
	recreated, err := stream.Ensure(ctx, env.JS, env.Config)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, testTimeout, "the replica to serve the new stream", func() bool {
		return r.Err() == nil && r.StreamID() == recreated.ID()
	})
	if _, _, err := r.Get("a"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get(a)=%v after the rebuild, want not found", err)
	}
	select {
	case err := <-errc:
		t.Fatalf("Run=%v; want it to go on", err)
	default:
	}
}

// recreate deletes env's stream and creates it again, with a new identity.
func recreate(t *testing.T, env *testenv.Env) *stream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := env.JS.DeleteStream(ctx, env.Config.Name); err != nil {
		t.Fatal(err)
	}
	// The server may still be removing the old stream's files.
	var s *stream.Stream
	var err error
	testenv.Eventually(t, testTimeout, "the stream to be recreated", func() bool {
		s, err = stream.Ensure(ctx, env.JS, env.Config)
		return err == nil
	})
	if s.ID() == env.Stream.ID() {
		t.Fatal("the recreated stream kept its id")
	}
	return s
}
