package wire_test

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestDecodeWatchRequest(t *testing.T) {
	for _, tt := range []struct {
		name, body, token string
		ok                bool
		resume            bool
		after             uint64
	}{
		{"initial state", `{"prefix":"a/","deliver":"_INBOX.x"}`, "", true, false, 0},
		{"resume", `{"prefix":"a/","after":7,"deliver":"_INBOX.x","progress":"100ms"}`, "", true, true, 7},
		{"resume at 0", `{"after":0,"deliver":"_INBOX.x"}`, "", true, true, 0},
		{"token", `{"deliver":"in.box"}`, "1.ab.3", true, false, 0},
		{"bad token", `{"deliver":"in.box"}`, "x", false, false, 0},
		{"no deliver", `{"prefix":"a/"}`, "", false, false, 0},
		{"wildcard deliver", `{"deliver":"in.*"}`, "", false, false, 0},
		{"empty token in deliver", `{"deliver":"in..box"}`, "", false, false, 0},
		{"unknown field", `{"deliver":"in.box","limit":3}`, "", false, false, 0},
		{"negative after", `{"deliver":"in.box","after":-1}`, "", false, false, 0},
		{"progress too short", `{"deliver":"in.box","progress":"1ms"}`, "", false, false, 0},
		{"progress garbage", `{"deliver":"in.box","progress":"soon"}`, "", false, false, 0},
		{"bad prefix", `{"deliver":"in.box","prefix":"\xff"}`, "", false, false, 0},
		{"two objects", `{"deliver":"in.box"}{}`, "", false, false, 0},
		{"empty", ``, "", false, false, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := nats.Header{}
			if tt.token != "" {
				h.Set(api.HeaderToken, tt.token)
			}
			w, deliver, err := wire.DecodeWatchRequest(h, []byte(tt.body))
			if got, want := err == nil, tt.ok; got != want {
				t.Fatalf("DecodeWatchRequest(%s)=%v, want ok %v", tt.body, err, want)
			}
			if err != nil {
				if code := api.Code(err); code != api.CodeInvalidRequest && code != api.CodeInvalidToken && code != api.CodeInvalidKey {
					t.Fatalf("DecodeWatchRequest(%s)=%v, want a bad input code", tt.body, err)
				}
				return
			}
			if w.Resume != tt.resume || w.After != tt.after || deliver == "" {
				t.Fatalf("DecodeWatchRequest(%s)=%+v %q, want resume %v after %d", tt.body, w, deliver, tt.resume, tt.after)
			}
		})
	}
}

// TestWatchRoundTrip: what WatchMsg and EventMsg encode decodes back.
func TestWatchRoundTrip(t *testing.T) {
	req := api.WatchRequest{Prefix: "p/", Resume: true, After: 9, Token: api.NewToken("ab", 12), Wait: 2 * time.Second, Progress: time.Second}
	m := wire.WatchMsg("s", req, "in.box")
	got, deliver, err := wire.DecodeWatchRequest(m.Header, m.Data)
	if err != nil || deliver != "in.box" || got != req {
		t.Fatalf("round trip of %+v: %+v %q %v", req, got, deliver, err)
	}
	for _, ev := range []api.Event{
		{Type: api.EventPut, ID: 5, Key: "p/a", Revision: 5, Value: []byte("v"), Token: api.NewToken("ab", 5)},
		{Type: api.EventPut, Key: "p/a", Revision: 5, Value: []byte{}, Token: api.NewToken("ab", 7)},
		{Type: api.EventDelete, ID: 6, Key: "p/a", Revision: 6, Token: api.NewToken("ab", 6)},
		{Type: api.EventPut, ID: 8, Key: "p/b", Revision: 8, Value: []byte("w"), More: true, Txn: api.TxnMark{Revision: 9, Ops: 2}, Token: api.NewToken("ab", 8)},
		{Type: api.EventDelete, ID: 9, Key: "p/c", Revision: 9, Txn: api.TxnMark{Revision: 9, Ops: 2}, Token: api.NewToken("ab", 9)},
		{Type: api.EventSynced, ID: 7, Token: api.NewToken("ab", 7)},
		{Type: api.EventProgress, ID: 0, Token: api.NewToken("ab", 0)},
	} {
		n, back, err := wire.DecodeEvent(wire.EventMsg("in.box", 3, ev))
		if err != nil || n != 3 || back.Type != ev.Type || back.ID != ev.ID || back.Key != ev.Key || back.Revision != ev.Revision ||
			string(back.Value) != string(ev.Value) || back.Token != ev.Token || back.More != ev.More || back.Txn != ev.Txn {
			t.Fatalf("round trip of %+v: %d %+v %v", ev, n, back, err)
		}
	}
	_, back, err := wire.DecodeEvent(wire.EventMsg("in.box", 1, api.Event{Type: api.EventError, Err: api.Errorf(api.ErrResumePointCompacted, "gone")}))
	if err != nil || back.Type != api.EventError || !errors.Is(back.Err, api.ErrResumePointCompacted) {
		t.Fatalf("error event: %+v %v", back, err)
	}
}

// TestDecodeEventTxn: a transaction mark decodes on a change of the stream
// only, with at least one op, at or after the change's revision.
func TestDecodeEventTxn(t *testing.T) {
	for _, tt := range []struct {
		name, typ, id, body string
		ok                  bool
		want                api.TxnMark
	}{
		{"put", "put", "5", `{"key":"a","revision":5,"value":"dg==","txn":{"revision":6,"ops":2},"token":"1.ab.5"}`, true, api.TxnMark{Revision: 6, Ops: 2}},
		{"delete at its last op", "delete", "6", `{"key":"a","revision":6,"txn":{"revision":6,"ops":2},"token":"1.ab.6"}`, true, api.TxnMark{Revision: 6, Ops: 2}},
		{"no mark", "put", "5", `{"key":"a","revision":5,"value":"dg==","token":"1.ab.5"}`, true, api.TxnMark{}},
		{"before the change", "put", "5", `{"key":"a","revision":5,"value":"dg==","txn":{"revision":4,"ops":2},"token":"1.ab.5"}`, false, api.TxnMark{}},
		{"no ops", "put", "5", `{"key":"a","revision":5,"value":"dg==","txn":{"revision":5,"ops":0},"token":"1.ab.5"}`, false, api.TxnMark{}},
		{"negative ops", "put", "5", `{"key":"a","revision":5,"value":"dg==","txn":{"revision":5,"ops":-1},"token":"1.ab.5"}`, false, api.TxnMark{}},
		{"initial state record", "put", "", `{"key":"a","revision":5,"value":"dg==","txn":{"revision":5,"ops":1},"token":"1.ab.5"}`, false, api.TxnMark{}},
		{"unknown field", "put", "5", `{"key":"a","revision":5,"value":"dg==","txn":{"revision":5,"ops":1,"keys":1},"token":"1.ab.5"}`, false, api.TxnMark{}},
		{"not an object", "put", "5", `{"key":"a","revision":5,"value":"dg==","txn":5,"token":"1.ab.5"}`, false, api.TxnMark{}},
		{"on progress", "progress", "5", `{"txn":{"revision":5,"ops":1},"token":"1.ab.5"}`, false, api.TxnMark{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := nats.NewMsg("in.box")
			m.Header.Set(wire.HeaderEvent, tt.typ)
			m.Header.Set(wire.HeaderEventSeq, "1")
			if tt.id != "" {
				m.Header.Set(wire.HeaderEventID, tt.id)
			}
			m.Data = []byte(tt.body)
			_, ev, err := wire.DecodeEvent(m)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, api.ErrInternal)) {
				t.Fatalf("DecodeEvent(%s)=%v, want ok %v", tt.body, err, tt.ok)
			}
			if err == nil && ev.Txn != tt.want {
				t.Fatalf("DecodeEvent(%s) marks %+v, want %+v", tt.body, ev.Txn, tt.want)
			}
		})
	}
}

// FuzzDecodeWatchRequest: any request body and token either decodes to a
// request that validates, with a subject to deliver to, or fails with a
// bad input error; it never panics.
func FuzzDecodeWatchRequest(f *testing.F) {
	f.Add(`{"prefix":"a/","after":7,"deliver":"_INBOX.x","progress":"100ms"}`, "1.ab.3", "2s")
	f.Add(`{"deliver":"in.box"}`, "", "")
	f.Add(`{"deliver":"in.*","after":-1}`, "x", "-1s")
	f.Fuzz(func(t *testing.T, body, tok, wait string) {
		h := nats.Header{}
		h.Set(api.HeaderToken, tok)
		h.Set(api.HeaderWait, wait)
		w, deliver, err := wire.DecodeWatchRequest(h, []byte(body))
		if err != nil {
			if code := api.Code(err); code != api.CodeInvalidRequest && code != api.CodeInvalidToken && code != api.CodeInvalidKey {
				t.Fatalf("DecodeWatchRequest(%q)=%v: not a bad input code", body, err)
			}
			return
		}
		if verr := w.Validate(); verr != nil || deliver == "" {
			t.Fatalf("DecodeWatchRequest(%q)=%+v %q, which does not validate: %v", body, w, deliver, verr)
		}
	})
}

// FuzzDecodeEvent: any event message decodes or fails with an internal
// error (a bad message from a replica); a decoded change has a valid key
// and revision, and what decodes encodes back the same.
func FuzzDecodeEvent(f *testing.F) {
	f.Add("put", "3", "5", `{"key":"a","revision":5,"value":"dg==","token":"1.ab.5"}`)
	f.Add("synced", "1", "0", `{"token":"1.ab.0"}`)
	f.Add("error", "2", "", `{"error":{"code":"resume_point_compacted","message":"gone"}}`)
	f.Add("delete", "x", "-1", `{"key":"","value":"dg=="}`)
	f.Add("put", "4", "5", `{"key":"a","revision":5,"value":"dg==","txn":{"revision":7,"ops":3},"token":"1.ab.5"}`)
	f.Add("delete", "4", "7", `{"key":"a","revision":7,"txn":{"revision":7,"ops":0},"token":"1.ab.7"}`)
	f.Fuzz(func(t *testing.T, typ, seq, id, body string) {
		m := nats.NewMsg("in.box")
		m.Header.Set(wire.HeaderEvent, typ)
		m.Header.Set(wire.HeaderEventSeq, seq)
		if id != "" {
			m.Header.Set(wire.HeaderEventID, id)
		}
		m.Data = []byte(body)
		n, ev, err := wire.DecodeEvent(m)
		if err != nil {
			if !errors.Is(err, api.ErrInternal) {
				t.Fatalf("DecodeEvent: %v, want ErrInternal", err)
			}
			return
		}
		if ev.Type == api.EventPut || ev.Type == api.EventDelete {
			if api.ValidateKey(ev.Key) != nil || ev.Revision == 0 || (ev.ID != 0 && ev.ID != ev.Revision) ||
				(!ev.Txn.IsZero() && (ev.ID == 0 || ev.Txn.Ops < 1 || ev.Txn.Revision < ev.Revision)) {
				t.Fatalf("DecodeEvent decoded a bad change %+v", ev)
			}
		}
		if ev.Type != api.EventPut && ev.Type != api.EventDelete && !ev.Txn.IsZero() {
			t.Fatalf("DecodeEvent marked a %s event %+v", ev.Type, ev.Txn)
		}
		if ev.Type == api.EventError {
			return
		}
		n2, back, err := wire.DecodeEvent(wire.EventMsg("in.box", n, ev))
		if err != nil || n2 != n || back.Type != ev.Type || back.ID != ev.ID || back.Key != ev.Key || string(back.Value) != string(ev.Value) || back.Token != ev.Token || back.Txn != ev.Txn {
			t.Fatalf("re-encoding %+v: %+v %v", ev, back, err)
		}
	})
}

// FuzzDecodeWatchControl: any control message decodes or fails with
// ErrInvalidRequest.
func FuzzDecodeWatchControl(f *testing.F) {
	f.Add(`{"received":12}`)
	f.Add(`{"received":0,"stop":true}`)
	f.Add(`{"received":-1}`)
	f.Fuzz(func(t *testing.T, body string) {
		c, err := wire.DecodeWatchControl([]byte(body))
		if err != nil {
			if !errors.Is(err, api.ErrInvalidRequest) {
				t.Fatalf("DecodeWatchControl(%q)=%v, want ErrInvalidRequest", body, err)
			}
			return
		}
		if back, err := wire.DecodeWatchControl(wire.WatchControlMsg(c.Received, c.Stop)); err != nil || back != c {
			t.Fatalf("round trip of %+v: %+v %v", c, back, err)
		}
	})
}

// FuzzDecodeWatchReply: any reply decodes to a control subject and a
// replica id, or fails; it never panics.
func FuzzDecodeWatchReply(f *testing.F) {
	f.Add(`{"control":"_INBOX.c","replica":"r1"}`, "")
	f.Add(`{"control":"a b","replica":"r1"}`, "")
	f.Add(`{"error":{"code":"resume_point_compacted","message":"x"}}`, "resume_point_compacted")
	f.Fuzz(func(t *testing.T, body, code string) {
		m := nats.NewMsg("r")
		if code != "" {
			m.Header.Set(wire.HeaderErrorCode, code)
		}
		m.Data = []byte(body)
		control, replica, err := wire.DecodeWatchReply(m)
		if err == nil && (control == "" || !api.ValidID(replica)) {
			t.Fatalf("DecodeWatchReply(%q)=%q %q without an error", body, control, replica)
		}
	})
}
