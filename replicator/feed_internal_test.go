package replicator

import (
	"github.com/tidemark/tidemark/api"
	"slices"

	"errors"
	"strconv"
	"testing"
)

func put(key string, rev uint64) api.Record {
	return api.Record{Key: key, Revision: rev, Value: []byte("v")}
}

// ents is recs as the changes of one commit, none a transaction's.
func ents(recs ...api.Record) []feedEntry {
	out := make([]feedEntry, len(recs))
	for i, rec := range recs {
		out[i].rec = rec
	}
	return out
}

func revs(recs []api.Change) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.Revision)
	}
	return out
}

// TestFeedWindow: the feed holds the most recent changes up to its count,
// serves every change after a revision inside it, by prefix, in order, and
// refuses a revision before its start.
func TestFeedWindow(t *testing.T) {
	f := newFeed(5, 1<<20)
	f.reset(10)
	for rev := uint64(11); rev <= 20; rev++ {
		key := "a/" + strconv.FormatUint(rev, 10)
		if rev%3 == 0 {
			key = "b/" + strconv.FormatUint(rev, 10)
		}
		f.append(ents(put(key, rev)), rev)
	}
	f.append(nil, 22) // a commit of no change (a skipped write) moves the position
	if floor, pos := f.window(); floor != 15 || pos != 22 {
		t.Fatalf("window()=%d,%d, want 15,22", floor, pos)
	}
	got, next, _, err := f.changes(15, "a/", 100, nil)
	if err != nil || !slices.Equal(revs(got), []uint64{16, 17, 19, 20}) || next != 22 {
		t.Fatalf("changes(15, a/)=%v next %d %v, want 16 17 19 20 next 22", revs(got), next, err)
	}
	got, next, _, err = f.changes(16, "", 2, nil)
	if err != nil || !slices.Equal(revs(got), []uint64{17, 18}) || next != 18 {
		t.Fatalf("changes(16, \"\", 2)=%v next %d %v, want 17 18 next 18", revs(got), next, err)
	}
	if _, _, _, err := f.changes(14, "", 100, nil); !errors.Is(err, api.ErrResumePointCompacted) {
		t.Fatalf("changes(14)=%v, want %v", err, api.ErrResumePointCompacted)
	}
	// A watcher ahead of the feed stays where it is.
	if got, next, _, err := f.changes(30, "", 100, nil); err != nil || len(got) != 0 || next != 30 {
		t.Fatalf("changes(30)=%v next %d %v, want none next 30", revs(got), next, err)
	}
}

// TestFeedBytes: the feed's bytes bound evicts the oldest changes too.
func TestFeedBytes(t *testing.T) {
	f := newFeed(1000, 3*(feedEntryOverhead+3+1))
	for rev := uint64(1); rev <= 5; rev++ {
		f.append(ents(put("k/"+strconv.FormatUint(rev, 10), rev)), rev)
	}
	if floor, _ := f.window(); floor != 2 {
		t.Fatalf("floor %d, want 2 (3 changes fit)", floor)
	}
	got, _, _, err := f.changes(2, "", 100, nil)
	if err != nil || !slices.Equal(revs(got), []uint64{3, 4, 5}) {
		t.Fatalf("changes(2)=%v %v, want 3 4 5", revs(got), err)
	}
}

// TestFeedWakeAndReset: every append wakes the watchers with one closed
// channel; a reset (the state replaced) empties the feed, so that only
// changes after the new state are served.
func TestFeedWakeAndReset(t *testing.T) {
	f := newFeed(0, 0)
	_, _, wake, _ := f.changes(0, "", 10, nil)
	f.append(ents(put("a", 1), put("b", 2)), 2)
	select {
	case <-wake:
	default:
		t.Fatal("append did not wake the watcher")
	}
	_, _, wake, _ = f.changes(2, "", 10, nil)
	f.reset(100)
	select {
	case <-wake:
	default:
		t.Fatal("reset did not wake the watcher")
	}
	if _, _, _, err := f.changes(2, "", 10, nil); !errors.Is(err, api.ErrResumePointCompacted) {
		t.Fatalf("changes(2) after a reset to 100: %v, want %v", err, api.ErrResumePointCompacted)
	}
	if got, next, _, err := f.changes(100, "", 10, nil); err != nil || len(got) != 0 || next != 100 {
		t.Fatalf("changes(100)=%v %d %v", got, next, err)
	}
}

// TestFeedCompacts: a long run of appends keeps the held changes in a
// slice of about the window's size.
func TestFeedCompacts(t *testing.T) {
	f := newFeed(10, 1<<30)
	for rev := uint64(1); rev <= 100000; rev++ {
		f.append(ents(put("k", rev)), rev)
	}
	if n := len(f.ents); n > 2100 {
		t.Fatalf("the feed's slice holds %d entries for a window of 10", n)
	}
	got, _, _, err := f.changes(99990, "", 100, nil)
	if err != nil || len(got) != 10 || got[9].Revision != 100000 {
		t.Fatalf("changes(99990)=%v %v", revs(got), err)
	}
}

// BenchmarkFeedAppend is the apply loop's cost of the feed per commit of one
// change; watchers add nothing to it (they wait on the one channel).
func BenchmarkFeedAppend(b *testing.B) {
	f := newFeed(0, 0)
	recs := ents(put("k/1", 0))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		recs[0].rec.Revision = uint64(i + 1)
		f.append(recs, uint64(i+1))
	}
}

// TestFeedKeepsRevisionsWhole: several changes of one revision (a message's
// write and the expiries it brings) come in one call even past the limit,
// so that a watcher's position never names a revision half sent.
func TestFeedKeepsRevisionsWhole(t *testing.T) {
	f := newFeed(0, 0)
	f.append(ents(put("a", 1)), 1)
	f.append(ents(api.Record{Key: "b", Revision: 2, Deleted: true}, api.Record{Key: "c", Revision: 2, Deleted: true}, put("d", 2)), 2)
	f.append(ents(put("e", 3)), 3)
	got, next, _, err := f.changes(0, "", 2, nil)
	if err != nil || !slices.Equal(revs(got), []uint64{1, 2, 2, 2}) || next != 2 {
		t.Fatalf("changes(0, limit 2)=%v next %d %v, want 1 2 2 2 next 2", revs(got), next, err)
	}
	got, next, _, err = f.changes(next, "", 2, nil)
	if err != nil || !slices.Equal(revs(got), []uint64{3}) || next != 3 {
		t.Fatalf("changes(2)=%v next %d %v, want 3 next 3", revs(got), next, err)
	}
}

// TestFeedKeepsTransactionsWhole: the changes of one transaction (with an
// expiry one of its ops brought) come in one read even past the limit,
// each op marked with the transaction's revision and op count, More on all
// but the last of them; a prefix that holds only some of its ops gets those
// alone, still marked; a read that starts inside it gets the rest.
func TestFeedKeepsTransactionsWhole(t *testing.T) {
	f := newFeed(0, 0)
	f.append(ents(put("a/0", 1)), 1)
	// Revision 2 is the transaction's marker; its ops are 3, 4 and 5, and
	// op 4 brings the expiry of b/x.
	txn := ents(put("a/1", 3), api.Record{Key: "b/x", Revision: 4, Deleted: true}, api.Record{Key: "a/2", Revision: 4, Deleted: true}, put("b/3", 5))
	txn[0].txn.Ops, txn[2].txn.Ops, txn[3].txn.Ops = 1, 1, 1
	markTxn(txn, 5)
	f.append(txn, 5)
	f.append(ents(put("a/6", 6)), 6)
	mark := api.TxnMark{Revision: 5, Ops: 3}
	type ev struct {
		rev  uint64
		txn  api.TxnMark
		more bool
	}
	evs := func(got []api.Change) []ev {
		var out []ev
		for _, c := range got {
			out = append(out, ev{c.Revision, c.Txn, c.More})
		}
		return out
	}
	for _, tt := range []struct {
		after  uint64
		prefix string
		limit  int
		want   []ev
		next   uint64
	}{
		{0, "", 2, []ev{{1, api.TxnMark{}, false}, {3, mark, true}, {4, api.TxnMark{}, true}, {4, mark, true}, {5, mark, false}}, 5},
		{1, "", 1, []ev{{3, mark, true}, {4, api.TxnMark{}, true}, {4, mark, true}, {5, mark, false}}, 5},
		{0, "a/", 2, []ev{{1, api.TxnMark{}, false}, {3, mark, true}, {4, mark, false}}, 5},
		{0, "b/", 1, []ev{{4, api.TxnMark{}, true}, {5, mark, false}}, 6},
		{3, "", 1, []ev{{4, api.TxnMark{}, true}, {4, mark, true}, {5, mark, false}}, 5},
		{5, "", 1, []ev{{6, api.TxnMark{}, false}}, 6},
		{0, "", 100, []ev{{1, api.TxnMark{}, false}, {3, mark, true}, {4, api.TxnMark{}, true}, {4, mark, true}, {5, mark, false}, {6, api.TxnMark{}, false}}, 6},
	} {
		got, next, _, err := f.changes(tt.after, tt.prefix, tt.limit, nil)
		if err != nil || !slices.Equal(evs(got), tt.want) || next != tt.next {
			t.Errorf("changes(%d, %q, %d)=%v next %d %v, want %v next %d", tt.after, tt.prefix, tt.limit, evs(got), next, err, tt.want, tt.next)
		}
	}
}
