package replicator_test

import (
	"github.com/tidemark/tidemark/api"
	"slices"

	"strconv"
	"testing"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
	"github.com/tidemark/tidemark/writer"
)

// TestTxnFeedMarked: the watch window holds each transaction's changes as
// one group marked with its revision and op count (two transactions in one
// commit stay two groups, with single writes around them unmarked), and a
// read of one change that reaches a transaction returns all of it, More on
// every change but its last, however small the apply loop's batches.
func TestTxnFeedMarked(t *testing.T) {
	env := testenv.Start(t)
	w := writer.New(writer.Config{Stream: env.Stream})
	before := publish(t, env, put("a", "1"))
	t1 := writeTxn(t, w, []api.TxnOp{{Op: api.OpPut, Key: "b", Value: []byte("2")}, {Op: api.OpDelete, Key: "a"}, {Op: api.OpPut, Key: "c", Value: []byte("3")}})
	t2 := writeTxn(t, w, []api.TxnOp{{Op: api.OpPut, Key: "d", Value: []byte("4")}, {Op: api.OpPut, Key: "e", Value: []byte("5")}})
	last := publish(t, env, put("f", "6"))
	m1, m2 := api.TxnMark{Revision: t1.Revision, Ops: 3}, api.TxnMark{Revision: t2.Revision, Ops: 2}
	type change struct {
		key  string
		rev  uint64
		txn  api.TxnMark
		more bool
	}
	want := []change{
		{"a", before, api.TxnMark{}, false},
		{"b", t1.Ops[0].Revision, m1, true}, {"a", t1.Ops[1].Revision, m1, true}, {"c", t1.Ops[2].Revision, m1, false},
		{"d", t2.Ops[0].Revision, m2, true}, {"e", t2.Ops[1].Revision, m2, false},
		{"f", last, api.TxnMark{}, false},
	}
	for _, batch := range []int{0, 2} {
		t.Run("batch "+strconv.Itoa(batch), func(t *testing.T) {
			r := open(t, env, t.TempDir(), func(c *replicator.Config) { c.MaxBatch = batch })
			run(t, r)
			waitApplied(t, r, last)
			// One change at a time, as a watcher with a limit of 1 reads.
			var got []change
			var reads []int
			for after := uint64(0); after < last; {
				recs, next, _, err := r.Changes(after, "", 1, nil)
				if err != nil || next <= after {
					t.Fatalf("Changes(%d)=%v next %d %v", after, recs, next, err)
				}
				for _, c := range recs {
					got = append(got, change{c.Key, c.Revision, c.Txn, c.More})
				}
				reads = append(reads, len(recs))
				after = next
			}
			if len(got) != len(want) {
				t.Fatalf("changes %+v, want %+v", got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("change %d %+v, want %+v (all %+v)", i, got[i], want[i], got)
				}
			}
			if wantReads := []int{1, 3, 2, 1}; !slices.Equal(reads, wantReads) {
				t.Fatalf("reads of %v changes, want %v", reads, wantReads)
			}
		})
	}
}
