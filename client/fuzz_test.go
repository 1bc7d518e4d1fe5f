package client

import (
	"github.com/tidemark/tidemark/api"

	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nats-io/nats.go"
)

// FuzzRequestToken feeds Middleware's token reading arbitrary headers and
// cookies: it never panics, and whatever it accepts is a valid token that
// the response carries.
func FuzzRequestToken(f *testing.F) {
	f.Add("1.abc123.5", "1.abc123.7")
	f.Add("", "1.abc123.7")
	f.Add("1.abc123.5", "1.def456.9")
	f.Add("garbage", "%%%")
	f.Add("1..5", "1.abc123.18446744073709551615")
	f.Fuzz(func(t *testing.T, header, cookie string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set(api.HeaderToken, header)
		r.Header.Set("Cookie", CookieToken+"="+cookie)
		var in api.Token
		h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			in = TokenFrom(r.Context())
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if in.IsZero() {
			return
		}
		if _, err := api.ParseToken(in.String()); err != nil {
			t.Fatalf("accepted token %v does not parse: %v", in, err)
		}
		if hdr, err := api.ParseToken(header); err == nil && !hdr.IsZero() && in.Stream == hdr.Stream && in.Seq < hdr.Seq {
			t.Fatalf("token %v is behind the header's %v", in, hdr)
		}
		if got := rec.Header().Get(api.HeaderToken); got != in.String() {
			t.Fatalf("response token %q, want %q", got, in)
		}
	})
}

// FuzzMsgToken feeds the NATS token reading arbitrary header values.
func FuzzMsgToken(f *testing.F) {
	f.Add("1.abc123.5")
	f.Add("")
	f.Add("2.abc123.5")
	f.Add("1.ABC.5")
	f.Fuzz(func(t *testing.T, v string) {
		m := &nats.Msg{Header: nats.Header{api.HeaderToken: {v}}}
		tok := TokenFrom(ExtractNATS(t.Context(), m))
		want, err := api.ParseToken(v)
		if err != nil {
			want = api.Token{}
		}
		if tok != want {
			t.Fatalf("ExtractNATS(%q)=%v, want %v", v, tok, want)
		}
	})
}

// FuzzHTTPReplies feeds the HTTP transport's reply decoders arbitrary
// statuses, headers and bodies: they never panic, and a success carries
// what a success must.
func FuzzHTTPReplies(f *testing.F) {
	f.Add(200, "1.abc123.5", "5", "r1", "5", `{"key":"k","revision":5,"token":"1.abc123.5"}`)
	f.Add(200, "", "", "", "", `{"items":[{"key":"k","value":"dg==","revision":3}],"next":"k","token":"1.abc123.5"}`)
	f.Add(404, "1.abc123.5", "4", "r2", "x", `{"error":{"code":"not_found","message":"key \"k\" not found"}}`)
	f.Add(504, "", "", "", "", `{"error":{"code":"token_wait_timeout","message":"waited"}}`)
	f.Add(502, "", "", "", "", "<html>bad gateway</html>")
	f.Add(200, "1.abc123.5", "-1", "", "", `{"revision":0}`)
	f.Add(200, "1.abc123.5.AAAAAAAAAAAAAAAAAAAAAA", "5", "r1", "5", `{"key":"k","revision":5,"token":"1.abc123.5.AAAAAAAAAAAAAAAAAAAAAA"}`)
	f.Fuzz(func(t *testing.T, status int, token, revision, replica, applied, body string) {
		h := http.Header{}
		for k, v := range map[string]string{api.HeaderToken: token, api.HeaderRevision: revision, api.HeaderReplica: replica, api.HeaderApplied: applied} {
			if v != "" {
				h.Set(k, v)
			}
		}
		parse := NewHTTP("http://localhost").parseToken
		w, err := decodeHTTPWrite(status, h, []byte(body), parse)
		if err == nil && (w.Revision == 0 || status != http.StatusOK) {
			t.Fatalf("write reply %d %q decoded as a success without a revision: %+v", status, body, w)
		}
		g, err := decodeHTTPGet("k", status, h, []byte(body), parse)
		if err == nil && (g.Record.Revision == 0 || g.Record.Value == nil || status != http.StatusOK) {
			t.Fatalf("get reply %d decoded as a success without a revision or value: %+v", status, g)
		}
		s, err := decodeHTTPScan(status, h, []byte(body), parse)
		if err == nil && (s.Items == nil || status != http.StatusOK) {
			t.Fatalf("scan reply %d decoded as a success without items: %+v", status, s)
		}
		if err != nil && api.Code(err) == "" {
			t.Fatalf("error without a code: %v", err)
		}
	})
}

// FuzzDecodeHTTPTxn feeds the reading of a gateway's transaction reply
// arbitrary statuses and bodies: it never panics, a success has a revision
// and its ops, and a failure has a code.
func FuzzDecodeHTTPTxn(f *testing.F) {
	f.Add(200, `{"revision":5,"token":"1.abc123.5","ops":[{"key":"a","revision":4},{"key":"b","revision":5}]}`)
	f.Add(412, `{"error":{"code":"revision_mismatch","message":"m","op":1}}`)
	f.Add(412, `{"error":{"code":"revision_mismatch","message":"m","op":-1}}`)
	f.Add(200, `{"revision":0}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		res, err := decodeHTTPTxn(status, http.Header{}, []byte(body), api.ParseToken)
		if err != nil {
			if op, ok := api.FailedOp(err); ok && op < 0 {
				t.Fatalf("negative op %d", op)
			}
			return
		}
		if status != 200 || res.Revision == 0 || len(res.Ops) == 0 {
			t.Fatalf("status %d decoded as success %+v", status, res)
		}
	})
}
