package wire_test

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestDecodeSnapshotRequest(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		ok       bool
	}{
		{"good", `{"stream":"3f9a0c21b7d4","replica":"r2","need":41}`, true},
		{"no need", `{"stream":"3f9a0c21b7d4","replica":"r2"}`, true},
		{"no stream", `{"replica":"r2","need":41}`, false},
		{"no replica", `{"stream":"3f9a0c21b7d4","need":41}`, false},
		{"bad replica", `{"stream":"3f9a0c21b7d4","replica":"a.b","need":41}`, false},
		{"negative need", `{"stream":"3f9a0c21b7d4","replica":"r2","need":-1}`, false},
		{"not json", `need 41`, false},
		{"empty", ``, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wire.DecodeSnapshotRequest([]byte(tt.in))
			if got, want := err == nil, tt.ok; got != want {
				t.Fatalf("wire.DecodeSnapshotRequest(%s)=%v, want ok %v", tt.in, err, want)
			}
			if err != nil && !errors.Is(err, api.ErrInvalidRequest) {
				t.Fatalf("wire.DecodeSnapshotRequest(%s)=%v, want ErrInvalidRequest", tt.in, err)
			}
		})
	}
}

func TestDecodeSnapshotReply(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		ok       bool
	}{
		{"good", `{"name":"r1-41-1","stream":"3f9a0c21b7d4","applied":41,"replica":"r1","size":100}`, true},
		{"no name", `{"stream":"3f9a0c21b7d4","applied":41}`, false},
		{"long name", `{"name":"` + strings.Repeat("n", wire.MaxSnapshotName+1) + `","stream":"s"}`, false},
		{"no stream", `{"name":"r1-41-1","applied":41}`, false},
		{"not json", `[]`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wire.DecodeSnapshotReply([]byte(tt.in))
			if got, want := err == nil, tt.ok; got != want {
				t.Fatalf("wire.DecodeSnapshotReply(%s)=%v, want ok %v", tt.in, err, want)
			}
		})
	}
}

// FuzzDecodeSnapshotRequest checks that the request decoder never panics
// and that what it accepts is a valid request that survives a round trip.
func FuzzDecodeSnapshotRequest(f *testing.F) {
	f.Add([]byte(`{"stream":"3f9a0c21b7d4","replica":"r2","need":41}`))
	f.Add([]byte(`{"stream":"","replica":"","need":0}`))
	f.Add([]byte(`{"stream":"x","replica":"r2","need":18446744073709551615}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := wire.DecodeSnapshotRequest(b)
		if err != nil {
			return
		}
		if q.Stream == "" || !api.ValidID(q.Replica) {
			t.Fatalf("accepted %+v", q)
		}
		again, _ := json.Marshal(q)
		if q2, err := wire.DecodeSnapshotRequest(again); err != nil || q2 != q {
			t.Fatalf("round trip of %+v: %+v, %v", q, q2, err)
		}
	})
}

// FuzzDecodeSnapshotReply checks that the reply decoder never panics and
// that what it accepts names an object within bounds.
func FuzzDecodeSnapshotReply(f *testing.F) {
	f.Add([]byte(`{"name":"r1-41-1","stream":"3f9a0c21b7d4","applied":41,"replica":"r1","size":100}`))
	f.Add([]byte(`{"name":"","stream":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := wire.DecodeSnapshotReply(b)
		if err != nil {
			return
		}
		if rep.Name == "" || len(rep.Name) > wire.MaxSnapshotName || rep.Stream == "" {
			t.Fatalf("accepted %+v", rep)
		}
	})
}

// FuzzBaseMeta: a stored snapshot's metadata, read back from the object
// store, either gives the applied sequence it names or an error.
func FuzzBaseMeta(f *testing.F) {
	f.Add("42", "2026-12-01T10:00:00Z")
	f.Add("-1", "")
	f.Add("", "yesterday")
	f.Fuzz(func(t *testing.T, applied, created string) {
		n, _, err := wire.BaseMeta(map[string]string{wire.MetaApplied: applied, wire.MetaCreated: created})
		if err != nil {
			return
		}
		if want, perr := strconv.ParseUint(applied, 10, 64); perr != nil || n != want {
			t.Fatalf("BaseMeta(%q)=%d, want %d (%v)", applied, n, want, perr)
		}
	})
}
