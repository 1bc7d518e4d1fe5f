package stream_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/stream"
)

func TestWriteRequestRoundTrip(t *testing.T) {
	for _, w := range []stream.WriteRequest{
		{Op: stream.OpPut, Key: "a/b c%", Value: []byte("v"), Token: stream.NewToken("ab", 7), WriteID: "w1"},
		{Op: stream.OpPut, Key: "k", Value: []byte{}, IfRevision: 3},
		{Op: stream.OpPut, Key: "k", Value: []byte("x"), IfAbsent: true},
		{Op: stream.OpDelete, Key: "☕"},
		{Op: stream.OpPut, Key: "s", Value: []byte("v"), Session: "sess-1", SessionSeq: 4},
	} {
		m := w.Msg("subj")
		got, err := stream.DecodeWriteRequest(w.Op, m.Header, m.Data)
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
		op   stream.Op
		hdr  map[string]string
		data []byte
		err  error
	}{
		{"no key", stream.OpPut, nil, nil, stream.ErrInvalidKey},
		{"bad escape", stream.OpPut, map[string]string{stream.HeaderKey: "%zz"}, nil, stream.ErrInvalidKey},
		{"bad token", stream.OpPut, map[string]string{stream.HeaderKey: "k", stream.HeaderToken: "x"}, nil, stream.ErrInvalidToken},
		{"bad if-match", stream.OpPut, map[string]string{stream.HeaderKey: "k", stream.HeaderIfMatch: "abc"}, nil, stream.ErrInvalidRequest},
		{"zero if-match", stream.OpPut, map[string]string{stream.HeaderKey: "k", stream.HeaderIfMatch: "0"}, nil, stream.ErrInvalidRequest},
		{"if-none-match etag", stream.OpPut, map[string]string{stream.HeaderKey: "k", stream.HeaderIfNoneMatch: `"3"`}, nil, stream.ErrInvalidRequest},
		{"both conditions", stream.OpPut, map[string]string{stream.HeaderKey: "k", stream.HeaderIfMatch: "1", stream.HeaderIfNoneMatch: "*"}, nil, stream.ErrInvalidRequest},
		{"long write id", stream.OpPut, map[string]string{stream.HeaderKey: "k", stream.HeaderWriteID: strings.Repeat("w", 200)}, nil, stream.ErrInvalidRequest},
		{"delete body", stream.OpDelete, map[string]string{stream.HeaderKey: "k"}, []byte("x"), stream.ErrInvalidRequest},
		{"bad op", stream.Op("zap"), map[string]string{stream.HeaderKey: "k"}, nil, stream.ErrInvalidRequest},
		{"session without seq", stream.OpPut, map[string]string{stream.HeaderKey: "k", stream.HeaderSession: "s"}, nil, stream.ErrInvalidRequest},
		{"session seq zero", stream.OpPut, map[string]string{stream.HeaderKey: "k", stream.HeaderSession: "s", stream.HeaderSessionSeq: "0"}, nil, stream.ErrInvalidRequest},
		{"bad session id", stream.OpPut, map[string]string{stream.HeaderKey: "k", stream.HeaderSession: "a.b", stream.HeaderSessionSeq: "1"}, nil, stream.ErrInvalidRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := nats.Header{}
			for k, v := range tt.hdr {
				h.Set(k, v)
			}
			if _, err := stream.DecodeWriteRequest(tt.op, h, tt.data); !errors.Is(err, tt.err) {
				t.Fatalf("err=%v, want %v", err, tt.err)
			}
		})
	}
}

func TestReadRequestsRoundTrip(t *testing.T) {
	g := stream.GetRequest{Key: "k/1", Token: stream.NewToken("ab", 9), Wait: 1500 * time.Millisecond, Consistency: stream.Session}
	m := g.Msg("s")
	got, err := stream.DecodeGetRequest(m.Header)
	if err != nil {
		t.Fatal(err)
	}
	if got != g {
		t.Fatalf("get round trip %+v -> %+v", g, got)
	}
	s := stream.ScanRequest{Prefix: "k/", After: "k/1", Limit: 10, Token: stream.NewToken("ab", 9), Wait: time.Second, Consistency: stream.Strong}
	m = s.Msg("s")
	gs, err := stream.DecodeScanRequest(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if gs != s {
		t.Fatalf("scan round trip %+v -> %+v", s, gs)
	}
}

func TestRepliesRoundTrip(t *testing.T) {
	tok := stream.NewToken("ab", 12)
	h, body := stream.EncodeWriteReply(stream.WriteResult{Key: "k", Revision: 12, Token: tok}, nil)
	w, err := stream.DecodeWriteReply(&nats.Msg{Header: h, Data: body})
	if err != nil || w.Revision != 12 || w.Token != tok || w.Key != "k" {
		t.Fatalf("write reply = %+v, %v", w, err)
	}
	h, body = stream.EncodeGetReply(stream.GetResult{Record: stream.Record{Key: "k", Revision: 11, Deleted: true}, Token: tok, Replica: "r1", Applied: 12},
		stream.Errorf(stream.ErrNotFound, "key %q was deleted", "k"))
	g, err := stream.DecodeGetReply("k", &nats.Msg{Header: h, Data: body})
	if !errors.Is(err, stream.ErrNotFound) {
		t.Fatalf("get reply err=%v, want ErrNotFound", err)
	}
	if g.Record.Revision != 11 || !g.Record.Deleted || g.Token != tok || g.Replica != "r1" || g.Applied != 12 {
		t.Fatalf("get reply = %+v", g)
	}
	h, body = stream.EncodeScanReply(stream.ScanResult{Items: []stream.Record{{Key: "a", Value: []byte{0, 1}, Revision: 3}}, Next: "a", Token: tok}, nil)
	sc, err := stream.DecodeScanReply(&nats.Msg{Header: h, Data: body})
	if err != nil || len(sc.Items) != 1 || !bytes.Equal(sc.Items[0].Value, []byte{0, 1}) || sc.Next != "a" {
		t.Fatalf("scan reply = %+v, %v", sc, err)
	}
}

func TestCodes(t *testing.T) {
	for _, err := range []error{stream.ErrInvalidToken, stream.ErrTokenStreamMismatch, stream.ErrTokenFromFuture, stream.ErrInvalidKey,
		stream.ErrInvalidRequest, stream.ErrNotFound, stream.ErrRevisionMismatch, stream.ErrValueTooLarge, stream.ErrUnavailable,
		stream.ErrTokenWaitTimeout, stream.ErrOutOfOrder, stream.ErrInternal} {
		wrapped := stream.Errorf(err, "details")
		back := stream.FromCode(stream.Code(wrapped), wrapped.Error())
		if !errors.Is(back, err) {
			t.Fatalf("code %s does not round trip to %v", stream.Code(wrapped), err)
		}
		if got, want := back.Error(), "details"; got != want {
			t.Fatalf("message=%q, want %q", got, want)
		}
	}
	if got, want := stream.Code(errors.New("boom")), stream.CodeInternal; got != want {
		t.Fatalf("Code(unknown)=%q, want %q", got, want)
	}
}

func FuzzDecodeWriteRequest(f *testing.F) {
	f.Add("k", "1.ab.3", "w", `"3"`, "", []byte("v"), true)
	f.Add("%2F", "", "", "", "*", []byte(nil), false)
	f.Fuzz(func(t *testing.T, key, tok, id, ifMatch, ifNone string, data []byte, put bool) {
		op := stream.OpDelete
		if put {
			op = stream.OpPut
		}
		h := nats.Header{}
		for k, v := range map[string]string{stream.HeaderKey: key, stream.HeaderToken: tok, stream.HeaderWriteID: id,
			stream.HeaderIfMatch: ifMatch, stream.HeaderIfNoneMatch: ifNone} {
			if v != "" {
				h.Set(k, v)
			}
		}
		w, err := stream.DecodeWriteRequest(op, h, data)
		if err != nil {
			if stream.Code(err) == stream.CodeInternal {
				t.Fatalf("decode error without a code: %v", err)
			}
			return
		}
		if err := stream.ValidateKey(w.Key); err != nil {
			t.Fatalf("accepted bad key: %v", err)
		}
		m := w.Msg("s")
		again, err := stream.DecodeWriteRequest(op, m.Header, m.Data)
		if err != nil || again.Key != w.Key || again.Token != w.Token || again.IfRevision != w.IfRevision {
			t.Fatalf("re-encode of %+v -> %+v, %v", w, again, err)
		}
	})
}

func FuzzDecodeReadRequests(f *testing.F) {
	f.Add("k", "1.ab.3", "2s", []byte(`{"prefix":"a","after":"a1","limit":5}`))
	f.Add("", "", "", []byte(`{`))
	f.Fuzz(func(t *testing.T, key, tok, wait string, body []byte) {
		h := nats.Header{}
		h.Set(stream.HeaderKey, key)
		h.Set(stream.HeaderToken, tok)
		h.Set(stream.HeaderWait, wait)
		h.Set(stream.HeaderConsistency, tok)
		if g, err := stream.DecodeGetRequest(h); err == nil {
			if stream.ValidateKey(g.Key) != nil || g.Wait < 0 {
				t.Fatalf("accepted %+v", g)
			}
		} else if stream.Code(err) == stream.CodeInternal {
			t.Fatalf("decode error without a code: %v", err)
		}
		if s, err := stream.DecodeScanRequest(h, body); err == nil {
			if s.Limit < 1 || s.Limit > stream.MaxScanLimit || s.Wait < 0 {
				t.Fatalf("accepted %+v", s)
			}
		} else if stream.Code(err) == stream.CodeInternal {
			t.Fatalf("decode error without a code: %v", err)
		}
	})
}

func FuzzDecodeStatus(f *testing.F) {
	f.Add([]byte(`{"replica":"r1","stream":"ab12","applied":42,"rate":100.5,"ready":true}`))
	f.Add([]byte(`{"replica":"a.b"}`))
	f.Add([]byte(`{"replica":"r1","stream":"ab12","applied":7,"rate":0,"ready":false,"state":"stopped","reason":"gap at 8"}`))
	f.Add([]byte(`{"replica":"r1","stream":"ab12","state":"sleeping"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := stream.DecodeStatus(data)
		if err != nil {
			return
		}
		if !stream.ValidReplicaID(st.Replica) || st.Rate < 0 || len(st.Reason) > stream.MaxReasonBytes {
			t.Fatalf("accepted %+v", st)
		}
	})
}
