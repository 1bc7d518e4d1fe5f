package api_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/tidemark/tidemark/api"
)

// One parser reads a write's headers for HTTP and NATS alike, and refuses
// what the writer would refuse.
func TestParseWriteHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("tidemark-write-id", "w1") // HTTP canonicalises names
	h.Set("if-match", `"7"`)
	h.Set("tidemark-session", "s1")
	h.Set("tidemark-session-seq", "3")
	var req api.WriteRequest
	if err := api.ParseWriteHeaders(h, &req); err != nil {
		t.Fatal(err)
	}
	want := api.WriteRequest{WriteID: "w1", IfRevision: 7, Session: "s1", SessionSeq: 3}
	if req.WriteID != want.WriteID || req.IfRevision != want.IfRevision || req.Session != want.Session || req.SessionSeq != want.SessionSeq || req.IfAbsent {
		t.Fatalf("got %+v, want %+v", req, want)
	}

	// A NATS header holds the same names as written.
	var nreq api.WriteRequest
	nh := map[string][]string{api.HeaderWriteID: {"w1"}, api.HeaderIfMatch: {"7"}, api.HeaderSession: {"s1"}, api.HeaderSessionSeq: {"3"}}
	if err := api.ParseWriteHeaders(nh, &nreq); err != nil || nreq.WriteID != want.WriteID || nreq.IfRevision != 7 || nreq.Session != "s1" || nreq.SessionSeq != 3 {
		t.Fatalf("got %+v, %v; want %+v", nreq, err, want)
	}

	for name, bad := range map[string]map[string][]string{
		"both conditions":   {api.HeaderIfMatch: {"1"}, api.HeaderIfNoneMatch: {"*"}},
		"if-none-match tag": {api.HeaderIfNoneMatch: {`"3"`}},
		"zero revision":     {api.HeaderIfMatch: {"0"}},
		"session, no seq":   {api.HeaderSession: {"s1"}},
		"seq, no session":   {api.HeaderSessionSeq: {"1"}},
		"bad session":       {api.HeaderSession: {"a.b"}, api.HeaderSessionSeq: {"1"}},
		"control in id":     {api.HeaderWriteID: {"a\x01"}},
		"long id":           {api.HeaderWriteID: {string(make([]byte, api.MaxWriteIDLen+1))}},
	} {
		var req api.WriteRequest
		if err := api.ParseWriteHeaders(bad, &req); !errors.Is(err, api.ErrInvalidRequest) {
			t.Errorf("%s: got %v, want invalid_request", name, err)
		}
	}
}

// Validate holds every rule of a write that needs no server.
func TestWriteRequestValidate(t *testing.T) {
	ok := []api.WriteRequest{
		{Op: api.OpPut, Key: "k", Value: []byte("v")},
		{Op: api.OpDelete, Key: "k", IfRevision: 3},
		{Op: api.OpPut, Key: "k", Session: "s", SessionSeq: 1, WriteID: "w"},
	}
	for _, r := range ok {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := map[string]api.WriteRequest{
		"no key":              {Op: api.OpPut},
		"unknown op":          {Op: "merge", Key: "k"},
		"delete with a value": {Op: api.OpDelete, Key: "k", Value: []byte("v")},
		"delete if absent":    {Op: api.OpDelete, Key: "k", IfAbsent: true},
		"session number 0":    {Op: api.OpPut, Key: "k", Session: "s"},
		"number, no session":  {Op: api.OpPut, Key: "k", SessionSeq: 2},
	}
	for name, r := range bad {
		if err := r.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A put's time to live reads the same from an HTTP header (canonical name)
// and a NATS header (as written); bad values and a TTL on a delete are
// refused.
func TestParseWriteHeadersTTL(t *testing.T) {
	h := http.Header{}
	h.Set(api.HeaderTTL, "1m30s")
	req := api.WriteRequest{Op: api.OpPut, Key: "k"}
	if err := api.ParseWriteHeaders(h, &req); err != nil || req.TTL != 90*time.Second {
		t.Fatalf("HTTP: TTL=%v, %v; want 1m30s", req.TTL, err)
	}
	req = api.WriteRequest{Op: api.OpPut, Key: "k"}
	if err := api.ParseWriteHeaders(map[string][]string{api.HeaderTTL: {"2s"}}, &req); err != nil || req.TTL != 2*time.Second {
		t.Fatalf("NATS: TTL=%v, %v; want 2s", req.TTL, err)
	}
	for _, bad := range []string{"0s", "999ms", "-5s", "30", "soon", "1000000h"} {
		req := api.WriteRequest{Op: api.OpPut, Key: "k"}
		if err := api.ParseWriteHeaders(map[string][]string{api.HeaderTTL: {bad}}, &req); !errors.Is(err, api.ErrInvalidRequest) {
			t.Errorf("TTL %q: got %v, want invalid_request", bad, err)
		}
	}
	del := api.WriteRequest{Op: api.OpDelete, Key: "k"}
	if err := api.ParseWriteHeaders(map[string][]string{api.HeaderTTL: {"5s"}}, &del); !errors.Is(err, api.ErrInvalidRequest) {
		t.Errorf("TTL on a delete: got %v, want invalid_request", err)
	}
	if err := (api.WriteRequest{Op: api.OpDelete, Key: "k", TTL: time.Minute}).Validate(); !errors.Is(err, api.ErrInvalidRequest) {
		t.Errorf("Validate of a delete with a TTL: %v", err)
	}
	if err := (api.WriteRequest{Op: api.OpPut, Key: "k", TTL: time.Millisecond}).Validate(); !errors.Is(err, api.ErrInvalidRequest) {
		t.Errorf("Validate of a TTL below a second: %v", err)
	}
}

func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"30s", "1s", "999ms", "-1s", "1h2m", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := api.ParseTTL(s)
		if err != nil {
			if !errors.Is(err, api.ErrInvalidRequest) {
				t.Fatalf("ParseTTL(%q): error without a code: %v", s, err)
			}
			return
		}
		if s == "" && d != 0 || s != "" && (d < api.MinTTL || d > api.MaxTTL) {
			t.Fatalf("ParseTTL(%q)=%v", s, d)
		}
		if s != "" {
			if again, err := api.ParseTTL(d.String()); err != nil || again != d {
				t.Fatalf("ParseTTL(%q)=%v, again %v, %v", d.String(), d, again, err)
			}
		}
	})
}
