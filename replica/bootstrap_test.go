package replica_test

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replica"
	"github.com/tidemark/tidemark/replicator"
	"github.com/tidemark/tidemark/writer"
)

const testTimeout = 30 * time.Second

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

// fixture is an embedded NATS server with the stream and a writer.
type fixture struct {
	*testenv.Env
	w   *writer.Writer
	dir string
	// logs, when set, also receives the replicas' log at info level.
	logs io.Writer
	// fills counts the fill rounds of compaction tests, for their tags.
	fills int
}

func newFixture(t *testing.T) *fixture {
	env := testenv.Start(t)
	return &fixture{Env: env, w: writer.New(writer.Config{Stream: env.Stream}), dir: t.TempDir()}
}

// running is a replica whose Run goroutine the test owns.
type running struct {
	*replica.Replica
	stop func()
}

// start opens and runs replica id; serve puts it on NATS (reads and
// snapshots), bootstrap lets it bootstrap. It is stopped with the test.
func (f *fixture) start(t *testing.T, id string, serve, bootstrap bool) *running {
	t.Helper()
	cfg := replica.Config{ID: id, Dir: filepath.Join(f.dir, id), Stream: f.Stream, Logger: testLogger(t), Bootstrap: bootstrap}
	if f.logs != nil {
		cfg.Logger = zerolog.New(f.logs)
	}
	if serve {
		cfg.Conn = f.Conn.Conn
	}
	return f.startConfig(t, cfg)
}

// startConfig opens and runs the replica of cfg; it is stopped with the
// test.
func (f *fixture) startConfig(t *testing.T, cfg replica.Config) *running {
	t.Helper()
	id := cfg.ID
	r := replica.New(cfg)
	if err := r.Open(); err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica %s: Run=%v", id, err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("close %s: %v", id, err)
		}
	}
	t.Cleanup(stop)
	return &running{Replica: r, stop: stop}
}

// write makes n writes over a few keys (puts, deletes, a session's writes)
// with values of size bytes, and returns the last revision.
func (f *fixture) write(t *testing.T, n, size int, tag string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var last uint64
	for i := range n {
		req := api.WriteRequest{Op: api.OpPut, Key: fmt.Sprintf("k%02d", i%23)}
		switch {
		case i%7 == 6:
			req.Op = api.OpDelete
		case i%5 == 0:
			req.Session, req.SessionSeq = "s-"+tag, uint64(i+1)
			fallthrough
		default:
			req.Value = append([]byte(fmt.Sprintf("%s-%d-", tag, i)), bytes.Repeat([]byte{'v'}, size)...)
		}
		res, err := f.w.Write(ctx, req)
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		last = res.Revision
	}
	return last
}

func (f *fixture) purge(t *testing.T, keep uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := f.Stream.Handle().Purge(ctx, jetstream.WithPurgeKeep(keep)); err != nil {
		t.Fatalf("purge: %v", err)
	}
}

func waitApplied(t *testing.T, r *running, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r.Replicator().WaitApplied(ctx, seq); err != nil {
		t.Fatalf("%s: WaitApplied(%d)=%v (applied %d, ready: %v)", r.ID(), seq, err, r.Applied(), r.Ready())
	}
}

func waitReady(t *testing.T, r *running) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r.WaitReady(ctx); err != nil {
		t.Fatalf("%s: WaitReady=%v (ready: %v)", r.ID(), err, r.Ready())
	}
}

// sameState checks that b holds exactly a's state, at seq: their snapshots
// (every key, session records included) are the same bytes.
func (f *fixture) sameState(t *testing.T, a, b *running, seq uint64) {
	t.Helper()
	waitApplied(t, a, seq)
	waitApplied(t, b, seq)
	snap := func(r *running) []byte {
		var buf bytes.Buffer
		applied, err := r.Replicator().Snapshot(context.Background(), &buf)
		if err != nil {
			t.Fatalf("%s: Snapshot: %v", r.ID(), err)
		}
		if applied != seq {
			t.Fatalf("%s: applied %d, want %d (written since?)", r.ID(), applied, seq)
		}
		return buf.Bytes()
	}
	if sa, sb := snap(a), snap(b); !bytes.Equal(sa, sb) {
		t.Fatalf("%s and %s differ at %d (%d and %d bytes of snapshot)", a.ID(), b.ID(), seq, len(sa), len(sb))
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for i := range 23 {
		key := fmt.Sprintf("k%02d", i)
		ra, erra := a.Get(ctx, api.GetRequest{Key: key})
		rb, errb := b.Get(ctx, api.GetRequest{Key: key, ReadSpec: api.ReadSpec{Token: f.Stream.Token(seq)}})
		if !bytes.Equal(ra.Record.Value, rb.Record.Value) || ra.Record.Revision != rb.Record.Revision || !errors.Is(errb, errOrNil(erra)) {
			t.Fatalf("Get(%q): %s has %q at %d (%v), %s has %q at %d (%v)", key, a.ID(), ra.Record.Value, ra.Record.Revision, erra, b.ID(), rb.Record.Value, rb.Record.Revision, errb)
		}
	}
}

func errOrNil(err error) error {
	if errors.Is(err, api.ErrNotFound) {
		return api.ErrNotFound
	}
	return err
}

// noSnapshotsLeft checks that every snapshot made for a bootstrap was
// deleted by the replica it was made for.
func (f *fixture) noSnapshotsLeft(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	obs, err := f.JS.ObjectStore(ctx, wire.SnapshotBucket(f.Stream.Name()))
	if err != nil {
		t.Fatalf("snapshot bucket: %v", err)
	}
	list, err := obs.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		t.Fatal(err)
	}
	for _, o := range list {
		t.Errorf("snapshot %s (%d bytes) left in the bucket", o.Name, o.Size)
	}
}

// A replica added after the stream was purged bootstraps from a snapshot of
// a running replica, ends with exactly its state, and then applies new
// writes from the stream.
func TestBootstrapLateReplica(t *testing.T) {
	f := newFixture(t)
	r1 := f.start(t, "r1", true, true)
	waitReady(t, r1)
	f.readFrom(r1) // a new session after a purge: its writer asks a replica
	waitApplied(t, r1, f.write(t, 300, 100, "a"))
	f.purge(t, 10)
	last := f.write(t, 5, 10, "b")

	r2 := f.start(t, "r2", true, true)
	waitReady(t, r2)
	if err := r2.Ready(); err != nil {
		t.Fatalf("Ready()=%v", err)
	}
	f.sameState(t, r1, r2, last)

	last = f.write(t, 30, 10, "c")
	f.sameState(t, r1, r2, last)
	f.noSnapshotsLeft(t)

	// r2 now serves snapshots too: a third replica can bootstrap from
	// either.
	f.purge(t, 1)
	r3 := f.start(t, "r3", false, true)
	waitReady(t, r3)
	f.sameState(t, r1, r3, last)
}

// Without bootstrap, a late replica behind a purge refuses to serve, as
// before.
func TestBootstrapOff(t *testing.T) {
	f := newFixture(t)
	r1 := f.start(t, "r1", true, true)
	waitApplied(t, r1, f.write(t, 20, 10, "a"))
	f.purge(t, 3)

	r2 := f.start(t, "r2", true, false)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r2.WaitReady(ctx); !errors.Is(err, replicator.ErrGap) {
		t.Fatalf("WaitReady=%v, want ErrGap", err)
	}
	if err := r2.Ready(); !errors.Is(err, replicator.ErrGap) {
		t.Fatalf("Ready()=%v, want ErrGap", err)
	}
	if got, want := r2.Applied(), uint64(0); got != want {
		t.Fatalf("Applied()=%d, want %d", got, want)
	}
}

// A replica that falls behind a purge while it runs (paused here, with
// more written than its consumer buffers) bootstraps and catches up.
func TestBootstrapPausedReplica(t *testing.T) {
	f := newFixture(t)
	r1 := f.start(t, "r1", true, true)
	r2 := f.start(t, "r2", true, true)
	first := f.write(t, 20, 10, "a")
	waitApplied(t, r2, first)
	waitReady(t, r2)
	r2.Replicator().Pause()
	last := f.write(t, 100, 256<<10, "b") // 25 MB: more than r2 buffers
	waitApplied(t, r1, last)
	f.purge(t, 5)
	r2.Replicator().Resume()

	f.sameState(t, r1, r2, last)
	if err := r2.Ready(); err != nil {
		t.Fatalf("Ready()=%v", err)
	}
	f.noSnapshotsLeft(t)
}

// A replica stopped, then restarted after the stream was purged past its
// applied sequence, bootstraps.
func TestBootstrapStoppedReplica(t *testing.T) {
	f := newFixture(t)
	r1 := f.start(t, "r1", true, true)
	r2 := f.start(t, "r2", true, true)
	waitApplied(t, r2, f.write(t, 40, 10, "a"))
	r2.stop()
	last := f.write(t, 40, 10, "b")
	waitApplied(t, r1, last)
	f.purge(t, 2)

	r2 = f.start(t, "r2", true, true)
	waitReady(t, r2)
	f.sameState(t, r1, r2, last)
}

// A bootstrapping replica rejects a corrupt snapshot and one of another
// stream, keeps saying it is bootstrapping, and bootstraps once a good
// replica answers.
func TestBootstrapRejectsBadSnapshots(t *testing.T) {
	f := newFixture(t)
	// r1 applies without serving on NATS, so it answers no snapshot
	// request until it is restarted with a connection.
	r1 := f.start(t, "r1", false, true)
	last := f.write(t, 30, 10, "a")
	waitApplied(t, r1, last)
	f.purge(t, 2)

	other := testenv.Start(t) // another stream, another identity
	ro := replicator.New(replicator.Config{ID: "x", Dir: t.TempDir(), Stream: other.Stream, Logger: testLogger(t)})
	if err := ro.Open(); err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var foreign bytes.Buffer
	if _, err := ro.Snapshot(context.Background(), &foreign); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	obs, err := f.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: wire.SnapshotBucket(f.Stream.Name())})
	if err != nil {
		t.Fatal(err)
	}
	bad := [][]byte{[]byte("not a snapshot at all"), foreign.Bytes()}
	var answered atomic.Int32
	sub, err := f.Conn.Conn.Subscribe(wire.Subjects{}.Snapshot(), func(m *nats.Msg) {
		i := int(answered.Load())
		if i >= len(bad) {
			return
		}
		name := fmt.Sprintf("bad-%d", i)
		if _, err := obs.PutBytes(ctx, name, bad[i]); err != nil {
			t.Errorf("put: %v", err)
			return
		}
		reply := fmt.Sprintf(`{"name":%q,"stream":%q,"applied":%d,"replica":"evil","size":%d}`, name, f.Stream.ID(), last, len(bad[i]))
		_ = m.Respond([]byte(reply))
		answered.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.AutoUnsubscribe(len(bad)); err != nil {
		t.Fatal(err)
	}

	r2 := f.start(t, "r2", true, true)
	testenv.Eventually(t, testTimeout, "both bad snapshots offered", func() bool { return answered.Load() == int32(len(bad)) })
	testenv.Eventually(t, testTimeout, "the second rejected", func() bool {
		err := r2.Ready()
		return errors.Is(err, replicator.ErrBootstrapping) && strings.Contains(err.Error(), "attempt 3")
	})
	err = r2.Ready()
	if !strings.Contains(err.Error(), replicator.ErrStreamMismatch.Error()) {
		t.Fatalf("Ready()=%v, want it to say why the last snapshot was rejected", err)
	}
	if got, want := r2.Applied(), uint64(0); got != want {
		t.Fatalf("Applied()=%d after bad snapshots, want %d", got, want)
	}

	r1.stop()
	r1 = f.start(t, "r1", true, true)
	waitReady(t, r2)
	f.sameState(t, r1, r2, last)
	f.noSnapshotsLeft(t)
}
