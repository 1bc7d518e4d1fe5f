package history_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/chaos/checker"
	"github.com/tidemark/tidemark/chaos/history"
)

func sample() *history.History {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	return &history.History{
		Ops: []history.Op{
			{Session: 0, Index: 0, Kind: history.Put, Key: "k", Value: []byte{0, 1, 0xff}, WriteID: "w", Outcome: history.OK,
				Revision: 1, TokenOut: 1, Invoke: now, Complete: now.Add(time.Millisecond)},
			{Session: 0, Index: 1, Kind: history.Scan, Prefix: "k", Outcome: history.OK, TokenIn: 1, TokenOut: 1, Applied: 1,
				Items: []history.Item{{Key: "k", Value: []byte{0, 1, 0xff}, Revision: 1}}, Invoke: now, Complete: now},
		},
		Final: &history.Final{
			Stream:   []history.Message{{Seq: 1, Kind: history.Put, Key: "k", Value: []byte{0, 1, 0xff}, MsgID: "w"}},
			Replicas: []history.Replica{{ID: "r1", Applied: 1, Records: []history.Record{{Key: "k", Value: []byte{0, 1, 0xff}, Revision: 1}}}},
		},
		Watches: []history.Watch{{ID: 0, Prefix: "k", Events: []history.WatchEvent{
			{Type: history.WatchSynced, Time: now},
			{Type: history.WatchPut, ID: 1, Key: "k", Value: []byte{0, 1, 0xff}, Revision: 1, Stream: "s", Time: now},
			{Type: history.WatchProgress, ID: 1, Time: now},
			{Type: history.WatchError, Code: "unavailable", Error: "gone", Time: now},
			{Type: history.WatchPut, Key: "k", Value: []byte{0, 1, 0xff}, Revision: 1, Time: now},
			{Type: history.WatchSynced, ID: 1, Time: now},
		}}},
	}
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := history.Encode(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	h, err := history.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(h.Ops), 2; got != want {
		t.Fatalf("len(Ops)=%d, want %d", got, want)
	}
	if got, want := string(h.Final.Stream[0].Value), "\x00\x01\xff"; got != want {
		t.Fatalf("value=%q, want %q", got, want)
	}
	if got, want := len(h.Watches[0].Events), 6; got != want {
		t.Fatalf("%d watch events, want %d", got, want)
	}
	r := checker.Check(h)
	if !r.OK() {
		t.Fatalf("sample history has violations:\n%s", r.Summary())
	}
	if got, want := r.WatchEvents, 2; got != want {
		t.Fatalf("%d watch events checked, want %d", got, want)
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"not json", "hello"},
		{"wrong version", `{"version":2,"ops":[]}`},
		{"unknown field", `{"version":1,"ops":[],"extra":1}`},
		{"unknown kind", `{"version":1,"ops":[{"session":0,"index":0,"kind":"cas","outcome":"ok","invoke":"2026-01-01T00:00:00Z","complete":"2026-01-01T00:00:00Z"}]}`},
		{"unknown outcome", `{"version":1,"ops":[{"session":0,"index":0,"kind":"get","outcome":"maybe","invoke":"2026-01-01T00:00:00Z","complete":"2026-01-01T00:00:00Z"}]}`},
		{"index gap", `{"version":1,"ops":[{"session":0,"index":1,"kind":"get","outcome":"ok","invoke":"2026-01-01T00:00:00Z","complete":"2026-01-01T00:00:00Z"}]}`},
		{"unknown watch event", `{"version":1,"ops":[],"watches":[{"id":0,"prefix":"","events":[{"type":"bookmark","time":"2026-01-01T00:00:00Z"}]}]}`},
		{"unknown watch field", `{"version":1,"ops":[],"watches":[{"id":0,"prefix":"","events":[{"type":"synced","at":1,"time":"2026-01-01T00:00:00Z"}]}]}`},
		{"stream gap", `{"version":1,"ops":[],"final":{"stream":[{"seq":2,"kind":"put","key":"k"}],"replicas":[]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := history.Decode(strings.NewReader(tt.in)); !errors.Is(err, history.ErrFormat) {
				t.Fatalf("Decode(%q) error=%v, want ErrFormat", tt.in, err)
			}
		})
	}
}

func TestSnapshotsAt(t *testing.T) {
	s := history.NewSnapshots([]history.Message{
		{Seq: 1, Kind: history.Put, Key: "a", Value: []byte("1")},
		{Seq: 2, Kind: history.Put, Key: "b", Value: []byte("x")},
		{Seq: 3, Kind: history.Delete, Key: "a"},
		{Seq: 4, Kind: history.Put, Key: "a", Value: []byte("4")},
	})
	tests := []struct {
		at      uint64
		ok      bool
		rev     uint64
		deleted bool
	}{{0, false, 0, false}, {1, true, 1, false}, {2, true, 1, false}, {3, true, 3, true}, {4, true, 4, false}, {9, true, 4, false}}
	for _, tt := range tests {
		rec, ok := s.At("a", tt.at)
		if ok != tt.ok || rec.Revision != tt.rev || rec.Deleted != tt.deleted {
			t.Fatalf("At(a, %d)=%+v %v, want rev %d deleted %v ok %v", tt.at, rec, ok, tt.rev, tt.deleted, tt.ok)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to Decode: it never panics, and what it
// accepts re-encodes and checks without panicking.
func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	if err := history.Encode(&buf, sample()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"version":1,"ops":[]}`))
	f.Add([]byte(`{"version":1,"ops":[],"final":{"stream":[{"seq":1,"kind":"put","key":"p/a","value":"eA=="}],"replicas":[]},"watches":[{"id":0,"prefix":"p/","events":[{"type":"put","key":"p/a","revision":1,"time":"2026-01-01T00:00:00Z"},{"type":"synced","id":1,"time":"2026-01-01T00:00:00Z"},{"type":"delete","id":3,"key":"p/a","revision":3,"more":true,"time":"2026-01-01T00:00:00Z"}]}]}`))
	f.Add([]byte(`{"version":1,"ops":[],"final":{"stream":[],"replicas":[{"id":"r","applied":5,"records":[{"key":"a","revision":9,"deleted":true}]}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := history.Decode(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, history.ErrFormat) {
				t.Fatalf("error %v does not match ErrFormat", err)
			}
			return
		}
		_ = checker.Check(h)
		var out bytes.Buffer
		if err := history.Encode(&out, h); err != nil {
			t.Fatal(err)
		}
		if _, err := history.Decode(&out); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

// TestFoldExpiry folds keys with a time to live: a key expires at the first
// message at or after its expiry, as a tombstone at that message's
// sequence; a later put without one clears it; a skipped or marker message
// expires keys too.
func TestFoldExpiry(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	s := history.NewSnapshots([]history.Message{
		{Seq: 1, Kind: history.Put, Key: "a", Value: []byte("1"), Time: at(0), TTL: 2 * time.Second},
		{Seq: 2, Kind: history.Put, Key: "b", Value: []byte("x"), Time: at(0.5), TTL: 2 * time.Second},
		{Seq: 3, Kind: history.Put, Key: "b", Value: []byte("y"), Time: at(1)}, // clears b's TTL
		{Seq: 4, Kind: history.Put, Key: "c", Value: []byte("z"), Time: at(1.9)},
		{Seq: 5, Kind: history.Tick, Time: at(2)}, // a expires here, at its expiry exactly
		{Seq: 6, Kind: history.Marker, Key: "", Time: at(3)},
	})
	for _, tt := range []struct {
		key     string
		at      uint64
		rev     uint64
		deleted bool
	}{{"a", 4, 1, false}, {"a", 5, 5, true}, {"a", 6, 5, true}, {"b", 6, 3, false}, {"c", 6, 4, false}} {
		rec, ok := s.At(tt.key, tt.at)
		if !ok || rec.Revision != tt.rev || rec.Deleted != tt.deleted {
			t.Errorf("At(%s, %d)=%+v %v, want rev %d deleted %v", tt.key, tt.at, rec, ok, tt.rev, tt.deleted)
		}
	}
	if rec, ok := s.WrittenAt("a", 5); !ok || !rec.Deleted {
		t.Errorf("WrittenAt(a, 5)=%+v %v, want the expiry's tombstone", rec, ok)
	}
	if _, ok := s.WrittenAt("c", 5); ok {
		t.Error("WrittenAt(c, 5): c was not written at 5")
	}
	if s.Final.Expired != 1 {
		t.Errorf("Expired=%d, want 1", s.Final.Expired)
	}
	if rec := s.Final.Keys["a"]; !rec.Deleted || rec.Revision != 5 {
		t.Errorf("final a=%+v, want expired at 5", rec)
	}
}

// TestFoldExpiryBound folds more due expiries than one message processes:
// the rest expire at the following messages, in (expiry, key) order.
func TestFoldExpiryBound(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var msgs []history.Message
	n := history.MaxExpiries + 10
	for i := range n {
		msgs = append(msgs, history.Message{Seq: uint64(i + 1), Kind: history.Put, Key: fmt.Sprintf("k%04d", i),
			Value: []byte("v"), Time: t0, TTL: time.Second})
	}
	msgs = append(msgs,
		history.Message{Seq: uint64(n + 1), Kind: history.Tick, Time: t0.Add(time.Minute)},
		history.Message{Seq: uint64(n + 2), Kind: history.Tick, Time: t0.Add(2 * time.Minute)})
	s := history.NewSnapshots(msgs)
	first := s.Final.Keys[fmt.Sprintf("k%04d", history.MaxExpiries-1)]
	rest := s.Final.Keys[fmt.Sprintf("k%04d", history.MaxExpiries)]
	if first.Revision != uint64(n+1) || rest.Revision != uint64(n+2) || !first.Deleted || !rest.Deleted {
		t.Fatalf("last of the first %d expired at %d, the next at %d; want %d and %d", history.MaxExpiries, first.Revision, rest.Revision, n+1, n+2)
	}
}
