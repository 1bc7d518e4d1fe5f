package gateway

import (
	"math"
	"sort"
	"sync"
	"time"
)

// What the status keeps of the gateway's own observations: the last
// RecentWindow in slots of RecentSlot, so that memory stays bounded and old
// figures age out.
const (
	// RecentSlot is the granularity of the status's recent figures.
	RecentSlot = 10 * time.Second
	// RecentWindow is how far back the status's recent figures reach.
	RecentWindow = 5 * time.Minute
	recentSlots  = int(RecentWindow / RecentSlot)
)

// waitBounds are the upper bounds of the wait histogram's buckets; a last
// bucket holds what is above the largest. The first, 0, counts reads that
// did not wait at all.
var waitBounds = []time.Duration{
	0, 100 * time.Microsecond, 300 * time.Microsecond, time.Millisecond, 3 * time.Millisecond,
	10 * time.Millisecond, 30 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond,
	time.Second, 3 * time.Second,
}

type recentSlot struct {
	n      int64 // the slot's index: its start time over RecentSlot
	waits  [12]uint64
	maxW   time.Duration
	errors map[string]uint64
}

// recent counts the reads' token waits and the errors by code over the last
// RecentWindow, and the errors since the start. It is safe for concurrent use.
type recent struct {
	now func() time.Time

	mu     sync.Mutex
	slots  [recentSlots]recentSlot
	totals map[string]uint64
}

func newRecent() *recent { return &recent{now: time.Now, totals: map[string]uint64{}} }

// slot returns the slot of the current time, clearing it if it held an
// older period. mu is held.
func (r *recent) slot() *recentSlot {
	n := r.now().UnixNano() / int64(RecentSlot)
	s := &r.slots[n%int64(recentSlots)]
	if s.n != n {
		*s = recentSlot{n: n}
	}
	return s
}

func bucketOf(d time.Duration) int {
	return sort.Search(len(waitBounds), func(i int) bool { return d <= waitBounds[i] })
}

// waited records one read's token wait (0 when it did not wait).
func (r *recent) waited(d time.Duration) {
	d = max(d, 0)
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.slot()
	s.waits[bucketOf(d)]++
	s.maxW = max(s.maxW, d)
}

// errored records one error response with its code.
func (r *recent) errored(code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.slot()
	if s.errors == nil {
		s.errors = map[string]uint64{}
	}
	s.errors[code]++
	r.totals[code]++
}

// WaitStatus is the read-your-writes wait the gateway observed over the
// last WindowSeconds: every read it served, those that did not wait
// included.
type WaitStatus struct {
	WindowSeconds float64 `json:"window_seconds"`
	Reads         uint64  `json:"reads"`
	// Waited counts the reads that waited for a replica at all.
	Waited uint64 `json:"waited"`
	// P50Ms, P99Ms and MaxMs are in milliseconds; quantiles are
	// interpolated within the histogram's buckets.
	P50Ms   float64      `json:"p50_ms"`
	P99Ms   float64      `json:"p99_ms"`
	MaxMs   float64      `json:"max_ms"`
	Buckets []WaitBucket `json:"buckets"`
}

// WaitBucket is one bar of the wait histogram: the reads that waited more
// than the previous bucket's bound and at most LeMs milliseconds (LeMs is
// null for the last bucket, which has no bound).
type WaitBucket struct {
	LeMs  *float64 `json:"le_ms"`
	Count uint64   `json:"count"`
}

// ErrorCount is how many error responses of one code the gateway sent.
type ErrorCount struct {
	Code string `json:"code"`
	// Recent is over the last RecentWindow; Total since the gateway started.
	Recent uint64 `json:"recent"`
	Total  uint64 `json:"total"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// snapshot returns the wait figures and the error counts, by code.
func (r *recent) snapshot() (WaitStatus, []ErrorCount) {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := r.now().UnixNano()/int64(RecentSlot) - int64(recentSlots) + 1
	var (
		counts [12]uint64
		maxW   time.Duration
		errs   = map[string]uint64{}
	)
	for i := range r.slots {
		s := &r.slots[i]
		if s.n < first {
			continue
		}
		for b, c := range s.waits {
			counts[b] += c
		}
		maxW = max(maxW, s.maxW)
		for code, c := range s.errors {
			errs[code] += c
		}
	}
	w := WaitStatus{WindowSeconds: RecentWindow.Seconds(), MaxMs: ms(maxW)}
	for b, c := range counts {
		w.Reads += c
		if b > 0 {
			w.Waited += c
		}
		wb := WaitBucket{Count: c}
		if b < len(waitBounds) {
			le := ms(waitBounds[b])
			wb.LeMs = &le
		}
		w.Buckets = append(w.Buckets, wb)
	}
	w.P50Ms = quantile(counts[:], w.Reads, 0.5, maxW)
	w.P99Ms = quantile(counts[:], w.Reads, 0.99, maxW)
	var out []ErrorCount
	for code, total := range r.totals {
		out = append(out, ErrorCount{Code: code, Recent: errs[code], Total: total})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return w, out
}

// quantile estimates the q-quantile in milliseconds of n observations
// counted in the buckets of waitBounds, interpolating linearly within the
// bucket it falls in; the open last bucket reaches to the largest
// observation, and no estimate exceeds it.
func quantile(counts []uint64, n uint64, q float64, maxW time.Duration) float64 {
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	var cum float64
	for b, c := range counts {
		if c == 0 || cum+float64(c) < rank {
			cum += float64(c)
			continue
		}
		if b == 0 {
			return 0
		}
		lo, hi := waitBounds[b-1], maxW
		if b < len(waitBounds) {
			hi = min(waitBounds[b], maxW)
		}
		frac := (rank - cum) / float64(c)
		return math.Max(0, ms(lo)+frac*(ms(hi)-ms(lo)))
	}
	return ms(maxW)
}
