package wire_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/wire"
)

func TestTxnRoundTrip(t *testing.T) {
	req := api.TxnRequest{WriteID: "w1", Session: "s", SessionSeq: 2, Ops: []api.TxnOp{
		{Op: api.OpPut, Key: "a", Value: []byte("1"), IfRevision: 4},
		{Op: api.OpDelete, Key: "b"},
	}}
	m := wire.TxnMsg("subj", req)
	got, err := wire.DecodeTxnRequest(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if got.WriteID != req.WriteID || got.Session != req.Session || got.SessionSeq != req.SessionSeq || len(got.Ops) != 2 ||
		!bytes.Equal(got.Ops[0].Value, []byte("1")) || got.Ops[0].IfRevision != 4 || got.Ops[1].Op != api.OpDelete {
		t.Fatalf("round trip %+v -> %+v", req, got)
	}

	res := api.TxnResult{Revision: 9, Ops: []api.WriteResult{{Key: "a", Revision: 8}, {Key: "b", Revision: 9}}}
	h, body := wire.EncodeTxnReply(res, nil)
	back, err := wire.DecodeTxnReply(&nats.Msg{Header: h, Data: body})
	if err != nil || back.Revision != 9 || len(back.Ops) != 2 || back.Ops[1].Revision != 9 || back.Ops[0].Key != "a" {
		t.Fatalf("reply round trip: %+v, %v", back, err)
	}

	lost := &api.OpError{Op: 1, Err: api.Errorf(api.ErrRevisionMismatch, "key %q exists", "b")}
	h, body = wire.EncodeTxnReply(api.TxnResult{}, lost)
	_, err = wire.DecodeTxnReply(&nats.Msg{Header: h, Data: body})
	if op, ok := api.FailedOp(err); !errors.Is(err, api.ErrRevisionMismatch) || !ok || op != 1 {
		t.Fatalf("error round trip: %v (op %d, %v)", err, op, ok)
	}
	if got, want := err.Error(), lost.Error(); got != want {
		t.Fatalf("error message %q, want %q", got, want)
	}
}

func TestDecodeTxnRequestRefuses(t *testing.T) {
	ops := api.EncodeTxnJSON([]api.TxnOp{{Op: api.OpPut, Key: "a"}})
	for _, tt := range []struct {
		name string
		hdr  map[string]string
		data []byte
		err  error
	}{
		{"bad token", map[string]string{api.HeaderToken: "x"}, ops, api.ErrInvalidToken},
		{"if-match", map[string]string{api.HeaderIfMatch: "3"}, ops, api.ErrInvalidRequest},
		{"if-none-match", map[string]string{api.HeaderIfNoneMatch: "*"}, ops, api.ErrInvalidRequest},
		{"half a session", map[string]string{api.HeaderSession: "s"}, ops, api.ErrInvalidRequest},
		{"no body", nil, nil, api.ErrInvalidRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := nats.Header{}
			for k, v := range tt.hdr {
				h.Set(k, v)
			}
			if _, err := wire.DecodeTxnRequest(h, tt.data); !errors.Is(err, tt.err) {
				t.Fatalf("DecodeTxnRequest: %v, want %v", err, tt.err)
			}
		})
	}
}

func FuzzDecodeTxnRequest(f *testing.F) {
	f.Add("", "w", "s", "1", []byte(`{"ops":[{"op":"put","key":"a","value":"aGk="}]}`))
	f.Add("", "", "", "", []byte(`{"ops":[{"op":"delete","key":"a","if_revision":2}]}`))
	f.Fuzz(func(t *testing.T, tok, id, session, seq string, data []byte) {
		h := nats.Header{}
		for k, v := range map[string]string{api.HeaderToken: tok, api.HeaderWriteID: id, api.HeaderSession: session, api.HeaderSessionSeq: seq} {
			if v != "" {
				h.Set(k, v)
			}
		}
		req, err := wire.DecodeTxnRequest(h, data)
		if err != nil {
			if api.Code(err) == api.CodeInternal {
				t.Fatalf("refusal without a code: %v", err)
			}
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("decoded an invalid transaction: %v", err)
		}
		m := wire.TxnMsg("s", req)
		again, err := wire.DecodeTxnRequest(m.Header, m.Data)
		if err != nil || again.WriteID != req.WriteID || again.Session != req.Session || len(again.Ops) != len(req.Ops) {
			t.Fatalf("re-encode: %+v, %v", again, err)
		}
	})
}
