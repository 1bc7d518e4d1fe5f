package replicator

import (
	"github.com/tidemark/tidemark/api"

	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/stream"
)

// TestCommitSplitsLargeBatch feeds one batch far larger than a Badger
// transaction may hold straight to commit: it must be split into several
// transactions, each carrying its own applied, with nothing lost.
func TestCommitSplitsLargeBatch(t *testing.T) {
	env := testenv.Start(t)
	r := New(Config{Dir: t.TempDir(), Stream: env.Stream, Logger: zerolog.Nop()})
	if err := r.Open(); err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	value := bytes.Repeat([]byte("v"), DefaultValueThreshold-1024) // kept in the LSM tree
	// Twice what one transaction may hold: 15% of a memtable.
	n := 2 * DefaultMemTableSize * 15 / 100 / len(value)
	ds := make([]delivery, n)
	for i := range ds {
		ds[i] = delivery{seq: uint64(i + 1), entry: stream.Entry{Op: api.OpPut, Key: fmt.Sprint(i), Value: value}}
	}
	if err := r.commit(r.db, ds); err != nil {
		t.Fatalf("commit: %v", err)
	}
	st := r.Stats()
	t.Logf("stats %+v", st)
	if st.Splits == 0 || st.Batches < 2 {
		t.Fatalf("Stats=%+v, want the batch split into several transactions", st)
	}
	if got, want := st.Applied, uint64(n); got != want {
		t.Fatalf("Applied=%d, want %d", got, want)
	}
	for i := range n {
		rec, applied, err := r.Get(fmt.Sprint(i))
		if err != nil || rec.Revision != uint64(i+1) || !bytes.Equal(rec.Value, value) || applied != uint64(n) {
			t.Fatalf("Get(%d)=rev %d, %d bytes, applied %d, %v", i, rec.Revision, len(rec.Value), applied, err)
		}
	}
}

// BenchmarkWaitAppliedWakeup measures how long a commit takes to wake a
// waiter: the apply loop's advance against a blocked WaitApplied, ping-pong.
func BenchmarkWaitAppliedWakeup(b *testing.B) {
	r := New(Config{})
	ctx := context.Background()
	woke := make(chan struct{})
	go func() {
		for seq := uint64(1); seq <= uint64(b.N); seq++ {
			if err := r.WaitApplied(ctx, seq); err != nil {
				panic(err)
			}
			woke <- struct{}{}
		}
	}()
	b.ResetTimer()
	for i := range b.N {
		r.advance(uint64(i + 1))
		<-woke
	}
}

// BenchmarkWaitAppliedMany measures advance with 1000 blocked waiters, each
// commit waking one of them.
func BenchmarkWaitAppliedMany(b *testing.B) {
	const waiters = 1000
	r := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	woke := make(chan struct{}, waiters)
	for w := range waiters {
		go func() {
			for seq := uint64(w + 1); ; seq += waiters {
				if r.WaitApplied(ctx, seq) != nil {
					return
				}
				woke <- struct{}{}
			}
		}()
	}
	b.ResetTimer()
	for i := range b.N {
		r.advance(uint64(i + 1))
		<-woke
	}
}

// TestSweepSessions: session records older than stream.SessionWindow (in
// stream time) are forgotten; newer ones stay, and the order rule is the
// same before and after the sweep.
func TestSweepSessions(t *testing.T) {
	env := testenv.Start(t)
	r := New(Config{Dir: t.TempDir(), Stream: env.Stream, Logger: zerolog.Nop()})
	if err := r.Open(); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	day := int64(stream.SessionWindow)
	at := func(seq uint64, sess string, n uint64, time int64) delivery {
		return delivery{seq: seq, time: time, entry: stream.Entry{Op: api.OpPut, Key: sess, Value: []byte{byte(n)}, Session: sess, SessionSeq: n}}
	}
	if err := r.commit(r.db, []delivery{at(1, "old", 5, 1), at(2, "new", 5, 2*day)}); err != nil {
		t.Fatal(err)
	}
	r.sweepSessions(r.db, 2*day+10)
	if got, want := r.sessionsSwept.Load(), uint64(1); got != want {
		t.Fatalf("swept %d sessions, want %d", got, want)
	}
	// "new" is still remembered: its late write is left out. "old" is
	// forgotten, as the rule already treated it: its write 1 is applied.
	if err := r.commit(r.db, []delivery{at(3, "new", 4, 2*day+20), at(4, "old", 1, 2*day+20)}); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Stats().Skipped, uint64(1); got != want {
		t.Fatalf("Skipped=%d, want %d", got, want)
	}
	rec, _, err := r.Get("old")
	if err != nil || rec.Revision != 4 {
		t.Fatalf("Get(old)=%+v, %v; want revision 4", rec, err)
	}
}

// txnDeliveries returns n transactions of k puts of value each, sequences
// from 1: a marker, then its ops.
func txnDeliveries(n, k int, value []byte) []delivery {
	var ds []delivery
	for t := range n {
		ds = append(ds, delivery{seq: uint64(len(ds) + 1), entry: stream.Entry{Op: stream.OpTxn, TxnSize: k}})
		for i := 1; i <= k; i++ {
			ds = append(ds, delivery{seq: uint64(len(ds) + 1), entry: stream.Entry{Op: api.OpPut, Key: fmt.Sprintf("%d/%d", t, i), Value: value, TxnIndex: i, TxnSize: k}})
		}
	}
	return ds
}

func TestTxnBoundary(t *testing.T) {
	ds := append(txnDeliveries(2, 3, nil), delivery{seq: 9, entry: stream.Entry{Op: api.OpPut, Key: "alone"}})
	for _, tt := range []struct{ fit, want int }{
		{9, 9}, {8, 8}, {7, 4}, {5, 4}, {4, 4}, {3, 0}, {1, 0}, {0, 0},
	} {
		if got := txnBoundary(ds, tt.fit); got != tt.want {
			t.Errorf("txnBoundary(fit %d)=%d, want %d", tt.fit, got, tt.want)
		}
	}
}

// TestCommitSplitsAtTxns feeds commit transactions that, together, are far
// larger than a Badger transaction may hold: it splits them, only between
// transactions, and applies them all.
func TestCommitSplitsAtTxns(t *testing.T) {
	env := testenv.Start(t)
	r := New(Config{Dir: t.TempDir(), Stream: env.Stream, Logger: zerolog.Nop()})
	if err := r.Open(); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	value := bytes.Repeat([]byte("v"), DefaultValueThreshold-1024)
	// Each transaction about a third of what one Badger transaction may
	// hold (15% of a memtable), seven of them.
	k := DefaultMemTableSize * 15 / 100 / len(value) / 3
	ds := txnDeliveries(7, k, value)
	if err := r.commit(r.db, ds); err != nil {
		t.Fatalf("commit: %v", err)
	}
	st := r.Stats()
	if st.Splits == 0 || st.Batches < 3 {
		t.Fatalf("Stats=%+v, want the transactions split into several Badger transactions", st)
	}
	if got, want := st.Applied, uint64(len(ds)); got != want {
		t.Fatalf("Applied=%d, want %d", got, want)
	}
}
