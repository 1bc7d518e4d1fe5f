package checker_test

import (
	"testing"

	"github.com/tidemark/tidemark/chaos/checker"
	"github.com/tidemark/tidemark/chaos/history"
)

// A world with a transaction: b=b0 at 1, then a transaction (marker at 2)
// of a=a1 at 3 and b=b1 at 4.
func txnStream() []history.Message {
	return []history.Message{
		{Seq: 1, Kind: history.Put, Key: "b", Value: []byte("b0"), MsgID: "w0"},
		{Seq: 2, Kind: history.Marker, MsgID: "txn:t1:0", TxnSize: 2},
		{Seq: 3, Kind: history.Put, Key: "a", Value: []byte("a1"), MsgID: "txn:t1:1", TxnIndex: 1, TxnSize: 2},
		{Seq: 4, Kind: history.Put, Key: "b", Value: []byte("b1"), MsgID: "txn:t1:2", TxnIndex: 2, TxnSize: 2},
	}
}

func txnHistory(scan history.Op) *history.History {
	s := history.NewSnapshots(txnStream())
	rep := history.Replica{ID: "r1", Applied: 4}
	for _, rec := range s.FoldTo(4).Keys {
		rep.Records = append(rep.Records, rec)
	}
	scan.Session, scan.Index, scan.Kind, scan.Outcome, scan.Limit, scan.ServedBy = 1, 0, history.Scan, history.OK, 10, "r1"
	return &history.History{
		Version: history.Version,
		Ops: []history.Op{
			put(0, 0, "b", "b0", "w0", 1, 0),
			{Session: 0, Index: 1, Kind: history.Txn, WriteID: "t1", Outcome: history.OK, Revision: 4, TokenIn: 1, TokenOut: 4,
				TxnOps: []history.TxnOp{{Kind: history.Put, Key: "a", Value: []byte("a1")}, {Kind: history.Put, Key: "b", Value: []byte("b1")}}},
			scan,
		},
		Final: &history.Final{Stream: txnStream(), Replicas: []history.Replica{rep}},
	}
}

func TestCheckTxn(t *testing.T) {
	whole := history.Op{Applied: 4, TokenOut: 4, Items: []history.Item{{Key: "a", Value: []byte("a1"), Revision: 3}, {Key: "b", Value: []byte("b1"), Revision: 4}}}
	before := history.Op{Applied: 1, TokenOut: 1, Items: []history.Item{{Key: "b", Value: []byte("b0"), Revision: 1}}}
	for _, op := range []history.Op{whole, before} {
		if r := checker.Check(txnHistory(op)); !r.OK() {
			t.Fatalf("violations in a good history:\n%s", r.Summary())
		}
	}
	part := []history.Item{{Key: "a", Value: []byte("a1"), Revision: 3}, {Key: "b", Value: []byte("b0"), Revision: 1}}
	for _, tt := range []struct {
		name string
		op   history.Op
	}{
		{"served inside", history.Op{Applied: 3, TokenOut: 3, Items: part}},
		{"part of it, position unknown", history.Op{Items: part}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := checker.Check(txnHistory(tt.op))
			if r.Counts[checker.TxnPartial] == 0 {
				t.Fatalf("no %s violation:\n%s", checker.TxnPartial, r.Summary())
			}
		})
	}
	t.Run("lost", func(t *testing.T) {
		h := txnHistory(before)
		h.Final.Stream = h.Final.Stream[:1]
		h.Final.Replicas[0] = history.Replica{ID: "r1", Applied: 1, Records: []history.Record{{Key: "b", Value: []byte("b0"), Revision: 1}}}
		if r := checker.Check(h); r.Counts[checker.LostWrite] == 0 {
			t.Fatalf("no %s violation:\n%s", checker.LostWrite, r.Summary())
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		h := txnHistory(whole)
		h.Ops[1].TxnOps[1].Value = []byte("other")
		if r := checker.Check(h); r.Counts[checker.CorruptWrite] == 0 {
			t.Fatalf("no %s violation:\n%s", checker.CorruptWrite, r.Summary())
		}
	})
}
