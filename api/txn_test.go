package api_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tidemark/tidemark/api"
)

func TestDecodeTxnJSON(t *testing.T) {
	ops, err := api.DecodeTxnJSON([]byte(`{"ops":[{"op":"put","key":"a","value":"aGk=","if_revision":3},{"op":"put","key":"b","if_absent":true},{"op":"delete","key":"c"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []api.TxnOp{
		{Op: api.OpPut, Key: "a", Value: []byte("hi"), IfRevision: 3},
		{Op: api.OpPut, Key: "b", Value: []byte{}, IfAbsent: true},
		{Op: api.OpDelete, Key: "c"},
	}
	if len(ops) != len(want) {
		t.Fatalf("%d ops, want %d", len(ops), len(want))
	}
	for i := range want {
		if g, w := ops[i], want[i]; g.Op != w.Op || g.Key != w.Key || !bytes.Equal(g.Value, w.Value) || g.IfRevision != w.IfRevision || g.IfAbsent != w.IfAbsent {
			t.Fatalf("op %d=%+v, want %+v", i, g, w)
		}
	}
	again, err := api.DecodeTxnJSON(api.EncodeTxnJSON(ops))
	if err != nil || len(again) != len(ops) || !bytes.Equal(again[0].Value, ops[0].Value) {
		t.Fatalf("round trip: %+v, %v", again, err)
	}
}

func TestDecodeTxnJSONRefuses(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		op         int // -1: none named
	}{
		{"not json", `{`, -1},
		{"no ops", `{"ops":[]}`, -1},
		{"unknown field", `{"ops":[{"op":"put","key":"a"}],"x":1}`, -1},
		{"unknown op field", `{"ops":[{"op":"put","key":"a","ttl":1}]}`, -1},
		{"trailing data", `{"ops":[{"op":"put","key":"a"}]} {}`, -1},
		{"unknown op", `{"ops":[{"op":"put","key":"a"},{"op":"del","key":"b"}]}`, 1},
		{"delete with value", `{"ops":[{"op":"delete","key":"a","value":""}]}`, 0},
		{"delete if absent", `{"ops":[{"op":"delete","key":"a","if_absent":true}]}`, 0},
		{"bad key", `{"ops":[{"op":"put","key":""}]}`, 0},
		{"two conditions", `{"ops":[{"op":"put","key":"a","if_revision":1,"if_absent":true}]}`, 0},
		{"key twice", `{"ops":[{"op":"put","key":"a"},{"op":"delete","key":"a"}]}`, 1},
		{"bad base64", `{"ops":[{"op":"put","key":"a","value":"!!"}]}`, -1},
		{"negative revision", `{"ops":[{"op":"put","key":"a","if_revision":-1}]}`, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := api.DecodeTxnJSON([]byte(tt.body))
			if api.Code(err) == api.CodeInternal || err == nil {
				t.Fatalf("DecodeTxnJSON: %v, want a refusal", err)
			}
			op, ok := api.FailedOp(err)
			if (tt.op >= 0) != ok || (ok && op != tt.op) {
				t.Fatalf("FailedOp=%d,%v, want %d", op, ok, tt.op)
			}
		})
	}
}

// An op's error is named in the JSON error body.
func TestErrorBodyNamesOp(t *testing.T) {
	err := &api.OpError{Op: 2, Err: api.Errorf(api.ErrRevisionMismatch, "key %q is not at revision 3", "a")}
	body := api.ErrorBodyOf(err)
	if body.Error.Code != api.CodeRevisionMismatch || body.Error.Op == nil || *body.Error.Op != 2 {
		t.Fatalf("ErrorBodyOf=%+v", body.Error)
	}
	if !errors.Is(err, api.ErrRevisionMismatch) {
		t.Fatal("an OpError does not match its sentinel")
	}
	if got := api.ErrorBodyOf(api.ErrNotFound).Error.Op; got != nil {
		t.Fatalf("an error of no op names op %d", *got)
	}
}

func FuzzDecodeTxnJSON(f *testing.F) {
	f.Add([]byte(`{"ops":[{"op":"put","key":"a","value":"aGk=","if_revision":3},{"op":"delete","key":"c"}]}`))
	f.Add([]byte(`{"ops":[{"op":"put","key":"b","if_absent":true}]}`))
	f.Add([]byte(`{"ops":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ops, err := api.DecodeTxnJSON(data)
		if err != nil {
			if api.Code(err) == api.CodeInternal {
				t.Fatalf("refusal without a code: %v", err)
			}
			return
		}
		if err := (api.TxnRequest{Ops: ops}).Validate(); err != nil {
			t.Fatalf("decoded an invalid transaction: %v", err)
		}
		again, err := api.DecodeTxnJSON(api.EncodeTxnJSON(ops))
		if err != nil || len(again) != len(ops) {
			t.Fatalf("re-encode: %d ops, %v", len(again), err)
		}
		for i := range ops {
			if a, b := ops[i], again[i]; a.Op != b.Op || a.Key != b.Key || !bytes.Equal(a.Value, b.Value) || a.IfRevision != b.IfRevision || a.IfAbsent != b.IfAbsent {
				t.Fatalf("op %d: %+v re-encodes as %+v", i, a, b)
			}
		}
	})
}
