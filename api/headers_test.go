package api_test

import (
	"errors"
	"net/http"
	"testing"

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
