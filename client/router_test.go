package client

import (
	"testing"
	"time"
)

func TestRouterPick(t *testing.T) {
	now := time.Unix(1000, 0)
	newRouter := func() *Router {
		r := &Router{replicas: map[string]*routeState{}, now: func() time.Time { return now }}
		r.Observe("fast", 100, 1000, true)
		r.Observe("slow", 90, 10, true)
		r.Observe("behind", 50, 2000, true)
		r.Observe("starting", 500, 1000, false)
		return r
	}
	for _, tt := range []struct {
		name    string
		seq     uint64
		exclude string
		want    []string
	}{
		{"reached by several: any of them", 80, "", []string{"fast", "slow"}},
		{"reached by one", 95, "", []string{"fast"}},
		{"reached by none: first expected", 120, "", []string{"fast"}},
		{"high rate wins when far", 5000, "", []string{"behind"}},
		{"excluded", 85, "fast", []string{"slow"}},
		{"not ready is never picked", 400, "", []string{"behind"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter()
			for range 20 {
				got := r.Pick(tt.seq, tt.exclude)
				ok := false
				for _, w := range tt.want {
					ok = ok || got == w
				}
				if !ok {
					t.Fatalf("Pick(%d, %q)=%q, want one of %v", tt.seq, tt.exclude, got, tt.want)
				}
			}
		})
	}
	r := newRouter()
	if got, want := r.Freshest(""), "fast"; got != want {
		t.Fatalf("Freshest()=%q, want %q", got, want)
	}
	if got, want := r.Freshest("fast"), "slow"; got != want {
		t.Fatalf("Freshest(not fast)=%q, want %q", got, want)
	}
	// Silence makes a replica unroutable.
	now = now.Add(2 * DefaultStatusTTL)
	if got := r.Pick(0, ""); got != "" {
		t.Fatalf("Pick after silence=%q, want none", got)
	}
	// Applied only moves forward.
	r.Observe("fast", 10, -1, true)
	if got, want := r.replicas["fast"].applied, uint64(100); got != want {
		t.Fatalf("applied=%d, want %d", got, want)
	}
}
