package replicator

import (
	"container/heap"
	"context"
	"errors"
)

// waiter is one WaitApplied call, woken by closing ch once applied reaches
// seq or the replicator stops.
type waiter struct {
	seq   uint64
	ch    chan struct{}
	index int // position in the heap; -1 once removed
}

// waitHeap is a min-heap of waiters by seq, so that a commit wakes exactly
// the waiters it satisfies.
type waitHeap []*waiter

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *waitHeap) Push(x any) {
	w := x.(*waiter)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *waitHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.index = -1
	return w
}

// Applied returns the last stream sequence applied and committed.
func (r *Replicator) Applied() uint64 { return r.applied.Load() }

// WaitApplied returns as soon as the applied sequence is at least seq and
// the replica serves. It returns ctx.Err() when ctx ends first, and Err()
// at once if the replicator has stopped (a gap, Close, Run returned) before
// reaching seq or holds a state that must not be served (ErrResetting and
// the reasons it wraps). While the replica is held for a passing reason
// (ErrUnverified, ErrDiskFull) it waits.
func (r *Replicator) WaitApplied(ctx context.Context, seq uint64) error {
	if r.applied.Load() >= seq && !r.holding.Load() {
		return nil
	}
	for {
		r.mu.Lock()
		if r.err != nil || r.held != nil && wrongState(r.held) {
			err := r.stopReason()
			r.mu.Unlock()
			return err
		}
		if r.held != nil {
			ch := r.holdCh
			r.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if r.applied.Load() >= seq {
			r.mu.Unlock()
			return nil
		}
		w := &waiter{seq: seq, ch: make(chan struct{})}
		heap.Push(&r.waiters, w)
		r.mu.Unlock()

		select {
		case <-w.ch:
		case <-ctx.Done():
			r.mu.Lock()
			if w.index >= 0 {
				heap.Remove(&r.waiters, w.index)
			}
			r.mu.Unlock()
			return ctx.Err()
		}
	}
}

// advance publishes a newly committed applied sequence and wakes the waiters
// it satisfies.
func (r *Replicator) advance(seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied.Store(seq)
	for len(r.waiters) > 0 && r.waiters[0].seq <= seq {
		close(heap.Pop(&r.waiters).(*waiter).ch)
	}
	if r.targetSet && seq >= r.target && !r.isReady() {
		close(r.readyCh)
	}
	if r.verified && r.targetSet && seq >= r.target && r.held != nil && errors.Is(r.held, ErrResetting) {
		r.log.Info().Uint64("applied", seq).Msg("rebuilt; serving again")
		r.clearHold()
	}
}

// stopReason is why the replicator does not serve: r.err, else the reason
// it holds, else nil. r.mu is held.
func (r *Replicator) stopReason() error {
	if r.err != nil {
		return r.err
	}
	return r.held
}

// hold stops serving for a while, with err as the reason, and fails every
// waiter: a waiting token read fails rather than be served from a state
// that may be wrong. A reason that the state must be rebuilt is not
// replaced by ErrUnverified. It reports whether the replica was serving.
func (r *Replicator) hold(err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	was := r.held == nil
	if was || !errors.Is(err, ErrUnverified) {
		r.held = err
		r.wrong.Store(wrongState(err))
		r.verified = r.verified && !wrongState(err)
		if !was {
			close(r.holdCh) // the reason changed: tell those who wait
		}
		r.holdCh = make(chan struct{})
		r.holding.Store(true)
	}
	for _, w := range r.waiters {
		w.index = -1
		close(w.ch)
	}
	r.waiters = nil
	return was
}

// wrongState reports whether a hold for err means the state itself must
// not be read: Get and Scan refuse it too, not only the reader (which asks
// Err first).
func wrongState(err error) bool {
	return !errors.Is(err, ErrUnverified) && !errors.Is(err, ErrDiskFull)
}

// wrongReason returns why the state must not be read, or nil; it reads
// the flag first so that the common case takes no lock.
func (r *Replicator) wrongReason() error {
	if !r.wrong.Load() {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held != nil && wrongState(r.held) {
		return r.held
	}
	return nil
}

// release serves again if the replica is held for a reason that wraps kind
// (a rebuild ends only in advance, once caught up).
func (r *Replicator) release(kind error) {
	if !r.holding.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held != nil && errors.Is(r.held, kind) && !errors.Is(r.held, ErrResetting) {
		if errors.Is(kind, ErrUnverified) {
			r.log.Info().Uint64("applied", r.Applied()).Msg("history verified; serving again")
		}
		r.clearHold()
	}
}

func (r *Replicator) clearHold() {
	r.held = nil
	r.holding.Store(false)
	r.wrong.Store(false)
	close(r.holdCh)
}

// fail records why the replicator stopped (the first reason wins) and wakes
// every waiter so that it fails at once.
func (r *Replicator) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	r.err = err
	close(r.stopCh)
	for _, w := range r.waiters {
		w.index = -1
		close(w.ch)
	}
	r.waiters = nil
}

// Waiting returns how many WaitApplied calls wait for a sequence not yet
// applied, for tests and status.
func (r *Replicator) Waiting() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waiters)
}
