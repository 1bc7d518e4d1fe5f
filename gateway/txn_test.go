package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"encoding/json"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/stacktest"
)

// POST /v1/txn: all or nothing, one revision and token, the failing op
// named, and the session's token read back from any replica.
func TestTxn(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	a := put(t, s, "a", "old")
	r := do(t, "POST", s.URL+"/v1/txn", `{"ops":[
		{"op":"put","key":"a","value":"bmV3","if_revision":`+jsonNum(a.Revision)+`},
		{"op":"put","key":"b","value":"Yg==","if_absent":true},
		{"op":"delete","key":"c"}]}`)
	if r.Status != 200 {
		t.Fatalf("POST /v1/txn: status=%d body=%s", r.Status, r.Body)
	}
	var res api.TxnResultJSON
	if err := json.Unmarshal([]byte(r.Body), &res); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Header.Get(api.HeaderToken), res.Token; got != want || len(res.Ops) != 3 || res.Ops[2].Revision != res.Revision {
		t.Fatalf("token header %q, body %+v", got, res)
	}
	for _, id := range []string{"r1", "r2"} {
		for key, want := range map[string]string{"a": "new", "b": "b"} {
			g := do(t, "GET", s.URL+"/v1/kv/"+key, "", api.HeaderToken, res.Token, api.HeaderReplica, id)
			if g.Status != 200 || g.Body != want {
				t.Fatalf("%s: GET %s=%d %q, want %q", id, key, g.Status, g.Body, want)
			}
		}
	}

	lost := do(t, "POST", s.URL+"/v1/txn", `{"ops":[{"op":"put","key":"x","value":""},{"op":"put","key":"a","value":"","if_revision":`+jsonNum(a.Revision)+`}]}`,
		api.HeaderToken, res.Token)
	var e api.ErrorJSON
	if err := json.Unmarshal([]byte(lost.Body), &e); err != nil {
		t.Fatal(err)
	}
	if lost.Status != 412 || e.Error.Code != api.CodeRevisionMismatch || e.Error.Op == nil || *e.Error.Op != 1 {
		t.Fatalf("lost condition: status=%d body=%s", lost.Status, lost.Body)
	}
	if g := do(t, "GET", s.URL+"/v1/kv/x", "", api.HeaderToken, res.Token); g.Status != 404 {
		t.Fatalf("GET x after a refused transaction: %d %q", g.Status, g.Body)
	}

	// A retry with the same Idempotency-Key is stored once.
	var first api.TxnResultJSON
	for i := range 2 {
		r := do(t, "POST", s.URL+"/v1/txn", `{"ops":[{"op":"put","key":"y","value":""}]}`, "Idempotency-Key", "order-1")
		var got api.TxnResultJSON
		if err := json.Unmarshal([]byte(r.Body), &got); err != nil || r.Status != 200 {
			t.Fatalf("attempt %d: status=%d body=%s", i, r.Status, r.Body)
		}
		if i == 1 && got.Revision != first.Revision {
			t.Fatalf("retry Revision=%d, want %d", got.Revision, first.Revision)
		}
		first = got
	}

	for _, tt := range []struct {
		name, method, body string
		status             int
		hdr                []string
	}{
		{"get", "GET", "", 405, nil},
		{"not json", "POST", "{", 400, nil},
		{"no ops", "POST", `{"ops":[]}`, 400, nil},
		{"if-match", "POST", `{"ops":[{"op":"put","key":"a"}]}`, 400, []string{"If-Match", `"1"`}},
		{"too large", "POST", `{"ops":[{"op":"put","key":"a","value":"` + strings.Repeat("A", 5<<20) + `"}]}`, 413, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if r := do(t, tt.method, s.URL+"/v1/txn", tt.body, tt.hdr...); r.Status != tt.status {
				t.Fatalf("status=%d body=%.200s, want %d", r.Status, r.Body, tt.status)
			}
		})
	}
}

func jsonNum(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
