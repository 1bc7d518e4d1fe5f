package writer_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/natsserver"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/writer"
)

// groupWriter is a writer with group commit on e's stream, its metrics in
// a registry of their own.
func groupWriter(e *testenv.Env, cfg writer.Config) (*writer.Writer, *prometheus.Registry) {
	if cfg.Stream == nil {
		cfg.Stream = e.Stream
	}
	cfg.GroupCommit = true
	w := writer.New(cfg)
	reg := prometheus.NewRegistry()
	reg.MustRegister(w.Collector())
	return w, reg
}

// counter returns the value of the counter name with the given outcome
// label (none when empty) in reg; 0 when it has no such series.
func counter(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := outcome == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					match = true
				}
			}
			if match {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// queue starts the writes reqs at once on w, whose flights are held, and
// returns once all of them wait for a flight; their results come on the
// returned channel, in any order, with their index.
func queue(t *testing.T, ctx context.Context, w *writer.Writer, reqs []api.WriteRequest) <-chan written {
	t.Helper()
	before := writer.Queued(w)
	out := make(chan written, len(reqs))
	for i, req := range reqs {
		go func() {
			res, err := w.Write(ctx, req)
			out <- written{i, res, err}
		}()
	}
	testenv.Eventually(t, 10*time.Second, "the writes queued", func() bool { return writer.Queued(w) == before+len(reqs) })
	return out
}

type written struct {
	i   int
	res api.WriteResult
	err error
}

func collect(t *testing.T, out <-chan written, n int) []written {
	t.Helper()
	got := make([]written, n)
	for range n {
		r := <-out
		got[r.i] = r
	}
	return got
}

// wantOK fails unless every write succeeded.
func wantOK(t *testing.T, got []written) {
	t.Helper()
	for i, r := range got {
		if r.err != nil {
			t.Fatalf("write %d: %v", i, r.err)
		}
	}
}

// wantOwnRevisions fails unless every write succeeded with a revision of
// its own.
func wantOwnRevisions(t *testing.T, got []written) {
	t.Helper()
	wantOK(t, got)
	seen := make(map[uint64]int)
	for i, r := range got {
		if j, ok := seen[r.res.Revision]; ok {
			t.Fatalf("writes %d and %d both got revision %d", j, i, r.res.Revision)
		}
		seen[r.res.Revision] = i
	}
}

// checkStored fails unless the stream holds each successful write at its
// revision.
func checkStored(t *testing.T, e *testenv.Env, reqs []api.WriteRequest, got []written) {
	t.Helper()
	for i, r := range got {
		if r.err != nil {
			continue
		}
		m := getMsg(t, e, r.res.Revision)
		if m.Subject != e.Stream.KeySubject(reqs[i].Key) || string(m.Data) != string(reqs[i].Value) || m.Header.Get(api.HeaderOp) != string(reqs[i].Op) {
			t.Fatalf("write %d (%s %q=%q) got revision %d, which holds %s %q=%q", i, reqs[i].Op, reqs[i].Key, reqs[i].Value,
				r.res.Revision, m.Header.Get(api.HeaderOp), m.Subject, m.Data)
		}
	}
}

// Many callers at once on a server that fsyncs every write: their writes
// go to the stream in atomic batches, and each gets its own revision,
// where the stream holds it.
func TestGroupCommit_Concurrent(t *testing.T) {
	e := testenv.StartServer(t, natsserver.ServerConfig{SyncAlways: true})
	w, reg := groupWriter(e, writer.Config{})

	const callers, each = 64, 16
	reqs := make([]api.WriteRequest, callers*each)
	for i := range reqs {
		reqs[i] = put(fmt.Sprintf("k%d", i%100), fmt.Sprintf("v%d", i))
		if i%5 == 4 {
			reqs[i] = del(fmt.Sprintf("k%d", i%100))
		}
	}
	got := make([]written, len(reqs))
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := c; i < len(reqs); i += callers {
				res, err := w.Write(testContext(t), reqs[i])
				got[i] = written{i, res, err}
			}
		})
	}
	wg.Wait()
	wantOwnRevisions(t, got)
	checkStored(t, e, reqs, got)
	if got, want := lastSeq(t, e), uint64(len(reqs)); got != want {
		t.Fatalf("stream LastSeq=%d, want %d", got, want)
	}
	if n := counter(t, reg, writer.MetricBatchedWrites, ""); n == 0 {
		t.Fatalf("%s=0: no write went in a batch", writer.MetricBatchedWrites)
	}
}

// The writes waiting at one moment go to the stream as one batch: each has
// its own revision, in one run of sequences.
func TestGroupCommit_OneBatch(t *testing.T) {
	e := testenv.Start(t)
	w, reg := groupWriter(e, writer.Config{})
	writer.HoldFlights(w)
	reqs := make([]api.WriteRequest, 20)
	for i := range reqs {
		reqs[i] = put(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
	}
	out := queue(t, testContext(t), w, reqs)
	writer.ReleaseFlights(w)
	got := collect(t, out, len(reqs))
	// Distinct revisions, each within 1..n: every one of 1..n.
	wantOwnRevisions(t, got)
	for i, r := range got {
		if r.res.Revision < 1 || r.res.Revision > uint64(len(reqs)) {
			t.Fatalf("write %d got revision %d, not one of 1..%d", i, r.res.Revision, len(reqs))
		}
	}
	checkStored(t, e, reqs, got)
	if id := getMsg(t, e, 1).Header.Get(stream.HeaderBatchID); id == "" {
		t.Fatalf("message 1 has no %s header: not stored by a batch", stream.HeaderBatchID)
	}
	if got, want := counter(t, reg, writer.MetricBatches, writer.BatchCommitted), 1.0; got != want {
		t.Fatalf("batches committed=%v, want %v", got, want)
	}
	if got, want := counter(t, reg, writer.MetricBatchedWrites, ""), float64(len(reqs)); got != want {
		t.Fatalf("batched messages=%v, want %v", got, want)
	}
}

// A batch holding writes whose conditions cannot all hold is refused whole
// by the stream; its writes are then published one by one, and each gets
// the outcome it would have had alone: one of the racing conditional writes
// wins, the others lose, and the unconditional writes are all stored, once.
func TestGroupCommit_RefusedBatch(t *testing.T) {
	e := testenv.Start(t)
	w, reg := groupWriter(e, writer.Config{})
	cur := mustWrite(t, w, put("k", "0"))
	writer.HoldFlights(w)
	var reqs []api.WriteRequest
	for i := range 10 {
		ifMatch := put("k", fmt.Sprint("if-match ", i))
		ifMatch.IfRevision = cur.Revision
		created := put("new", fmt.Sprint("create ", i))
		created.IfAbsent = true
		reqs = append(reqs, ifMatch, created, put(fmt.Sprint("other", i), "x"))
	}
	out := queue(t, testContext(t), w, reqs)
	writer.ReleaseFlights(w)
	got := collect(t, out, len(reqs))
	won := map[string]int{}
	for i, r := range got {
		req := reqs[i]
		switch {
		case r.err == nil && (req.IfRevision != 0 || req.IfAbsent):
			won[req.Key]++
		case r.err != nil && (req.IfRevision != 0 || req.IfAbsent) && errors.Is(r.err, api.ErrRevisionMismatch):
		case r.err != nil:
			t.Fatalf("write %d (%s %q): %v", i, req.Op, req.Key, r.err)
		}
	}
	if won["k"] != 1 || won["new"] != 1 {
		t.Fatalf("conditional writes won: %v, want one on k and one on new", won)
	}
	checkStored(t, e, reqs, got)
	if got, want := lastSeq(t, e), cur.Revision+2+10; got != want {
		t.Fatalf("stream LastSeq=%d, want %d (one write of k, one of new, ten others)", got, want)
	}
	if n := counter(t, reg, writer.MetricBatches, writer.BatchRefused); n == 0 {
		t.Fatal("no batch was refused: the test did not put the conditions in one batch")
	}
}

// A write id already stored, or twice in one batch, makes the stream refuse
// the batch; one by one, the retry gets its first revision, the two sends
// of one new write store it once, and the other writes are stored.
func TestGroupCommit_DuplicateWriteIDs(t *testing.T) {
	e := testenv.Start(t)
	w, reg := groupWriter(e, writer.Config{})
	stored := put("a", "1")
	stored.WriteID = "X"
	first := mustWrite(t, w, stored)
	writer.HoldFlights(w)
	twice := put("b", "1")
	twice.WriteID = "Y"
	reqs := []api.WriteRequest{stored, twice, twice}
	for i := range 8 {
		reqs = append(reqs, put(fmt.Sprint("c", i), "x"))
	}
	out := queue(t, testContext(t), w, reqs)
	writer.ReleaseFlights(w)
	got := collect(t, out, len(reqs))
	wantOK(t, got)
	if got[0].res.Revision != first.Revision {
		t.Fatalf("the retry of X got revision %d, want %d", got[0].res.Revision, first.Revision)
	}
	if got[1].res.Revision != got[2].res.Revision {
		t.Fatalf("the two sends of Y got revisions %d and %d, want one", got[1].res.Revision, got[2].res.Revision)
	}
	checkStored(t, e, reqs, got)
	if got, want := lastSeq(t, e), first.Revision+1+8; got != want {
		t.Fatalf("stream LastSeq=%d, want %d", got, want)
	}
	if n := counter(t, reg, writer.MetricBatches, writer.BatchRefused); n == 0 {
		t.Fatal("no batch was refused")
	}
}

// A batch whose answer does not come may or may not be stored: its writes
// are published again one by one, and again on retry, under their write
// ids, so that when the server gets everything at last each write is stored
// once and answered with where it is.
func TestGroupCommit_UnknownOutcome(t *testing.T) {
	e := testenv.Start(t)
	proxy, _, st := testenv.ProxyStream(t, e.Server, e.Config)
	w, reg := groupWriter(e, writer.Config{Stream: st, Logger: zerolog.Nop(), AttemptTimeout: 300 * time.Millisecond, RetryTimeout: time.Minute})

	writer.HoldFlights(w)
	reqs := make([]api.WriteRequest, 16)
	for i := range reqs {
		reqs[i] = put(fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
	}
	out := queue(t, testContext(t), w, reqs)
	proxy.Hold()
	writer.ReleaseFlights(w)
	testenv.Eventually(t, 10*time.Second, "a batch without an answer", func() bool {
		return counter(t, reg, writer.MetricBatches, writer.BatchUnknown) > 0
	})
	proxy.Release()
	got := collect(t, out, len(reqs))
	wantOwnRevisions(t, got)
	checkStored(t, e, reqs, got)
	if got, want := lastSeq(t, e), uint64(len(reqs)); got != want {
		t.Fatalf("stream LastSeq=%d, want %d: a write was stored twice", got, want)
	}
}

// Writes queued behind flights in the air return when their context ends,
// and none of them is published.
func TestGroupCommit_ContextEndsWhileQueued(t *testing.T) {
	e := testenv.Start(t)
	w, _ := groupWriter(e, writer.Config{})
	writer.HoldFlights(w)
	ctx, cancel := context.WithCancel(testContext(t))
	reqs := make([]api.WriteRequest, 8)
	for i := range reqs {
		reqs[i] = put(fmt.Sprint("k", i), "v")
	}
	out := queue(t, ctx, w, reqs)
	cancel()
	for i, r := range collect(t, out, len(reqs)) {
		if !errors.Is(r.err, api.ErrUnavailable) {
			t.Fatalf("write %d: err=%v, want %v", i, r.err, api.ErrUnavailable)
		}
	}
	writer.ReleaseFlights(w)
	mustWrite(t, w, put("after", "1"))
	if got, want := lastSeq(t, e), uint64(1); got != want {
		t.Fatalf("stream LastSeq=%d, want %d: a write whose context ended was published", got, want)
	}
}

// A batch holds at most 4 MiB: the writes queued beyond that go in the
// next batch of the same flight.
func TestGroupCommit_BatchesBoundedByBytes(t *testing.T) {
	e := testenv.Start(t)
	w, reg := groupWriter(e, writer.Config{})
	writer.HoldFlights(w)
	value := string(make([]byte, 64<<10))
	reqs := make([]api.WriteRequest, 100)
	for i := range reqs {
		reqs[i] = put(fmt.Sprintf("k%d", i), value)
	}
	out := queue(t, testContext(t), w, reqs)
	writer.ReleaseFlights(w)
	got := collect(t, out, len(reqs))
	wantOK(t, got)
	checkStored(t, e, reqs, got)
	// 63 writes of 64 KiB and their headers fit in 4 MiB.
	if got, want := counter(t, reg, writer.MetricBatches, writer.BatchCommitted), 2.0; got != want {
		t.Fatalf("batches committed=%v, want %v", got, want)
	}
	if got, want := counter(t, reg, writer.MetricBatchedWrites, ""), float64(len(reqs)); got != want {
		t.Fatalf("batched messages=%v, want %v", got, want)
	}
}
