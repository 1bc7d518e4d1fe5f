package stream_test

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/stream"
)

// A transaction's marker and ops decode to their places in it.
func TestTxnRoundTrip(t *testing.T) {
	mk := stream.TxnMarkerMsg("p", "id.with *dots>", 2, "sum", "s1", 7)
	e, err := stream.DecodeMessage("p", mk.Subject, mk.Header, mk.Data)
	if err != nil {
		t.Fatal(err)
	}
	if e.Op != stream.OpTxn || e.TxnIndex != 0 || e.TxnSize != 2 || e.Session != "s1" || e.SessionSeq != 7 || e.EndsTxn() {
		t.Fatalf("marker decoded as %+v", e)
	}
	for i := 1; i <= 2; i++ {
		m := stream.Message("p", api.WriteRequest{Op: api.OpPut, Key: "k", Value: []byte("v")})
		stream.SetTxn(m, i, 2)
		e, err := stream.DecodeMessage("p", m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := e.EndsTxn(), i == 2; e.TxnIndex != i || e.TxnSize != 2 || got != want {
			t.Fatalf("op %d decoded as %+v", i, e)
		}
	}
}

// Transaction headers a writer would not produce are refused.
func TestDecodeTxnRefuses(t *testing.T) {
	key := stream.KeySubject("p", "k")
	txn := stream.TxnSubject("p", "id")
	for _, tt := range []struct {
		name, subject, op string
		txn               []string
		session           string
	}{
		{"marker without header", txn, "txn", nil, ""},
		{"marker not first", txn, "txn", []string{"1/2"}, ""},
		{"op at 0", key, "put", []string{"0/2"}, ""},
		{"index past size", key, "put", []string{"3/2"}, ""},
		{"size 0", key, "put", []string{"0/0"}, ""},
		{"too large", key, "put", []string{"1/1001"}, ""},
		{"leading zero", key, "put", []string{"01/2"}, ""},
		{"sign", key, "put", []string{"+1/2"}, ""},
		{"negative", key, "put", []string{"-1/2"}, ""},
		{"no slash", key, "put", []string{"1"}, ""},
		{"spaces", key, "put", []string{" 1/2"}, ""},
		{"two headers", key, "put", []string{"1/2", "1/2"}, ""},
		{"on a session marker", stream.SessionSubject("p", "s"), "session", []string{"1/2"}, "s"},
		{"op with a session", key, "put", []string{"1/2"}, "s"},
		{"txn op on a key", key, "txn", []string{"0/2"}, ""},
		{"bad id encoding", "p.txn.a+b", "txn", []string{"0/1"}, ""},
		{"empty id", "p.txn.", "txn", []string{"0/1"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := nats.Header{}
			h.Set(api.HeaderOp, tt.op)
			for _, v := range tt.txn {
				h.Add(stream.HeaderTxn, v)
			}
			api.SetSession(h, tt.session, 1)
			if e, err := stream.DecodeMessage("p", tt.subject, h, nil); err == nil {
				t.Fatalf("decoded as %+v", e)
			}
		})
	}
}

func FuzzDecodeTxn(f *testing.F) {
	f.Add(stream.TxnSubject("p", "id"), "txn", "0/3", "")
	f.Add(stream.KeySubject("p", "k"), "put", "2/3", "")
	f.Add(stream.KeySubject("p", "k"), "del", "3/3", "")
	f.Add(stream.TxnSubject("p", "id"), "txn", "0/1", "sess")
	f.Fuzz(func(t *testing.T, subject, op, txn, session string) {
		h := nats.Header{}
		h.Set(api.HeaderOp, op)
		h.Set(stream.HeaderTxn, txn)
		api.SetSession(h, session, 1)
		e, err := stream.DecodeMessage("p", subject, h, nil)
		if err != nil {
			return
		}
		if e.TxnSize < 1 || e.TxnSize > stream.MaxAtomicBatch || e.TxnIndex < 0 || e.TxnIndex > e.TxnSize {
			t.Fatalf("decoded %q as %d/%d", txn, e.TxnIndex, e.TxnSize)
		}
		if (e.TxnIndex == 0) != (e.Op == stream.OpTxn) {
			t.Fatalf("op %s at index %d", e.Op, e.TxnIndex)
		}
		m := nats.NewMsg(subject)
		stream.SetTxn(m, e.TxnIndex, e.TxnSize)
		if got := m.Header.Get(stream.HeaderTxn); got != txn {
			t.Fatalf("%q re-encodes as %q", txn, got)
		}
	})
}
