package replica_test

import (
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replica"
	"github.com/tidemark/tidemark/replicator"
	"github.com/tidemark/tidemark/wire"
	"github.com/tidemark/tidemark/writer"
)

// readFrom makes the fixture's writer read from rs: a session write that
// finds no order marker after a purge asks a replica for its session.
func (f *fixture) readFrom(rs ...*running) {
	var local []*replica.Replica
	for _, r := range rs {
		local = append(local, r.Replica)
	}
	f.w = writer.New(writer.Config{Stream: f.Stream, Records: replica.NewLocal(local...)})
}

// fill writes n more messages until cond holds, and fails the test after
// timeout.
func (f *fixture) fill(t *testing.T, n int, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, timeout, what, func() bool {
		f.fills++
		f.write(t, n, 1, fmt.Sprintf("fill%d", f.fills))
		return cond()
	})
}

// setDuplicates sets the stream's duplicate window: compaction keeps every
// message inside it, so tests that wait for a purge make it short.
func (f *fixture) setDuplicates(t *testing.T, d time.Duration) {
	t.Helper()
	cfg := f.info(t).Config
	cfg.Duplicates = d
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := f.JS.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("set the duplicate window: %v", err)
	}
}

// first returns where the stream starts.
func (f *fixture) first(t *testing.T) uint64 { return f.info(t).State.FirstSeq }

// info returns the stream's info.
func (f *fixture) info(t *testing.T) *jetstream.StreamInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	info, err := f.Stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// aggressive is a compaction that snapshots every 20 messages, keeps a
// window of window messages and looks every 20ms.
func aggressive(window int64) replica.Compaction {
	return replica.Compaction{Enabled: true, SnapshotMessages: 20, SnapshotAge: time.Hour, WindowMessages: window, Interval: 20 * time.Millisecond}
}

// startCompacting starts replica id on NATS with bootstrap and compaction c.
func (f *fixture) startCompacting(t *testing.T, id string, c replica.Compaction) *running {
	t.Helper()
	return f.startConfig(t, f.compacting(t, id, c))
}

// compacting is the configuration of startCompacting.
func (f *fixture) compacting(t *testing.T, id string, c replica.Compaction) replica.Config {
	cfg := replica.Config{ID: id, Dir: filepath.Join(f.dir, id), Stream: f.Stream, Logger: testLogger(t), Bootstrap: true,
		Conn: f.Conn.Conn, Compaction: c}
	if f.logs != nil {
		cfg.Logger = zerolog.New(f.logs)
	}
	return cfg
}

// The compactor purges below the lowest applied of the live replicas: a
// replica that is paused but advertises holds the stream back exactly at
// its applied, and once it moves on, so does the stream's start, and the
// replica resumes from the stream.
func TestCompactionHeldBackByLiveReplica(t *testing.T) {
	f := newFixture(t)
	f.setDuplicates(t, 200*time.Millisecond)
	a := f.startCompacting(t, "a1", aggressive(10))
	b := f.start(t, "b2", true, true)
	waitReady(t, a)
	waitReady(t, b)
	f.readFrom(a)
	waitApplied(t, b, f.write(t, 30, 10, "x"))
	b.Replicator().Pause()
	held := b.Applied()
	last := f.write(t, 100, 10, "y")
	testenv.Eventually(t, testTimeout, "the stream purged up to the paused replica", func() bool {
		first := f.first(t)
		if first > held {
			t.Fatalf("the stream starts at %d, above %d, what the paused replica b2 applied", first, held)
		}
		return first == held
	})
	b.Replicator().Resume()
	waitApplied(t, b, last)
	testenv.Eventually(t, testTimeout, "the stream purged past where b2 was paused", func() bool {
		return f.first(t) > held
	})
	if st := a.CompactStatus(); !st.Leader || st.Compactions == 0 || st.Base == nil || st.Removed == 0 {
		t.Fatalf("CompactStatus()=%+v, want a leader that compacted with a base snapshot", st)
	}
	if st := b.CompactStatus(); st.Leader {
		t.Fatalf("b2 runs no compactor, but CompactStatus()=%+v", st)
	}
	// The metrics say the same.
	reg := prometheus.NewRegistry()
	if err := reg.Register(a.Collector()); err != nil {
		t.Fatal(err)
	}
	gauges := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		for _, m := range fam.GetMetric() {
			gauges[fam.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	for _, name := range []string{replica.MetricCompactLeader, replica.MetricCompactions, replica.MetricCompactRemoved, replica.MetricBaseApplied,
		replica.MetricBaseBytes, replica.MetricCompactPoint, replica.MetricStreamFirst, replica.MetricStreamMessages, replica.MetricStreamBytes} {
		if gauges[name] <= 0 {
			t.Errorf("%s=%v, want it above 0", name, gauges[name])
		}
	}
	if _, ok := gauges[replicator.MetricTombstones]; !ok {
		t.Errorf("no %s metric", replicator.MetricTombstones)
	}
	f.sameState(t, a, b, last)
}

// A replica down for longer than the window bootstraps from the base
// snapshot, even with no other replica running, and ends identical to one
// that never stopped; one down for less resumes from the stream.
func TestCompactionReplicaComesBack(t *testing.T) {
	f := newFixture(t)
	f.setDuplicates(t, 200*time.Millisecond)
	var logs testenv.LogBuffer
	f.logs = &logs
	const window = 40
	a := f.startCompacting(t, "a1", aggressive(window))
	short := f.start(t, "b2", true, true)
	long := f.start(t, "c3", true, true)
	waitReady(t, a)
	waitReady(t, short)
	waitReady(t, long)
	f.readFrom(a)
	seq := f.write(t, 60, 10, "x")
	waitApplied(t, long, seq)
	waitApplied(t, short, seq)

	// c3 is down for longer than the window.
	long.stop()
	downAt := long.Applied()
	seq = f.write(t, 3*window, 10, "y")
	testenv.Eventually(t, testTimeout, "compaction passed where c3 stopped", func() bool {
		return f.first(t) > downAt+1
	})

	// b2 is down for less than the window.
	waitApplied(t, short, seq)
	short.stop()
	seq = f.write(t, window*3/4, 10, "z")
	testenv.Eventually(t, testTimeout, "compaction down to the window", func() bool {
		return f.first(t) == seq-window+1
	})
	short = f.start(t, "b2", true, true)
	waitApplied(t, short, seq)
	for _, m := range logs.Lines("bootstrapping from a snapshot") {
		if m["replica"] == "b2" {
			t.Fatalf("b2, down for less than the window, bootstrapped: %v", m)
		}
	}

	// With no other replica running, c3 comes back from the base snapshot.
	waitApplied(t, a, seq)
	aHolds := a.Applied()
	a.stop()
	short.stop()
	long = f.start(t, "c3", true, true)
	waitApplied(t, long, seq)
	if m := logs.Last("downloading and restoring the base snapshot"); m == nil || m["replica"] != "c3" {
		t.Fatalf("c3 did not restore the base snapshot (last such log: %v)", m)
	}
	a = f.startCompacting(t, "a1", aggressive(window))
	if aHolds != seq {
		t.Fatalf("a1 applied %d, want %d", aHolds, seq)
	}
	f.sameState(t, a, long, seq)
}

// Every guarantee holds around a compaction that removed the messages it
// depends on: conditional writes of keys whose last write was compacted
// away, a session's order after its markers are gone, write-id
// deduplication within the duplicate window, tokens from before.
func TestCompactionKeepsGuarantees(t *testing.T) {
	f := newFixture(t)
	const dup = 4 * time.Second
	f.setDuplicates(t, dup)
	// Tombstones go after a second of stream time, well inside the
	// duplicate window that compaction keeps.
	const horizon = time.Second
	ac := f.compacting(t, "a1", aggressive(5))
	bc := f.compacting(t, "b2", replica.Compaction{})
	for _, c := range []*replica.Config{&ac, &bc} {
		c.TombstoneHorizon, c.SweepInterval = horizon, time.Millisecond
	}
	a, b := f.startConfig(t, ac), f.startConfig(t, bc)
	waitReady(t, a)
	waitReady(t, b)
	f.readFrom(a, b)
	w := f.w
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	must := func(req api.WriteRequest) api.WriteResult {
		t.Helper()
		res, err := w.Write(ctx, req)
		if err != nil {
			t.Fatalf("write %+v: %v", req, err)
		}
		return res
	}
	early := must(api.WriteRequest{Op: api.OpPut, Key: "c", Value: []byte("c1")})
	for n := uint64(1); n <= 5; n++ {
		must(api.WriteRequest{Op: api.OpPut, Key: "sk", Value: []byte{'0' + byte(n)}, Session: "S", SessionSeq: n})
	}
	must(api.WriteRequest{Op: api.OpPut, Key: "gone", Value: []byte("g")})
	gone := must(api.WriteRequest{Op: api.OpDelete, Key: "gone"})
	// Fill until compaction removed every message above.
	f.fill(t, 5, 2*testTimeout, "compaction removed the early writes", func() bool { return f.first(t) > gone.Revision })

	// A token from before compaction is satisfied by a replica past it.
	res, err := b.Get(ctx, api.GetRequest{Key: "c", ReadSpec: api.ReadSpec{Token: early.Token}})
	if err != nil || string(res.Record.Value) != "c1" || res.Record.Revision != early.Revision {
		t.Fatalf("Get(c) with the early token = %q at %d, %v; want c1 at %d", res.Record.Value, res.Record.Revision, err, early.Revision)
	}

	// Conditional writes of keys whose every message was compacted away.
	if _, err := w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "c", Value: []byte("no"), IfAbsent: true}); !errors.Is(err, api.ErrRevisionMismatch) {
		t.Fatalf("If-None-Match on live c = %v, want revision_mismatch", err)
	}
	if _, err := w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "c", Value: []byte("no"), IfRevision: early.Revision + 1}); !errors.Is(err, api.ErrRevisionMismatch) {
		t.Fatalf("If-Match on c at a wrong revision = %v, want revision_mismatch", err)
	}
	c2 := must(api.WriteRequest{Op: api.OpPut, Key: "c", Value: []byte("c2"), IfRevision: early.Revision})
	if _, err := w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "c", Value: []byte("no"), IfRevision: early.Revision}); !errors.Is(err, api.ErrRevisionMismatch) {
		t.Fatalf("a second If-Match on c at %d = %v, want revision_mismatch", early.Revision, err)
	}
	// gone's tombstone is past the horizon too: no replica knows it was
	// deleted, and the stream holds none of its messages.
	for _, r := range []*running{a, b} {
		res, err := r.Get(ctx, api.GetRequest{Key: "gone", ReadSpec: api.ReadSpec{Consistency: api.Strong}})
		if !errors.Is(err, api.ErrNotFound) || res.Record.Revision != 0 {
			t.Fatalf("%s: Get(gone)=%+v, %v; want not found without the delete's revision %d", r.ID(), res.Record, err, gone.Revision)
		}
	}
	if _, err := w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "gone", Value: []byte("no"), IfRevision: gone.Revision}); !errors.Is(err, api.ErrRevisionMismatch) {
		t.Fatalf("If-Match on gone at its delete's revision = %v, want revision_mismatch", err)
	}
	g2 := must(api.WriteRequest{Op: api.OpPut, Key: "gone", Value: []byte("g2"), IfAbsent: true})
	if _, err := w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "gone", Value: []byte("no"), IfAbsent: true}); !errors.Is(err, api.ErrRevisionMismatch) {
		t.Fatalf("a second If-None-Match on gone = %v, want revision_mismatch", err)
	}

	// A late write of session S: every replica holds S at 5 and would
	// leave write 3 out, so it must not be acknowledged.
	if n, err := a.Replicator().Session("S"); err != nil || n != 5 {
		t.Fatalf("a1 holds session S at %d (%v), want 5", n, err)
	}
	if late, err := w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "late", Value: []byte("l"), Session: "S", SessionSeq: 3}); !errors.Is(err, api.ErrOutOfOrder) {
		t.Fatalf("late write 3 of session S after compaction = %+v, %v; want write_out_of_order", late, err)
	}
	// The same over NATS: a writer that reads the replicas' session
	// records through their reader services.
	wn := writer.New(writer.Config{Stream: f.Stream, Records: client.NewNATS(f.Conn.Conn, wire.Subjects{})})
	if late, err := wn.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "late", Value: []byte("l"), Session: "S", SessionSeq: 4}); !errors.Is(err, api.ErrOutOfOrder) {
		t.Fatalf("late write 4 of session S over NATS after compaction = %+v, %v; want write_out_of_order", late, err)
	}
	// A transaction is one step of its session: a late one is refused too.
	if late, err := wn.Txn(ctx, api.TxnRequest{Session: "S", SessionSeq: 4,
		Ops: []api.TxnOp{{Op: api.OpPut, Key: "late", Value: []byte("l")}}}); !errors.Is(err, api.ErrOutOfOrder) {
		t.Fatalf("late transaction 4 of session S after compaction = %+v, %v; want write_out_of_order", late, err)
	}
	s6 := must(api.WriteRequest{Op: api.OpPut, Key: "sk", Value: []byte("6"), Session: "S", SessionSeq: 6})

	// Write-id deduplication within the duplicate window: compaction keeps
	// the message a retry is compared with.
	d1 := must(api.WriteRequest{Op: api.OpPut, Key: "d", Value: []byte("d1"), WriteID: "dup-1"})
	f.fill(t, 25, dup, "a base snapshot past dup-1", func() bool {
		st := a.CompactStatus()
		return st.Base != nil && st.Base.Applied > d1.Revision
	})
	if first := f.first(t); first > d1.Revision {
		t.Fatalf("the stream starts at %d, after dup-1 at %d, within the duplicate window", first, d1.Revision)
	}
	again := must(api.WriteRequest{Op: api.OpPut, Key: "d", Value: []byte("d1"), WriteID: "dup-1"})
	if again.Revision != d1.Revision {
		t.Fatalf("retry of dup-1 stored at %d, want the first attempt's %d", again.Revision, d1.Revision)
	}
	if _, err := w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "d", Value: []byte("other"), WriteID: "dup-1"}); !errors.Is(err, api.ErrWriteIDReused) {
		t.Fatalf("dup-1 reused for another value = %v, want write_id_reused", err)
	}

	// Read-your-writes of everything acknowledged, on both replicas.
	for _, r := range []*running{a, b} {
		for _, want := range []struct {
			key, value string
			rev        uint64
			tok        api.Token
		}{{"c", "c2", c2.Revision, c2.Token}, {"gone", "g2", g2.Revision, g2.Token}, {"sk", "6", s6.Revision, s6.Token}, {"d", "d1", d1.Revision, d1.Token}} {
			res, err := r.Get(ctx, api.GetRequest{Key: want.key, ReadSpec: api.ReadSpec{Token: want.tok}})
			if err != nil || string(res.Record.Value) != want.value || res.Record.Revision != want.rev {
				t.Fatalf("%s: Get(%s)=%q at %d, %v; want %q at %d", r.ID(), want.key, res.Record.Value, res.Record.Revision, err, want.value, want.rev)
			}
		}
		if _, err := r.Get(ctx, api.GetRequest{Key: "late", ReadSpec: api.ReadSpec{Token: s6.Token}}); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("%s: Get(late)=%v, want not found", r.ID(), err)
		}
	}
}
