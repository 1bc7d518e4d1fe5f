package replicator_test

import (
	"github.com/tidemark/tidemark/api"

	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
)

// mixed returns n writes over a small set of keys, with deletes, so that
// every key changes often.
func mixed(n int) ([]write, []string) {
	var universe []string
	for i := range 40 {
		universe = append(universe, fmt.Sprintf("k%02d", i))
	}
	ws := make([]write, n)
	for i := range ws {
		key := universe[(i*7)%len(universe)]
		if i%5 == 4 {
			ws[i] = del(key)
		} else {
			ws[i] = put(key, fmt.Sprintf("v%d", i))
		}
	}
	return ws, universe
}

func snapshot(t testing.TB, r *replicator.Replicator) ([]byte, uint64) {
	t.Helper()
	var buf bytes.Buffer
	applied, err := r.Snapshot(context.Background(), &buf)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return buf.Bytes(), applied
}

// restored restores snap into a new directory and opens a replicator on it.
func restored(t testing.TB, env *testenv.Env, snap []byte) *replicator.Replicator {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := replicator.Restore(dir, bytes.NewReader(snap), env.Stream.ID()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return open(t, env, dir)
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	env := testenv.Start(t)
	ws, universe := mixed(300)
	r1 := open(t, env, t.TempDir())
	run(t, r1)
	waitApplied(t, r1, publish(t, env, ws...))

	snap, applied := snapshot(t, r1)
	if got, want := applied, uint64(len(ws)); got != want {
		t.Fatalf("Snapshot applied=%d, want %d", got, want)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	got, err := replicator.Restore(dir, bytes.NewReader(snap), env.Stream.ID())
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got != applied {
		t.Fatalf("Restore applied=%d, want %d", got, applied)
	}
	r2 := open(t, env, dir)
	if got, want := r2.Applied(), applied; got != want {
		t.Fatalf("restored Applied()=%d, want %d", got, want)
	}
	checkState(t, r2, fold(ws), applied, universe)
	// Same keys, same values, same order: the same bytes.
	if again, _ := snapshot(t, r2); !bytes.Equal(again, snap) {
		t.Fatalf("snapshot of the restored replica differs (%d bytes, want %d)", len(again), len(snap))
	}

	// The restored replica goes on from the stream.
	more := []write{put("new", "n"), del("k00")}
	run(t, r2)
	waitApplied(t, r2, publish(t, env, more...))
	checkState(t, r2, fold(append(ws, more...)), applied+2, append(universe, "new"))
}

// A snapshot taken while the replica applies holds exactly the stream's
// writes up to the applied sequence it reports.
func TestSnapshotWhileApplying(t *testing.T) {
	env := testenv.Start(t)
	ws, universe := mixed(3000)
	publishAsync(t, env, 1, ws)

	r := open(t, env, t.TempDir(), func(c *replicator.Config) { c.MaxBatch = 8 })
	run(t, r)
	type snap struct {
		b       []byte
		applied uint64
	}
	var snaps []snap
	for r.Applied() < uint64(len(ws)) {
		b, applied := snapshot(t, r)
		if len(snaps) == 0 || snaps[len(snaps)-1].applied != applied {
			snaps = append(snaps, snap{b, applied})
		}
	}
	partial := 0
	for i, s := range snaps {
		if s.applied == 0 || s.applied == uint64(len(ws)) {
			continue
		}
		if partial++; partial > 6 && i != len(snaps)-1 {
			continue // a few are enough
		}
		r2 := restored(t, env, s.b)
		checkState(t, r2, fold(ws[:s.applied]), s.applied, universe)
		_ = r2.Close()
	}
	if partial == 0 {
		t.Fatalf("no snapshot caught the replica while it applied (%d snapshots)", len(snaps))
	}
}

func TestSnapshotNotOpen(t *testing.T) {
	env := testenv.Start(t)
	r := replicator.New(replicator.Config{Dir: t.TempDir(), Stream: env.Stream})
	if _, err := r.Snapshot(context.Background(), io.Discard); !errors.Is(err, replicator.ErrNotOpen) {
		t.Fatalf("Snapshot before Open=%v, want ErrNotOpen", err)
	}
	_ = r.Close()
	if _, err := r.Snapshot(context.Background(), io.Discard); !errors.Is(err, replicator.ErrClosed) {
		t.Fatalf("Snapshot after Close=%v, want ErrClosed", err)
	}
}

func TestRestoreRejects(t *testing.T) {
	env := testenv.Start(t)
	r := open(t, env, t.TempDir())
	run(t, r)
	waitApplied(t, r, publish(t, env, put("a", "1"), put("b", "2"), del("a")))
	good, _ := snapshot(t, r)

	other := testenv.Start(t) // another server, another stream identity
	ro := open(t, other, t.TempDir())
	run(t, ro)
	waitApplied(t, ro, publish(t, other, put("a", "1")))
	foreign, _ := snapshot(t, ro)

	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	for _, tt := range []struct {
		name     string
		snap     []byte
		mismatch bool
	}{
		{"foreign stream", foreign, true},
		{"empty", nil, false},
		{"not a snapshot", []byte("hello, world, this is not a snapshot"), false},
		{"truncated header", good[:10], false},
		{"truncated entries", good[:len(good)/2], false},
		{"truncated checksum", good[:len(good)-1], false},
		{"no end", good[:len(good)-16], false},
		{"flipped byte", flip(len(good) / 2), false},
		{"flipped checksum", flip(len(good) - 1), false},
		{"trailing data", append(bytes.Clone(good), 0), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "restored")
			_, err := replicator.Restore(dir, bytes.NewReader(tt.snap), env.Stream.ID())
			if !errors.Is(err, replicator.ErrBadSnapshot) {
				t.Fatalf("Restore=%v, want ErrBadSnapshot", err)
			}
			if got, want := errors.Is(err, replicator.ErrStreamMismatch), tt.mismatch; got != want {
				t.Fatalf("Restore=%v: ErrStreamMismatch %v, want %v", err, got, want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("after a failed Restore, Stat(dir)=%v, want not exist", err)
			}
		})
	}

	t.Run("not empty", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := replicator.Restore(dir, bytes.NewReader(good), env.Stream.ID()); err == nil {
			t.Fatal("Restore into a non-empty directory succeeded")
		}
	})
	t.Run("read error", func(t *testing.T) {
		boom := errors.New("boom")
		rd := io.MultiReader(bytes.NewReader(good[:len(good)/2]), errReader{boom})
		if _, err := replicator.Restore(filepath.Join(t.TempDir(), "d"), rd, env.Stream.ID()); !errors.Is(err, boom) {
			t.Fatalf("Restore=%v, want the read error", err)
		}
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// peer is a Bootstrapper that serves snapshots of a replicator in the same
// process, after the bad ones queued in bad.
type peer struct {
	r *replicator.Replicator
	// during, when set, runs in every Bootstrap call before the restore.
	during func()

	mu    sync.Mutex
	bad   [][]byte
	calls int
	needs []uint64
	errs  []error
}

func (p *peer) Bootstrap(ctx context.Context, need uint64, restore func(io.Reader) (uint64, error)) error {
	p.mu.Lock()
	p.calls++
	p.needs = append(p.needs, need)
	var snap []byte
	if len(p.bad) > 0 {
		snap, p.bad = p.bad[0], p.bad[1:]
	}
	p.mu.Unlock()
	if p.during != nil {
		p.during()
	}
	if snap == nil {
		var buf bytes.Buffer
		if _, err := p.r.Snapshot(ctx, &buf); err != nil {
			return err
		}
		snap = buf.Bytes()
	}
	_, err := restore(bytes.NewReader(snap))
	p.mu.Lock()
	p.errs = append(p.errs, err)
	p.mu.Unlock()
	return err
}

func TestBootstrapNewReplica(t *testing.T) {
	env := testenv.Start(t)
	ws, universe := mixed(200)
	r1 := open(t, env, t.TempDir())
	run(t, r1)
	waitApplied(t, r1, publish(t, env, ws...))
	purge(t, env, jetstream.WithPurgeKeep(10))
	more := []write{put("after", "1"), del("k01")}
	last := publish(t, env, more...)
	waitApplied(t, r1, last)

	p := &peer{r: r1}
	dir := filepath.Join(t.TempDir(), "r2")
	r2 := open(t, env, dir, func(c *replicator.Config) { c.ID, c.Bootstrap = "r2", p })
	run(t, r2)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r2.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if err := r2.Bootstrapping(); err != nil {
		t.Fatalf("Bootstrapping() after ready=%v", err)
	}
	all := append(ws, more...)
	checkState(t, r2, fold(all), last, append(universe, "after"))
	if got, want := p.needs[0], uint64(len(ws)-10); got != want {
		t.Fatalf("asked for a snapshot at %d, want %d (the stream starts at %d)", got, want, want+1)
	}

	final := []write{put("later", "x")}
	waitApplied(t, r2, publish(t, env, final...))
	checkState(t, r2, fold(append(all, final...)), last+1, append(universe, "after", "later"))
	assertNoLeftovers(t, dir)
}

func TestBootstrapRejectsBadSnapshots(t *testing.T) {
	env := testenv.Start(t)
	r1 := open(t, env, t.TempDir())
	run(t, r1)
	waitApplied(t, r1, publish(t, env, put("a", "1"), put("b", "2"), put("c", "3")))
	old, _ := snapshot(t, r1) // too old once the stream moves on
	waitApplied(t, r1, publish(t, env, put("d", "4"), del("b")))
	purge(t, env, jetstream.WithPurgeKeep(1))

	other := testenv.Start(t)
	ro := open(t, other, t.TempDir())
	run(t, ro)
	waitApplied(t, ro, publish(t, other, put("a", "1"), put("b", "2"), put("c", "3"), put("d", "4"), put("e", "5")))
	foreign, _ := snapshot(t, ro)
	good, _ := snapshot(t, r1)
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)/2] ^= 1

	p := &peer{r: r1, bad: [][]byte{corrupt, foreign, old}}
	dir := filepath.Join(t.TempDir(), "r2")
	r2 := open(t, env, dir, func(c *replicator.Config) { c.ID, c.Bootstrap = "r2", p })
	run(t, r2)
	testenv.Eventually(t, testTimeout, "bootstrapping", func() bool {
		return errors.Is(r2.Bootstrapping(), replicator.ErrBootstrapping) || r2.Ready()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	if err := r2.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	p.mu.Lock()
	errs := p.errs
	p.mu.Unlock()
	if got, want := len(errs), 4; got != want {
		t.Fatalf("%d restores (%v), want %d", got, errs, want)
	}
	for i, err := range errs[:3] {
		if !errors.Is(err, replicator.ErrBadSnapshot) {
			t.Fatalf("restore %d=%v, want ErrBadSnapshot", i, err)
		}
	}
	if !errors.Is(errs[1], replicator.ErrStreamMismatch) {
		t.Fatalf("restore of the foreign snapshot=%v, want ErrStreamMismatch", errs[1])
	}
	if errs[3] != nil {
		t.Fatalf("restore of the good snapshot=%v", errs[3])
	}
	checkState(t, r2, fold([]write{put("a", "1"), put("b", "2"), put("c", "3"), put("d", "4"), del("b")}), 5, []string{"a", "b", "c", "d", "e"})
	assertNoLeftovers(t, dir)
}

// A replica that stops applying, falls behind a purge and resumes
// bootstraps while it runs, and its waiting readers see the result.
func TestBootstrapBehindWhileRunning(t *testing.T) {
	env := testenv.Start(t)
	r1 := open(t, env, t.TempDir())
	run(t, r1)
	p := &peer{r: r1}
	r2 := open(t, env, t.TempDir(), func(c *replicator.Config) { c.ID, c.Bootstrap = "r2", p })
	var readyDuring atomic.Bool
	var statusDuring atomic.Value
	p.during = func() {
		readyDuring.Store(r2.Ready())
		statusDuring.Store(fmt.Sprint(r2.Bootstrapping()))
	}
	run(t, r2)
	ws := []write{put("a", "1"), put("b", "2")}
	waitApplied(t, r2, publish(t, env, ws...))
	r2.Pause()
	// More than the consumer buffers while paused (its pull and the apply
	// loop's budget), so that the purge removes messages it has not
	// received yet.
	big := string(bytes.Repeat([]byte("x"), 256<<10))
	var universe []string
	for i := range 100 {
		key := fmt.Sprintf("big%02d", i%30)
		ws = append(ws, put(key, fmt.Sprintf("%d%s", i, big)))
		if i < 30 {
			universe = append(universe, key)
		}
	}
	ws = append(ws, del("a"))
	last := publish(t, env, ws[2:]...)
	waitApplied(t, r1, last)
	purge(t, env, jetstream.WithPurgeKeep(5))

	waited := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		waited <- r2.WaitApplied(ctx, last)
	}()
	r2.Resume()
	if err := <-waited; err != nil {
		t.Fatalf("WaitApplied(%d) across the bootstrap: %v", last, err)
	}
	checkState(t, r2, fold(ws), last, append(universe, "a", "b"))
	if err := r2.Err(); err != nil {
		t.Fatalf("Err()=%v", err)
	}
	p.mu.Lock()
	calls := p.calls
	p.mu.Unlock()
	if calls == 0 {
		t.Fatal("caught up without a snapshot")
	}
	if readyDuring.Load() {
		t.Fatal("Ready() while bootstrapping")
	}
	if got, want := statusDuring.Load().(string), "bootstrapping from a snapshot: applied "; !strings.HasPrefix(got, want) {
		t.Fatalf("Bootstrapping() while bootstrapping=%q, want %q...", got, want)
	}
	if !r2.Ready() {
		t.Fatal("not Ready() after bootstrapping")
	}
}

// A replica restarted after the stream was purged past its applied
// sequence bootstraps, and so does one that meets a hole in the middle of
// the stream (a subject purge), which only the delivery check can see.
func TestBootstrapBehindAfterRestart(t *testing.T) {
	for _, tt := range []struct {
		name  string
		purge func(t *testing.T, env *testenv.Env)
	}{
		{"purged front", func(t *testing.T, env *testenv.Env) { purge(t, env, jetstream.WithPurgeKeep(2)) }},
		{"hole", func(t *testing.T, env *testenv.Env) {
			purge(t, env, jetstream.WithPurgeSubject(env.Stream.KeySubject("c")))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := testenv.Start(t)
			r1 := open(t, env, t.TempDir())
			run(t, r1)
			dir := filepath.Join(t.TempDir(), "r2")
			r2 := open(t, env, dir, func(c *replicator.Config) { c.ID = "r2" })
			stop := run(t, r2)
			ws := []write{put("a", "1"), put("b", "2")}
			waitApplied(t, r2, publish(t, env, ws...))
			_ = stop()
			_ = r2.Close()

			more := []write{put("c", "3"), put("d", "4"), put("c", "5"), del("a"), put("e", "6")}
			ws = append(ws, more...)
			last := publish(t, env, more...)
			waitApplied(t, r1, last)
			tt.purge(t, env)

			p := &peer{r: r1}
			r2 = open(t, env, dir, func(c *replicator.Config) { c.ID, c.Bootstrap = "r2", p })
			run(t, r2)
			waitApplied(t, r2, last)
			checkState(t, r2, fold(ws), last, []string{"a", "b", "c", "d", "e"})
			if p.calls == 0 {
				t.Fatal("caught up without a snapshot")
			}
			assertNoLeftovers(t, dir)
		})
	}
}

// A crash while a snapshot's files replace the old ones leaves a marker;
// Open then empties the directory, so that the replica starts from nothing
// (and bootstraps) rather than open a mix of two databases.
func TestOpenAfterInterruptedInstall(t *testing.T) {
	env := testenv.Start(t)
	dir := t.TempDir()
	r1 := open(t, env, dir)
	stop := run(t, r1)
	waitApplied(t, r1, publish(t, env, put("a", "1")))
	_ = stop()
	_ = r1.Close()
	for _, name := range []string{".installing", ".restore-0a", ".replaced-0b"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	r2 := open(t, env, dir)
	if got, want := r2.Applied(), uint64(0); got != want {
		t.Fatalf("Applied()=%d, want %d", got, want)
	}
	if _, _, err := r2.Get("a"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get(a)=%v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".installing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker still there: %v", err)
	}
}

// Without a Bootstrapper a replica behind a purge stops with ErrGap, as
// TestGapBehindReplica shows; with one that cannot help it keeps trying
// and says so, without serving a state with a hole.
func TestBootstrapUnavailable(t *testing.T) {
	env := testenv.Start(t)
	publish(t, env, put("a", "1"), put("b", "2"))
	purge(t, env)
	publish(t, env, put("c", "3"))
	none := bootstrapFunc(func(context.Context, uint64, func(io.Reader) (uint64, error)) error {
		return errors.New("no replica answers")
	})
	r := open(t, env, t.TempDir(), func(c *replicator.Config) { c.Bootstrap = none })
	stop := run(t, r)
	testenv.Eventually(t, testTimeout, "bootstrapping", func() bool {
		return errors.Is(r.Bootstrapping(), replicator.ErrBootstrapping)
	})
	if r.Ready() {
		t.Fatal("Ready() while bootstrapping a new replica")
	}
	if got, want := r.Applied(), uint64(0); got != want {
		t.Fatalf("Applied()=%d, want %d", got, want)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after ctx ended=%v, want nil", err)
	}
	if err := r.Bootstrapping(); err != nil {
		t.Fatalf("Bootstrapping() after Run=%v", err)
	}
}

type bootstrapFunc func(context.Context, uint64, func(io.Reader) (uint64, error)) error

func (f bootstrapFunc) Bootstrap(ctx context.Context, need uint64, restore func(io.Reader) (uint64, error)) error {
	return f(ctx, need, restore)
}

// assertNoLeftovers checks that a bootstrap left nothing of its own in dir
// (Badger's files have no leading dot) and nothing next to it.
func assertNoLeftovers(t testing.TB, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("bootstrap left %s in %s", e.Name(), dir)
		}
	}
	if entries, err = os.ReadDir(filepath.Dir(dir)); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != filepath.Base(dir) {
			t.Fatalf("bootstrap left %s next to %s", e.Name(), dir)
		}
	}
}
