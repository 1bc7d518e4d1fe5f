package wire_test

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestWriteRequestRoundTrip(t *testing.T) {
	for _, w := range []api.WriteRequest{
		{Op: api.OpPut, Key: "a/b c%", Value: []byte("v"), Token: api.NewToken("ab", 7), WriteID: "w1"},
		{Op: api.OpPut, Key: "k", Value: []byte{}, IfRevision: 3},
		{Op: api.OpPut, Key: "k", Value: []byte("x"), IfAbsent: true},
		{Op: api.OpDelete, Key: "☕"},
		{Op: api.OpPut, Key: "s", Value: []byte("v"), Session: "sess-1", SessionSeq: 4},
	} {
		m := wire.WriteMsg("subj", w)
		got, err := wire.DecodeWriteRequest(w.Op, m.Header, m.Data)
		if err != nil {
			t.Fatalf("DecodeWriteRequest(%+v): %v", w, err)
		}
		if got.Key != w.Key || got.Token != w.Token || got.WriteID != w.WriteID || got.IfRevision != w.IfRevision ||
			got.IfAbsent != w.IfAbsent || got.Session != w.Session || got.SessionSeq != w.SessionSeq || !bytes.Equal(got.Value, w.Value) {
			t.Fatalf("round trip %+v -> %+v", w, got)
		}
	}
}

func TestDecodeWriteRequestRejects(t *testing.T) {
	for _, tt := range []struct {
		name string
		op   api.Op
		hdr  map[string]string
		data []byte
		err  error
	}{
		{"no key", api.OpPut, nil, nil, api.ErrInvalidKey},
		{"bad escape", api.OpPut, map[string]string{api.HeaderKey: "%zz"}, nil, api.ErrInvalidKey},
		{"bad token", api.OpPut, map[string]string{api.HeaderKey: "k", api.HeaderToken: "x"}, nil, api.ErrInvalidToken},
		{"bad if-match", api.OpPut, map[string]string{api.HeaderKey: "k", api.HeaderIfMatch: "abc"}, nil, api.ErrInvalidRequest},
		{"zero if-match", api.OpPut, map[string]string{api.HeaderKey: "k", api.HeaderIfMatch: "0"}, nil, api.ErrInvalidRequest},
		{"if-none-match etag", api.OpPut, map[string]string{api.HeaderKey: "k", api.HeaderIfNoneMatch: `"3"`}, nil, api.ErrInvalidRequest},
		{"both conditions", api.OpPut, map[string]string{api.HeaderKey: "k", api.HeaderIfMatch: "1", api.HeaderIfNoneMatch: "*"}, nil, api.ErrInvalidRequest},
		{"long write id", api.OpPut, map[string]string{api.HeaderKey: "k", api.HeaderWriteID: strings.Repeat("w", 200)}, nil, api.ErrInvalidRequest},
		{"delete body", api.OpDelete, map[string]string{api.HeaderKey: "k"}, []byte("x"), api.ErrInvalidRequest},
		{"bad op", api.Op("zap"), map[string]string{api.HeaderKey: "k"}, nil, api.ErrInvalidRequest},
		{"session without seq", api.OpPut, map[string]string{api.HeaderKey: "k", api.HeaderSession: "s"}, nil, api.ErrInvalidRequest},
		{"session seq zero", api.OpPut, map[string]string{api.HeaderKey: "k", api.HeaderSession: "s", api.HeaderSessionSeq: "0"}, nil, api.ErrInvalidRequest},
		{"bad session id", api.OpPut, map[string]string{api.HeaderKey: "k", api.HeaderSession: "a.b", api.HeaderSessionSeq: "1"}, nil, api.ErrInvalidRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := nats.Header{}
			for k, v := range tt.hdr {
				h.Set(k, v)
			}
			if _, err := wire.DecodeWriteRequest(tt.op, h, tt.data); !errors.Is(err, tt.err) {
				t.Fatalf("err=%v, want %v", err, tt.err)
			}
		})
	}
}

func TestReadRequestsRoundTrip(t *testing.T) {
	g := api.GetRequest{Key: "k/1", ReadSpec: api.ReadSpec{Token: api.NewToken("ab", 9), Wait: 1500 * time.Millisecond, Consistency: api.Session}}
	m := wire.GetMsg("s", g)
	got, err := wire.DecodeGetRequest(m.Header)
	if err != nil {
		t.Fatal(err)
	}
	if got != g {
		t.Fatalf("get round trip %+v -> %+v", g, got)
	}
	s := api.ScanRequest{Prefix: "k/", After: "k/1", Limit: 10, ReadSpec: api.ReadSpec{Token: api.NewToken("ab", 9), Wait: time.Second, Consistency: api.Strong}}
	m = wire.ScanMsg("s", s)
	gs, err := wire.DecodeScanRequest(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if gs != s {
		t.Fatalf("scan round trip %+v -> %+v", s, gs)
	}
}

func TestRepliesRoundTrip(t *testing.T) {
	tok := api.NewToken("ab", 12)
	h, body := wire.EncodeWriteReply(api.WriteResult{Key: "k", Revision: 12, Token: tok}, nil)
	w, err := wire.DecodeWriteReply(&nats.Msg{Header: h, Data: body})
	if err != nil || w.Revision != 12 || w.Token != tok || w.Key != "k" {
		t.Fatalf("write reply = %+v, %v", w, err)
	}
	h, body = wire.EncodeGetReply(api.GetResult{Record: api.Record{Key: "k", Revision: 11, Deleted: true}, Token: tok, ServedBy: api.ServedBy{Replica: "r1", Applied: 12}},
		api.Errorf(api.ErrNotFound, "key %q was deleted", "k"))
	g, err := wire.DecodeGetReply("k", &nats.Msg{Header: h, Data: body})
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("get reply err=%v, want ErrNotFound", err)
	}
	if g.Record.Revision != 11 || !g.Record.Deleted || g.Token != tok || g.Replica != "r1" || g.Applied != 12 {
		t.Fatalf("get reply = %+v", g)
	}
	h, body = wire.EncodeScanReply(api.ScanResult{Items: []api.Record{{Key: "a", Value: []byte{0, 1}, Revision: 3}}, Next: "a", Token: tok}, nil)
	sc, err := wire.DecodeScanReply(&nats.Msg{Header: h, Data: body})
	if err != nil || len(sc.Items) != 1 || !bytes.Equal(sc.Items[0].Value, []byte{0, 1}) || sc.Next != "a" {
		t.Fatalf("scan reply = %+v, %v", sc, err)
	}
}

func TestCodes(t *testing.T) {
	for _, err := range []error{api.ErrInvalidToken, api.ErrTokenStreamMismatch, api.ErrTokenFromFuture, api.ErrInvalidKey,
		api.ErrInvalidRequest, api.ErrNotFound, api.ErrRevisionMismatch, api.ErrValueTooLarge, api.ErrUnavailable,
		api.ErrTokenWaitTimeout, api.ErrOutOfOrder, api.ErrInternal} {
		wrapped := api.Errorf(err, "details")
		back := api.FromCode(api.Code(wrapped), wrapped.Error())
		if !errors.Is(back, err) {
			t.Fatalf("code %s does not round trip to %v", api.Code(wrapped), err)
		}
		if got, want := back.Error(), "details"; got != want {
			t.Fatalf("message=%q, want %q", got, want)
		}
	}
	if got, want := api.Code(errors.New("boom")), api.CodeInternal; got != want {
		t.Fatalf("Code(unknown)=%q, want %q", got, want)
	}
}

func FuzzDecodeWriteRequest(f *testing.F) {
	f.Add("k", "1.ab.3", "w", `"3"`, "", []byte("v"), true)
	f.Add("%2F", "", "", "", "*", []byte(nil), false)
	f.Fuzz(func(t *testing.T, key, tok, id, ifMatch, ifNone string, data []byte, put bool) {
		op := api.OpDelete
		if put {
			op = api.OpPut
		}
		h := nats.Header{}
		for k, v := range map[string]string{api.HeaderKey: key, api.HeaderToken: tok, api.HeaderWriteID: id,
			api.HeaderIfMatch: ifMatch, api.HeaderIfNoneMatch: ifNone} {
			if v != "" {
				h.Set(k, v)
			}
		}
		w, err := wire.DecodeWriteRequest(op, h, data)
		if err != nil {
			if api.Code(err) == api.CodeInternal {
				t.Fatalf("decode error without a code: %v", err)
			}
			return
		}
		if err := api.ValidateKey(w.Key); err != nil {
			t.Fatalf("accepted bad key: %v", err)
		}
		m := wire.WriteMsg("s", w)
		again, err := wire.DecodeWriteRequest(op, m.Header, m.Data)
		if err != nil || again.Key != w.Key || again.Token != w.Token || again.IfRevision != w.IfRevision {
			t.Fatalf("re-encode of %+v -> %+v, %v", w, again, err)
		}
	})
}

func FuzzDecodeReadRequests(f *testing.F) {
	f.Add("k", "1.ab.3", "2s", []byte(`{"prefix":"a","after":"a1","limit":5}`), "")
	f.Add("", "", "", []byte(`{`), "s-1")
	f.Add("k", "", "", []byte(`{}`), "a.b")
	f.Fuzz(func(t *testing.T, key, tok, wait string, body []byte, session string) {
		h := nats.Header{}
		h.Set(api.HeaderKey, key)
		h.Set(api.HeaderToken, tok)
		h.Set(api.HeaderWait, wait)
		h.Set(api.HeaderConsistency, tok)
		h.Set(api.HeaderSession, session)
		if g, err := wire.DecodeGetRequest(h); err == nil {
			if api.ValidateKey(g.Key) != nil || g.Wait < 0 || (g.Session != "" && !api.ValidID(g.Session)) {
				t.Fatalf("accepted %+v", g)
			}
		} else if api.Code(err) == api.CodeInternal {
			t.Fatalf("decode error without a code: %v", err)
		}
		if s, err := wire.DecodeScanRequest(h, body); err == nil {
			if s.Limit < 1 || s.Limit > api.MaxScanLimit || s.Wait < 0 {
				t.Fatalf("accepted %+v", s)
			}
		} else if api.Code(err) == api.CodeInternal {
			t.Fatalf("decode error without a code: %v", err)
		}
	})
}

func FuzzDecodeStatus(f *testing.F) {
	f.Add([]byte(`{"replica":"r1","stream":"ab12","applied":42,"rate":100.5,"ready":true}`))
	f.Add([]byte(`{"replica":"a.b"}`))
	f.Add([]byte(`{"replica":"r1","stream":"ab12","applied":7,"rate":0,"ready":false,"state":"stopped","reason":"gap at 8"}`))
	f.Add([]byte(`{"replica":"r1","stream":"ab12","state":"sleeping"}`))
	f.Add([]byte(`{"replica":"r1","stream":"ab12","applied":9,"tombstones":3,"compact_point":5}`))
	f.Add([]byte(`{"replica":"r1","stream":"ab12","tombstones":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := wire.DecodeStatus(data)
		if err != nil {
			return
		}
		if !api.ValidID(st.Replica) || st.Rate < 0 || len(st.Reason) > wire.MaxReasonBytes || (st.Tombstones != nil && *st.Tombstones < 0) {
			t.Fatalf("accepted %+v", st)
		}
	})
}

// A point read that names a session carries it to the replica, and the
// replica's highest number for it comes back, on success and on not found.
func TestGetSessionRoundTrip(t *testing.T) {
	m := wire.GetMsg("s", api.GetRequest{Key: "k", Session: "s-1"})
	g, err := wire.DecodeGetRequest(m.Header)
	if err != nil || g.Session != "s-1" || g.Key != "k" {
		t.Fatalf("DecodeGetRequest=%+v, %v; want key k, session s-1", g, err)
	}
	for _, rerr := range []error{nil, api.Errorf(api.ErrNotFound, "no k")} {
		h, body := wire.EncodeGetReply(api.GetResult{Record: api.Record{Key: "k"}, SessionSeq: 7}, rerr)
		res, err := wire.DecodeGetReply("k", &nats.Msg{Header: h, Data: body})
		if !errors.Is(err, errOr(rerr)) || res.SessionSeq != 7 {
			t.Fatalf("reply (%v): SessionSeq=%d, %v; want 7", rerr, res.SessionSeq, err)
		}
	}
	h := nats.Header{}
	h.Set(api.HeaderKey, "k")
	h.Set(api.HeaderSession, "a.b")
	if _, err := wire.DecodeGetRequest(h); !errors.Is(err, api.ErrInvalidRequest) {
		t.Fatalf("session a.b: %v, want invalid_request", err)
	}
	bad := nats.Header{}
	bad.Set(api.HeaderSessionSeq, "x")
	if _, err := wire.DecodeGetReply("k", &nats.Msg{Header: bad}); !errors.Is(err, api.ErrInternal) {
		t.Fatalf("bad session number in a reply: %v, want internal", err)
	}
}

func errOr(err error) error {
	if err == nil {
		return nil
	}
	return api.ErrNotFound
}

func TestServedByRoundTrip(t *testing.T) {
	want := api.ServedBy{Replica: "r1", Applied: 12, Waited: 250 * time.Millisecond, StreamLast: 14}
	for _, h := range []map[string][]string{nats.Header{}, http.Header{}} {
		wire.SetServedBy(h, want)
		if got := wire.ServedByOf(h); got != want {
			t.Fatalf("%T: got %+v, want %+v", h, got, want)
		}
	}
	h := nats.Header{}
	wire.SetServedBy(h, api.ServedBy{Applied: 3})
	if len(h) != 0 {
		t.Fatalf("no replica: headers %v, want none", h)
	}
}
