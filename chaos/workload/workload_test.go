package workload

import (
	"github.com/tidemark/tidemark/api"

	"testing"

	"github.com/tidemark/tidemark/chaos/history"
)

// TestOutcomes: a write is a definite failure only when it was rejected
// before it could be stored; a read changes nothing, so only a lost reply
// is indeterminate.
func TestOutcomes(t *testing.T) {
	tests := []struct {
		code        string
		write, read history.Outcome
	}{
		{api.CodeInvalidKey, history.Failed, history.Failed},
		{api.CodeTokenFromFuture, history.Failed, history.Failed},
		{api.CodeOutOfOrder, history.Failed, history.Failed},
		{api.CodeRevisionMismatch, history.Failed, history.Failed},
		{api.CodeWriteIDReused, history.Failed, history.Failed},
		{api.CodeUnavailable, history.Indeterminate, history.Indeterminate},
		{api.CodeInternal, history.Indeterminate, history.Indeterminate},
		{api.CodeTokenWaitTimeout, history.Indeterminate, history.Failed},
		{"", history.Indeterminate, history.Indeterminate},
	}
	for _, tt := range tests {
		if got, want := writeOutcome(tt.code), tt.write; got != want {
			t.Errorf("writeOutcome(%q)=%s, want %s", tt.code, got, want)
		}
		if got, want := readOutcome(tt.code), tt.read; got != want {
			t.Errorf("readOutcome(%q)=%s, want %s", tt.code, got, want)
		}
	}
}

// TestNextIsReproducible: the same seed makes the same operations.
func TestNextIsReproducible(t *testing.T) {
	mk := func() []history.Op {
		cfg := Config{Seed: 3, RunID: "r", SessionOrder: true}
		cfg.setDefaults()
		s := &session{cfg: &cfg, id: 1, rng: newRand(3, 1)}
		var ops []history.Op
		for i := range 50 {
			ops = append(ops, s.next(i))
		}
		return ops
	}
	a, b := mk(), mk()
	for i := range a {
		if a[i].Kind != b[i].Kind || a[i].Key != b[i].Key || string(a[i].Value) != string(b[i].Value) || a[i].SessionSeq != b[i].SessionSeq {
			t.Fatalf("op %d differs: %+v and %+v", i, a[i], b[i])
		}
	}
}
