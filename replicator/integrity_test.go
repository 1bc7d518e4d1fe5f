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
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
)

// logTo returns a Config modifier that logs to the test and to buf.
func logTo(t testing.TB, buf *testenv.LogBuffer) func(*replicator.Config) {
	return func(c *replicator.Config) {
		c.Logger = zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), buf)).Level(zerolog.WarnLevel)
	}
}

// readNew checks, until the replica serves it, that a read with the token
// of the write seq of key (value want) is never answered from another
// history: WaitApplied may fail (the replica is not serving) but once it
// succeeds, Get must return exactly that write.
func readNew(t testing.TB, r *replicator.Replicator, key, want string, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := r.WaitApplied(ctx, seq)
		cancel()
		if err == nil {
			rec, _, gerr := r.Get(key)
			if gerr == nil {
				if string(rec.Value) != want || rec.Revision != seq {
					t.Fatalf("Get(%q) with token %d=%q at revision %d, want %q at %d: a value of another history served",
						key, seq, rec.Value, rec.Revision, want, seq)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write %d of %q was not served within %v: %v (Err %v, applied %d)", seq, key, testTimeout, err, r.Err(), r.Applied())
		}
	}
}

// waitServed waits until r has applied seq and serves, through the holds
// that a lost connection puts it in.
func waitServed(t testing.TB, r *replicator.Replicator, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for {
		err := r.WaitApplied(ctx, seq)
		if err == nil {
			return
		}
		if ctx.Err() != nil || !errors.Is(err, replicator.ErrUnverified) && !errors.Is(err, replicator.ErrResetting) {
			t.Fatalf("WaitApplied(%d): %v (applied %d)", seq, err, r.Applied())
		}
		if err := r.WaitReady(ctx); err != nil {
			t.Fatalf("WaitReady: %v", err)
		}
	}
}

// sameState checks that a and b hold the same record of every key in keys,
// list the same live keys, and snapshot to the same bytes (every stored key:
// records, sessions, applied and the identity of the message at it).
func sameState(t testing.TB, a, b *replicator.Replicator, keys []string) {
	t.Helper()
	sa, aa := snapshot(t, a)
	sb, ab := snapshot(t, b)
	if aa != ab || !bytes.Equal(sa, sb) {
		t.Fatalf("snapshots differ: applied %d and %d, %d and %d bytes", aa, ab, len(sa), len(sb))
	}
	for _, k := range keys {
		ra, _, ea := a.Get(k)
		rb, _, eb := b.Get(k)
		if string(ra.Value) != string(rb.Value) || ra.Revision != rb.Revision || ra.Deleted != rb.Deleted || (ea == nil) != (eb == nil) {
			t.Fatalf("key %q: %q at %d (%v), a fresh replica has %q at %d (%v)", k, ra.Value, ra.Revision, ea, rb.Value, rb.Revision, eb)
		}
	}
	ia, _, _, err := a.Scan("", "", 10000, nil)
	if err != nil {
		t.Fatal(err)
	}
	ib, _, _, err := b.Scan("", "", 10000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ia) != len(ib) {
		t.Fatalf("Scan: %d live keys, a fresh replica has %d", len(ia), len(ib))
	}
	for i := range ia {
		if ia[i].Key != ib[i].Key || string(ia[i].Value) != string(ib[i].Value) || ia[i].Revision != ib[i].Revision {
			t.Fatalf("Scan item %d: %+v, a fresh replica has %+v", i, ia[i], ib[i])
		}
	}
}

func keysN(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return keys
}

func puts(keys []string, value string) []write {
	ws := make([]write, len(keys))
	for i, k := range keys {
		ws[i] = put(k, value)
	}
	return ws
}

// TestStreamLostTail restores the stream's store from an older copy under a
// running replica: the stream forgets sequences 101-150 that the replica
// applied, and the next writes reuse them. The replica must never answer a
// token of the new history from the old one, must stop serving with the
// reason, rebuild on its own, and end identical to a fresh replica.
func TestStreamLostTail(t *testing.T) {
	env := testenv.Start(t)
	var logs testenv.LogBuffer
	r := open(t, env, t.TempDir(), logTo(t, &logs))
	run(t, r)
	keys := keysN("t.k", 100)
	waitApplied(t, r, publish(t, env, puts(keys, "v1")...)) // 1-100

	backup := env.BackupStore(t)
	waitServed(t, r, publish(t, env, puts(keys[:50], "v2")...)) // 101-150

	env.RestoreStore(t, backup)

	// The new history: 101-160, past what the replica applied.
	for i, k := range keys[:60] {
		seq := publish(t, env, put(k, "v3"))
		if got, want := seq, uint64(101+i); got != want {
			t.Fatalf("publish after the restore: seq %d, want %d", got, want)
		}
		readNew(t, r, k, "v3", seq)
	}
	if !logs.Contains("discarding it and rebuilding") {
		t.Fatal("the replica did not log that it discards its state")
	}
	testenv.Eventually(t, testTimeout, "the replica to serve again", r.Ready)

	fresh := open(t, env, t.TempDir(), func(c *replicator.Config) { c.ID = "fresh" })
	run(t, fresh)
	waitApplied(t, fresh, 160)
	waitServed(t, r, 160)
	sameState(t, r, fresh, keys)

	// And after a restart of the rebuilt replica, the same.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStreamLostTailWhileStopped restores the stream's store from an older
// copy while the replica is closed; the new history is longer than the old
// one. The replica must find out when Run starts, before it serves.
func TestStreamLostTailWhileStopped(t *testing.T) {
	env := testenv.Start(t)
	dir := t.TempDir()
	keys := keysN("k", 20)
	publish(t, env, puts(keys, "v1")...) // 1-20
	backup := env.BackupStore(t)
	publish(t, env, puts(keys[:10], "v2")...) // 21-30
	r := open(t, env, dir)
	stop := run(t, r)
	waitApplied(t, r, 30)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	env.RestoreStore(t, backup)
	publish(t, env, puts(keys, "v3")...) // 21-40: the message at 30 is another

	r = open(t, env, dir)
	run(t, r)
	for i, k := range keys {
		readNew(t, r, k, "v3", uint64(21+i))
	}
	fresh := open(t, env, t.TempDir(), func(c *replicator.Config) { c.ID = "fresh" })
	run(t, fresh)
	waitApplied(t, fresh, 40)
	sameState(t, r, fresh, keys)
}

// TestStreamRecreatedRebuilds deletes and recreates the stream under a
// running replica: it notices within its check interval, never serves the
// old stream's state as the new one's, takes on the new stream's identity
// and rebuilds from it.
func TestStreamRecreatedRebuilds(t *testing.T) {
	env := testenv.Start(t)
	r := open(t, env, t.TempDir())
	errc := runErr(t, r)
	waitApplied(t, r, publish(t, env, put("a", "old"), put("b", "old")))
	old := r.StreamID()

	start := time.Now()
	recreated := recreate(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := env.JS.PublishMsg(ctx, put("a", "new").msg(recreated.Subject())); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, testTimeout, "the replica to rebuild from the recreated stream", func() bool {
		sid := r.StreamID() // before the read: the id changes before the state does
		rec, applied, err := r.Get("a")
		if err == nil && sid == recreated.ID() && string(rec.Value) == "old" {
			t.Fatalf("the old stream's a=old served as the state of the new stream (applied %d)", applied)
		}
		return err == nil && sid == recreated.ID() && string(rec.Value) == "new" && applied == 1
	})
	t.Logf("rebuilt %v after the recreation began", time.Since(start))
	if _, _, err := r.Get("b"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get(b)=%v after the rebuild, want not found: b was only in the old stream", err)
	}
	if got := env.Stream.ID(); got != recreated.ID() || got == old {
		t.Fatalf("the replica's stream handle has id %s, want the new %s (old %s)", got, recreated.ID(), old)
	}
	select {
	case err := <-errc:
		t.Fatalf("Run returned %v; want it to go on", err)
	default:
	}
}

// corruptStore builds a replica directory whose data sits in Badger tables
// (.sst files): n keys of values of 100 bytes, applied and closed. It
// returns the directory, the writes and the keys.
func corruptStore(t *testing.T, env *testenv.Env, n int) (string, []write, []string) {
	t.Helper()
	dir := t.TempDir()
	r := open(t, env, dir)
	stop := run(t, r)
	keys := keysN("key/", n)
	ws := make([]write, n)
	for i, k := range keys {
		ws[i] = put(k, fmt.Sprintf("%03d%s", i, strings.Repeat("v", 97)))
	}
	publishAsync(t, env, 1, ws)
	waitApplied(t, r, uint64(n))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil { // flushes the memtable into a table
		t.Fatal(err)
	}
	return dir, ws, keys
}

// ssts lists the table files of a Badger directory.
func ssts(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no table files in %s (%v)", dir, err)
	}
	return files
}

// flip inverts the eight bits of the byte at off in path.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// neverWrong reads every key until the replica is ready, failing the test
// if a read answers (a value or not found) anything but the key's record in
// want as of the applied sequence the read reports. Every key is written
// once, so a key is either missing or its write.
func neverWrong(t *testing.T, r *replicator.Replicator, want state, keys []string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for round := 0; ; round++ {
		for _, k := range keys {
			rec, applied, err := r.Get(k)
			if err != nil && !errors.Is(err, api.ErrNotFound) {
				continue // not served: fine
			}
			w := want[k]
			if w.Revision > applied {
				w = api.Record{}
			}
			if string(rec.Value) != string(w.Value) || rec.Revision != w.Revision {
				t.Fatalf("round %d: Get(%q)=%q at %d (%v) as of %d, want %q at %d", round, k, rec.Value, rec.Revision, err, applied, w.Value, w.Revision)
			}
		}
		items, _, applied, err := r.Scan("", "", len(keys)+1, nil)
		if err == nil {
			n := 0
			for _, w := range want {
				if w.Revision <= applied {
					n++
				}
			}
			if len(items) != n {
				t.Fatalf("round %d: Scan listed %d keys as of %d, want %d", round, len(items), applied, n)
			}
			for _, it := range items {
				if w := want[it.Key]; string(it.Value) != string(w.Value) || it.Revision != w.Revision {
					t.Fatalf("round %d: Scan item %q=%q at %d, want %q at %d", round, it.Key, it.Value, it.Revision, w.Value, w.Revision)
				}
			}
		}
		if r.Ready() && round > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within %v: %v", testTimeout, r.Err())
		}
	}
}

// TestCorruptTableAtOpen flips bits at several places of a table of a
// closed replica's directory. The replica must never answer a read with a
// wrong value, no panic may escape, and it must rebuild on its own with
// the damaged files kept aside.
func TestCorruptTableAtOpen(t *testing.T) {
	env := testenv.Start(t)
	base, ws, keys := corruptStore(t, env, 3000)
	want := fold(ws)
	for _, at := range []float64{0.01, 0.2, 0.4, 0.6, 0.8, 0.97, -100, -30, -5, -1} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "replica")
			testenv.CopyDir(t, base, dir)
			for _, f := range ssts(t, dir) {
				st, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				off := int64(at * float64(st.Size()))
				if at < 0 {
					off = st.Size() + int64(at)
				}
				flip(t, f, off)
			}
			var logs testenv.LogBuffer
			r := open(t, env, dir, logTo(t, &logs), func(c *replicator.Config) { c.CacheBytes = -1 })
			run(t, r)
			neverWrong(t, r, want, keys)
			checkState(t, r, want, uint64(len(ws)), keys)
			if logs.Contains("MOVED ASIDE") {
				aside, err := filepath.Glob(dir + ".corrupt-*/*.sst")
				if err != nil || len(aside) == 0 {
					t.Fatalf("the damaged tables were not kept aside (%v)", err)
				}
			}
		})
	}
}

// TestCorruptTableWhileServing flips bits in the tables of a running
// replica (Badger maps the files, so it sees the damage). Badger answers a
// damaged block as holding no keys, so the scrub must find the damage;
// once it has, the replica must stop serving, no read may return a wrong
// value, no panic may escape, and the replica must rebuild.
func TestCorruptTableWhileServing(t *testing.T) {
	env := testenv.Start(t)
	dir, ws, keys := corruptStore(t, env, 3000)
	want := fold(ws)
	var logs testenv.LogBuffer
	r := open(t, env, dir, logTo(t, &logs), func(c *replicator.Config) {
		c.CacheBytes = -1
		c.ScrubInterval = 20 * time.Millisecond
	})
	run(t, r)
	waitApplied(t, r, uint64(len(ws)))
	// Damage the data blocks before a read has brought them into Badger's
	// block cache.
	for _, f := range ssts(t, dir) {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range []float64{0.1, 0.3, 0.5, 0.7, 0.9} {
			flip(t, f, int64(at*float64(st.Size())))
		}
	}
	testenv.Eventually(t, testTimeout, "the scrub to find the damage", func() bool { return logs.Contains("replica store failed") })
	neverWrong(t, r, want, keys)
	checkState(t, r, want, uint64(len(ws)), keys)
	if !logs.Contains("replica store failed") || !logs.Contains("MOVED ASIDE") {
		t.Fatal("the replica did not report the damage and move the store aside")
	}
}

// TestStreamLostTailRebuildsFromSnapshot restores the stream's store from
// an older copy while a replica is stopped, and purges the stream's front,
// so that a rebuild cannot start from sequence 1. The replica must rebuild
// from a snapshot of another replica, and must reject, after restoring it,
// a snapshot of the old history (its identity does not match the stream).
func TestStreamLostTailRebuildsFromSnapshot(t *testing.T) {
	env := testenv.Start(t)
	keys := keysN("k", 20)
	publish(t, env, puts(keys, "v1")...) // 1-20
	backup := env.BackupStore(t)
	publish(t, env, puts(keys[:10], "v2")...) // 21-30
	dir := t.TempDir()
	r := open(t, env, dir)
	stop := run(t, r)
	waitApplied(t, r, 30)
	oldSnap, _ := snapshot(t, r)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	env.RestoreStore(t, backup)
	publish(t, env, puts(keys, "v3")...) // 21-40
	fresh := open(t, env, t.TempDir(), func(c *replicator.Config) { c.ID = "fresh" })
	run(t, fresh)
	waitApplied(t, fresh, 40)
	purge(t, env, jetstream.WithPurgeSequence(25))

	var logs testenv.LogBuffer
	p := &peer{r: fresh, bad: [][]byte{oldSnap}}
	r = open(t, env, dir, logTo(t, &logs), func(c *replicator.Config) { c.Bootstrap = p })
	run(t, r)
	for i, k := range keys {
		readNew(t, r, k, "v3", uint64(21+i))
	}
	sameState(t, r, fresh, keys)
	p.mu.Lock()
	calls := p.calls
	p.mu.Unlock()
	if calls < 2 {
		t.Fatalf("%d snapshots restored, want the old history's rejected and another", calls)
	}
}

// TestLostTailNoWayToRebuild: without a Bootstrapper, a replica whose
// history the stream lost, on a stream that no longer starts at 1, stays
// stopped and says why.
func TestLostTailNoWayToRebuild(t *testing.T) {
	env := testenv.Start(t)
	keys := keysN("k", 20)
	publish(t, env, puts(keys, "v1")...)
	backup := env.BackupStore(t)
	publish(t, env, puts(keys[:10], "v2")...)
	dir := t.TempDir()
	r := open(t, env, dir)
	stop := run(t, r)
	waitApplied(t, r, 30)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	env.RestoreStore(t, backup)
	publish(t, env, puts(keys, "v3")...)
	purge(t, env, jetstream.WithPurgeSequence(25))

	r = open(t, env, dir)
	err := waitErr(t, runErr(t, r))
	if !errors.Is(err, replicator.ErrDiverged) || !strings.Contains(err.Error(), "cannot rebuild") {
		t.Fatalf("Run=%v, want ErrDiverged and cannot rebuild", err)
	}
	if !errors.Is(r.Err(), replicator.ErrDiverged) || r.Ready() {
		t.Fatalf("Err()=%v, Ready()=%v; want stopped with ErrDiverged", r.Err(), r.Ready())
	}
	if err := r.WaitApplied(context.Background(), 21); err == nil {
		t.Fatal("WaitApplied(21) succeeded on a replica of another history")
	}
}
