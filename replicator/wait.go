package replicator

import (
	"container/heap"
	"context"
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

// WaitApplied returns as soon as the applied sequence is at least seq. It
// returns ctx.Err() when ctx ends first, and Err() at once if the replicator
// has stopped (a gap, Close, Run returned) before reaching seq.
func (r *Replicator) WaitApplied(ctx context.Context, seq uint64) error {
	if r.applied.Load() >= seq {
		return nil
	}
	r.mu.Lock()
	if r.applied.Load() >= seq {
		r.mu.Unlock()
		return nil
	}
	if r.err != nil {
		err := r.err
		r.mu.Unlock()
		return err
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
	}
	if r.applied.Load() >= seq {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.Err()
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
