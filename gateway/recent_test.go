package gateway

import (
	"testing"
	"time"
)

// TestRecentWait: the wait figures count every read, those that did not
// wait in the first bucket; quantiles fall inside the right buckets and
// never above the largest wait; figures older than RecentWindow age out.
func TestRecentWait(t *testing.T) {
	for _, tc := range []struct {
		name               string
		waits              []time.Duration
		wantP50, wantP99   float64 // milliseconds, within the bucket bounds below
		p50Lo, p50Hi       float64
		p99Lo, p99Hi       float64
		wantReads, wantWtd uint64
	}{
		{name: "none"},
		{name: "no waits", waits: []time.Duration{0, 0, 0}, wantReads: 3},
		{name: "mostly none, one long", waits: append(make([]time.Duration, 99), 2*time.Second),
			p99Lo: 0, p99Hi: 0, wantReads: 100, wantWtd: 1},
		{name: "all around 5ms", waits: []time.Duration{4 * time.Millisecond, 5 * time.Millisecond, 6 * time.Millisecond, 7 * time.Millisecond},
			p50Lo: 3, p50Hi: 7, p99Lo: 3, p99Hi: 7, wantReads: 4, wantWtd: 4},
		{name: "over the last bound", waits: []time.Duration{5 * time.Second, 6 * time.Second},
			p50Lo: 3000, p50Hi: 6000, p99Lo: 3000, p99Hi: 6000, wantReads: 2, wantWtd: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			r := newRecent()
			r.now = c.now
			for _, d := range tc.waits {
				r.waited(d)
			}
			w, _ := r.snapshot()
			if w.Reads != tc.wantReads || w.Waited != tc.wantWtd {
				t.Fatalf("reads=%d waited=%d, want %d %d", w.Reads, w.Waited, tc.wantReads, tc.wantWtd)
			}
			if w.P50Ms < tc.p50Lo || w.P50Ms > tc.p50Hi || w.P99Ms < tc.p99Lo || w.P99Ms > tc.p99Hi {
				t.Fatalf("p50=%v p99=%v, want p50 in [%v,%v], p99 in [%v,%v]", w.P50Ms, w.P99Ms, tc.p50Lo, tc.p50Hi, tc.p99Lo, tc.p99Hi)
			}
			var maxW time.Duration
			for _, d := range tc.waits {
				maxW = max(maxW, d)
			}
			if w.MaxMs != ms(maxW) || w.P99Ms > w.MaxMs {
				t.Fatalf("max=%v p99=%v, want max %v and p99 <= max", w.MaxMs, w.P99Ms, ms(maxW))
			}
			var n uint64
			for _, b := range w.Buckets {
				n += b.Count
			}
			if n != tc.wantReads || len(w.Buckets) != len(waitBounds)+1 || w.Buckets[len(w.Buckets)-1].LeMs != nil {
				t.Fatalf("buckets=%+v", w.Buckets)
			}
			c.advance(RecentWindow + RecentSlot)
			if w, _ := r.snapshot(); w.Reads != 0 || w.MaxMs != 0 {
				t.Fatalf("after the window: reads=%d max=%v, want 0", w.Reads, w.MaxMs)
			}
		})
	}
}

// TestRecentErrors: errors count by code, recent ones age out of the window
// and the totals stay.
func TestRecentErrors(t *testing.T) {
	c := newClock()
	r := newRecent()
	r.now = c.now
	r.errored("invalid_token")
	r.errored("invalid_token")
	c.advance(RecentWindow - RecentSlot)
	r.errored("unavailable")
	_, errs := r.snapshot()
	if len(errs) != 2 || errs[0] != (ErrorCount{Code: "invalid_token", Recent: 2, Total: 2}) || errs[1] != (ErrorCount{Code: "unavailable", Recent: 1, Total: 1}) {
		t.Fatalf("errors=%+v", errs)
	}
	c.advance(2 * RecentSlot)
	_, errs = r.snapshot()
	if errs[0] != (ErrorCount{Code: "invalid_token", Recent: 0, Total: 2}) || errs[1] != (ErrorCount{Code: "unavailable", Recent: 1, Total: 1}) {
		t.Fatalf("errors after the first slot aged out: %+v", errs)
	}
}
