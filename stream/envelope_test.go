package stream_test

import (
	"github.com/tidemark/tidemark/api"

	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/stream"
)

func TestValidateKey(t *testing.T) {
	for _, tt := range []struct {
		name string
		key  string
		err  error
	}{
		{"simple", "user/42", nil},
		{"unicode", "café ☕", nil},
		{"max length", strings.Repeat("k", api.MaxKeyLen), nil},
		{"empty", "", api.ErrInvalidKey},
		{"too long", strings.Repeat("k", api.MaxKeyLen+1), api.ErrInvalidKey},
		{"invalid utf-8", "a\xffb", api.ErrInvalidKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := api.ValidateKey(tt.key); !errors.Is(err, tt.err) {
				t.Fatalf("ValidateKey(%q)=%v, want %v", tt.key, err, tt.err)
			}
		})
	}
}

func TestEntryRoundTrip(t *testing.T) {
	for _, key := range []string{"a", "user/42", "a.b.*.>", "café ☕", strings.Repeat("z", api.MaxKeyLen)} {
		subj := stream.KeySubject("tidemark.kv", key)
		if strings.ContainsAny(subj[len("tidemark.kv."):], ".*> \t") {
			t.Fatalf("KeySubject(%q)=%q is not a single subject token", key, subj)
		}
		e, err := stream.DecodeEntry("tidemark.kv", subj, "put", []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := e.Key, key; got != want {
			t.Fatalf("Key=%q, want %q", got, want)
		}
		if got, want := e.Op, api.OpPut; got != want {
			t.Fatalf("Op=%q, want %q", got, want)
		}
	}
}

func TestDecodeMarker(t *testing.T) {
	h := nats.Header{}
	h.Set(api.HeaderOp, string(stream.OpSession))
	api.SetSession(h, "s1", 7)
	e, err := stream.DecodeMessage("tidemark.kv", stream.SessionSubject("tidemark.kv", "s1"), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Op != stream.OpSession || e.Session != "s1" || e.SessionSeq != 7 || e.Key != "" {
		t.Fatalf("DecodeMessage(marker)=%+v", e)
	}
	api.SetSession(h, "s2", 7)
	if _, err := stream.DecodeMessage("tidemark.kv", stream.SessionSubject("tidemark.kv", "s1"), h, nil); err == nil {
		t.Fatal("marker of session s2 on the subject of s1 decoded")
	}
}

func TestDecodeEntryRejects(t *testing.T) {
	good := stream.KeySubject("tidemark.kv", "k")
	for _, tt := range []struct {
		name, subject, op string
		data              []byte
	}{
		{"other prefix", "other.a", "put", nil},
		{"bad base64", "tidemark.kv.!!", "put", nil},
		{"empty key", "tidemark.kv.", "put", nil},
		{"bad op", good, "zap", nil},
		{"delete with body", good, "del", []byte("x")},
		{"marker with a put op", stream.SessionSubject("tidemark.kv", "s"), "put", nil},
		{"marker with a body", stream.SessionSubject("tidemark.kv", "s"), "session", []byte("x")},
		{"marker of a bad session", "tidemark.kv.session.a.b", "session", nil},
		{"session op on a key", good, "session", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := stream.DecodeEntry("tidemark.kv", tt.subject, tt.op, tt.data); err == nil {
				t.Fatalf("DecodeEntry(%q, %q) succeeded", tt.subject, tt.op)
			}
		})
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(stream.KeySubject("p", "key"), "put", []byte("value"))
	f.Add(stream.KeySubject("p", "key"), "del", []byte(nil))
	f.Add("p.", "put", []byte{})
	f.Add(stream.SessionSubject("p", "s"), "session", []byte(nil))
	f.Add(stream.TickSubject("p"), "tick", []byte(nil))
	f.Add(stream.TxnSubject("p", "id"), "txn", []byte(nil))
	f.Fuzz(func(t *testing.T, subject, op string, data []byte) {
		e, err := stream.DecodeEntry("p", subject, op, data)
		if err != nil {
			return
		}
		if e.Op == stream.OpTxn {
			if !strings.HasPrefix(subject, "p.txn.") || e.Key != "" || len(data) != 0 {
				t.Fatalf("transaction marker %+v decoded from %q (%d bytes)", e, subject, len(data))
			}
			return
		}
		if e.Op == stream.OpSession {
			if got := stream.SessionSubject("p", e.Session); got != subject || e.Key != "" || len(data) != 0 {
				t.Fatalf("marker %+v decoded from %q (%d bytes)", e, subject, len(data))
			}
			return
		}
		if e.Op == stream.OpTick {
			if subject != stream.TickSubject("p") || e.Key != "" || len(data) != 0 {
				t.Fatalf("tick %+v decoded from %q (%d bytes)", e, subject, len(data))
			}
			return
		}
		if err := api.ValidateKey(e.Key); err != nil {
			t.Fatalf("decoded invalid key %q: %v", e.Key, err)
		}
		if got := stream.KeySubject("p", e.Key); got != subject {
			t.Fatalf("subject %q decodes to key %q which encodes to %q", subject, e.Key, got)
		}
		if e.Op == api.OpPut && !bytes.Equal(e.Value, data) {
			t.Fatalf("value changed")
		}
	})
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(stream.KeySubject("p", "key"), "put", "sess", "3", []byte("value"))
	f.Add(stream.KeySubject("p", "key"), "del", "", "", []byte(nil))
	f.Add(stream.SessionSubject("p", "sess"), "session", "sess", "3", []byte(nil))
	f.Add(stream.SessionSubject("p", "sess"), "session", "other", "3", []byte(nil))
	f.Fuzz(func(t *testing.T, subject, op, session, seq string, data []byte) {
		h := nats.Header{}
		h.Set(api.HeaderOp, op)
		if session != "" {
			h.Set(api.HeaderSession, session)
		}
		if seq != "" {
			h.Set(api.HeaderSessionSeq, seq)
		}
		e, err := stream.DecodeMessage("p", subject, h, data)
		if err != nil {
			return
		}
		if (e.Session == "") != (e.SessionSeq == 0) {
			t.Fatalf("half a session: %+v", e)
		}
		h2 := nats.Header{}
		h2.Set(api.HeaderOp, string(e.Op))
		api.SetSession(h2, e.Session, e.SessionSeq)
		again, err := stream.DecodeMessage("p", subject, h2, e.Value)
		if err != nil || again.Session != e.Session || again.SessionSeq != e.SessionSeq || again.Key != e.Key {
			t.Fatalf("re-encode %+v -> %+v, %v", e, again, err)
		}
	})
}

// What a writer encodes, a replica decodes to the same write.
func TestMessageRoundTrip(t *testing.T) {
	for _, req := range []api.WriteRequest{
		{Op: api.OpPut, Key: "café/1", Value: []byte("v")},
		{Op: api.OpPut, Key: "empty", Value: []byte{}},
		{Op: api.OpDelete, Key: "gone"},
		{Op: api.OpPut, Key: "k", Value: []byte("x"), Session: "s1", SessionSeq: 9},
	} {
		m := stream.Message("tidemark.kv", req)
		e, err := stream.DecodeMessage("tidemark.kv", m.Subject, m.Header, m.Data)
		if err != nil {
			t.Fatalf("%+v: %v", req, err)
		}
		if e.Op != req.Op || e.Key != req.Key || string(e.Value) != string(req.Value) || e.Session != req.Session || e.SessionSeq != req.SessionSeq {
			t.Fatalf("encoded %+v, decoded %+v", req, e)
		}
		if req.Op == api.OpDelete && e.Value != nil {
			t.Fatalf("a delete decoded with a value")
		}
	}
	m := stream.MarkerMsg("tidemark.kv", "s1", 4)
	e, err := stream.DecodeMessage("tidemark.kv", m.Subject, m.Header, m.Data)
	if err != nil || e.Op != stream.OpSession || e.Session != "s1" || e.SessionSeq != 4 {
		t.Fatalf("marker decoded as %+v, %v", e, err)
	}
}

// A put's time to live and a clock tick survive the envelope, and the
// TTL header is read strictly.
func TestTTLAndTick(t *testing.T) {
	req := api.WriteRequest{Op: api.OpPut, Key: "k", Value: []byte("v"), TTL: 90 * time.Second}
	m := stream.Message("tidemark.kv", req)
	e, err := stream.DecodeMessage("tidemark.kv", m.Subject, m.Header, m.Data)
	if err != nil || e.TTL != req.TTL || e.Op != api.OpPut {
		t.Fatalf("put with TTL decoded as %+v, %v", e, err)
	}
	tick := stream.TickMsg("tidemark.kv", 12345, 7)
	if e, err := stream.DecodeMessage("tidemark.kv", tick.Subject, tick.Header, tick.Data); err != nil || e.Op != stream.OpTick || e.Key != "" {
		t.Fatalf("tick decoded as %+v, %v", e, err)
	}
	if got, want := tick.Header.Get(stream.HeaderMsgID), stream.TickMsg("tidemark.kv", 12345, 7).Header.Get(stream.HeaderMsgID); got != want || got == "" {
		t.Fatalf("tick ids %q and %q: want one id per expiry", got, want)
	}
	if a, b := tick.Header.Get(stream.HeaderMsgID), stream.TickMsg("tidemark.kv", 12346, 7).Header.Get(stream.HeaderMsgID); a == b {
		t.Fatalf("ticks of two expiries share id %q", a)
	}
	for name, ttl := range map[string]string{
		"duration syntax": "30s", "below a second": "999999999", "negative": "-1000000000",
		"leading zero": "01000000000", "plus sign": "+1000000000", "empty": "", "too long": "9223372036854775807",
	} {
		m := stream.Message("tidemark.kv", api.WriteRequest{Op: api.OpPut, Key: "k"})
		m.Header.Set(stream.HeaderTTL, ttl)
		if _, err := stream.DecodeMessage("tidemark.kv", m.Subject, m.Header, m.Data); !errors.Is(err, api.ErrInvalidRequest) {
			t.Errorf("%s: TTL %q decoded: %v", name, ttl, err)
		}
	}
	d := stream.Message("tidemark.kv", api.WriteRequest{Op: api.OpDelete, Key: "k"})
	d.Header.Set(stream.HeaderTTL, "1000000000")
	if _, err := stream.DecodeMessage("tidemark.kv", d.Subject, d.Header, d.Data); err == nil {
		t.Errorf("delete with a TTL decoded")
	}
	tick.Header.Set(stream.HeaderTTL, "1000000000")
	if _, err := stream.DecodeMessage("tidemark.kv", tick.Subject, tick.Header, tick.Data); err == nil {
		t.Errorf("tick with a TTL decoded")
	}
	for _, bad := range []struct {
		op   string
		data []byte
	}{{"put", nil}, {"tick", []byte("x")}} {
		if _, err := stream.DecodeEntry("tidemark.kv", stream.TickSubject("tidemark.kv"), bad.op, bad.data); err == nil {
			t.Errorf("tick subject with op %q and %d bytes decoded", bad.op, len(bad.data))
		}
	}
}

func FuzzDecodeTTL(f *testing.F) {
	f.Add(stream.KeySubject("p", "k"), "put", "1000000000")
	f.Add(stream.KeySubject("p", "k"), "del", "1000000000")
	f.Add(stream.TickSubject("p"), "tick", "")
	f.Add(stream.KeySubject("p", "k"), "put", "1e9")
	f.Fuzz(func(t *testing.T, subject, op, ttl string) {
		h := nats.Header{}
		h.Set(api.HeaderOp, op)
		if ttl != "" {
			h.Set(stream.HeaderTTL, ttl)
		}
		e, err := stream.DecodeMessage("p", subject, h, nil)
		if err != nil {
			return
		}
		if e.TTL != 0 && (e.Op != api.OpPut || e.TTL < api.MinTTL || e.TTL > api.MaxTTL) {
			t.Fatalf("decoded %+v from TTL %q", e, ttl)
		}
		if e.Op == stream.OpTick && (subject != stream.TickSubject("p") || e.Key != "") {
			t.Fatalf("tick %+v from subject %q", e, subject)
		}
		m := stream.Message("p", api.WriteRequest{Op: e.Op, Key: e.Key, TTL: e.TTL})
		if e.Op == api.OpPut {
			again, err := stream.DecodeMessage("p", m.Subject, m.Header, m.Data)
			if err != nil || again.TTL != e.TTL {
				t.Fatalf("re-encode of %+v -> %+v, %v", e, again, err)
			}
		}
	})
}
