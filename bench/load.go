package bench

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// sample is what one load phase measured.
type sample struct {
	ops      int             // operations that succeeded
	errs     int             // operations that failed
	firstErr error           // the first failure
	elapsed  time.Duration   // wall time of the phase
	lat      []time.Duration // latency of each successful operation, sorted
}

// rate is the successful operations per second.
func (s sample) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.ops) / s.elapsed.Seconds()
}

// pct returns the p-th percentile (0 < p <= 100) of the latencies.
func (s sample) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	i := int(float64(len(s.lat))*p/100+0.5) - 1
	return s.lat[min(max(i, 0), len(s.lat)-1)]
}

// recorder collects one worker's latencies; merge them with merge.
type recorder struct {
	lat      []time.Duration
	errs     int
	firstErr error
}

func (r *recorder) record(d time.Duration, err error) {
	if err != nil {
		r.errs++
		if r.firstErr == nil {
			r.firstErr = err
		}
		return
	}
	r.lat = append(r.lat, d)
}

// merge builds a sample from the recorders of a phase that took elapsed.
func merge(elapsed time.Duration, rs []*recorder) sample {
	s := sample{elapsed: elapsed}
	n := 0
	for _, r := range rs {
		n += len(r.lat)
	}
	s.lat = make([]time.Duration, 0, n)
	for _, r := range rs {
		s.lat = append(s.lat, r.lat...)
		s.errs += r.errs
		if s.firstErr == nil {
			s.firstErr = r.firstErr
		}
	}
	slices.Sort(s.lat)
	s.ops = len(s.lat)
	return s
}

// load says how long a closed-loop phase runs and with how many workers.
type load struct {
	// workers is the number of concurrent callers.
	workers int
	// duration bounds the phase; ops, when > 0, ends it after that many
	// operations, whichever comes first.
	duration time.Duration
	ops      int
}

// op is one operation of a load phase; i numbers the operations of the
// phase from 0.
type op func(ctx context.Context, i int) error

// closedLoop runs fn from l.workers goroutines, each starting its next call
// when the previous one returns, until the duration or the operation count
// is reached or ctx ends, and measures every call.
func closedLoop(ctx context.Context, l load, fn op) sample {
	return closedLoopTimed(ctx, l, timed(fn))
}

// timed is fn measuring itself: from its call to its return.
func timed(fn op) timedOp {
	return func(ctx context.Context, i int) (time.Duration, error) {
		t := time.Now()
		err := fn(ctx, i)
		return time.Since(t), err
	}
}

// closedLoopTimed is closedLoop of an operation that measures itself: it
// records the latency each call reports.
func closedLoopTimed(ctx context.Context, l load, fn timedOp) sample {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if l.duration > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, l.duration)
		defer stop()
	}
	var next atomic.Int64
	rs := make([]*recorder, max(l.workers, 1))
	var wg sync.WaitGroup
	start := time.Now()
	for w := range rs {
		r := &recorder{lat: make([]time.Duration, 0, 1024)}
		rs[w] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if l.ops > 0 && i >= l.ops {
					return
				}
				d, err := fn(ctx, i)
				if err != nil && ctx.Err() != nil {
					return // cut short by the end of the phase
				}
				r.record(d, err)
			}
		}()
	}
	wg.Wait()
	return merge(time.Since(start), rs)
}

// timedOp is an operation that measures itself: it returns the latency to
// record.
type timedOp func(ctx context.Context, i int) (time.Duration, error)

// openLoop issues fn at rate calls per second, each on its own worker (at
// most workers at once), for duration, whatever the latency of earlier
// calls. Calls that find every worker busy are counted as errors. It
// records the latency each call reports.
func openLoop(ctx context.Context, rate float64, workers int, duration time.Duration, fn timedOp) sample {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int, workers)
	rs := make([]*recorder, workers)
	var wg sync.WaitGroup
	for w := range rs {
		r := &recorder{lat: make([]time.Duration, 0, 1024)}
		rs[w] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r.record(fn(ctx, i))
			}
		}()
	}
	late := &recorder{}
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	issued := 0
loop:
	for {
		el := time.Since(start)
		if el >= duration {
			break
		}
		due := int(el.Seconds() * rate)
		for ; issued < due; issued++ {
			select {
			case jobs <- issued:
			default:
				late.record(0, errOverloaded)
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			break loop
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	return merge(time.Since(start), append(rs, late))
}
