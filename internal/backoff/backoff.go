// Package backoff is capped exponential backoff with full jitter, and a
// sleep that ends with its context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff defaults.
const (
	DefaultMin = 50 * time.Millisecond
	DefaultMax = 5 * time.Second
)

// Backoff is capped exponential backoff with full jitter. The zero value is
// ready to use with the defaults.
type Backoff struct {
	// Min is the first delay's upper bound; Max caps every delay.
	Min, Max time.Duration
	n        int
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = DefaultMin
	}
	if hi <= 0 {
		hi = DefaultMax
	}
	d := lo << min(b.n, 20)
	if d > hi || d <= 0 {
		d = hi
	}
	b.n++
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// Reset starts the sequence again.
func (b *Backoff) Reset() { b.n = 0 }

// Wait sleeps for the next delay or until ctx ends.
func (b *Backoff) Wait(ctx context.Context) error { return Sleep(ctx, b.Next()) }

// Sleep waits for d, or until ctx ends and then returns its error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
