// Package deadline is a context with a deadline whose timer starts only
// when something waits for the context to end, and the contexts of the
// requests made within it. A write whose requests all bound themselves
// (Within) and that nothing else waits on costs one timer, not one per level.
package deadline

import (
	"context"
	"sync"
	"time"
)

// WithTimeout is WithDeadline(parent, time.Now().Add(d)).
func WithTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return WithDeadline(parent, time.Now().Add(d))
}

// WithDeadline returns a context that ends at t, when parent ends, or when
// the returned function is called, like context.WithDeadline; but no timer
// starts until Done is called. When parent ends by t anyway, it returns
// parent itself and a function that does nothing.
func WithDeadline(parent context.Context, t time.Time) (context.Context, context.CancelFunc) {
	if d, ok := parent.Deadline(); ok && !d.After(t) {
		return parent, func() {}
	}
	c := &lazyCtx{parent: parent, deadline: t}
	return c, c.cancel
}

// Within returns the context of one request that must end within d, made
// inside ctx: ctx itself, with a function that does nothing, when ctx ends
// by then anyway, and otherwise a context that ends at that time, when ctx
// ends, or when the returned function is called. A context of WithDeadline
// does not start its timer for it.
func Within(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	t := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && !dl.After(t) {
		return ctx, func() {}
	}
	// The lazy contexts around ctx end after t but for their cancel, which
	// they pass on to the request's: the request's starts from their parent.
	var buf [2]*lazyCtx
	skipped := buf[:0]
	p := ctx
	for {
		l, ok := p.(*lazyCtx)
		if !ok || l.Err() != nil {
			break
		}
		skipped = append(skipped, l)
		p = l.parent
	}
	rctx, cancel := context.WithDeadline(p, t)
	for _, l := range skipped {
		l.onCancel(cancel)
	}
	return rctx, cancel
}

// lazyCtx is the context of WithDeadline.
type lazyCtx struct {
	parent   context.Context
	deadline time.Time

	mu       sync.Mutex
	ctx      context.Context    // the parent with the deadline, once started
	stop     context.CancelFunc // ends ctx
	canceled bool               // cancel was called
	children []context.CancelFunc
}

// Deadline returns the sooner of the context's deadline and its parent's.
func (c *lazyCtx) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

// Done returns a channel closed when the context ends, starting its timer.
func (c *lazyCtx) Done() <-chan struct{} { return c.start().Done() }

// Err returns nil while the context has not ended, and otherwise why.
func (c *lazyCtx) Err() error { return c.current().Err() }

// Value returns the value of the parent for key.
func (c *lazyCtx) Value(key any) any { return c.current().Value(key) }

// current is the context that answers Err and Value: the parent while the
// deadline is ahead and nothing cancelled the context or started its timer.
func (c *lazyCtx) current() context.Context {
	c.mu.Lock()
	ctx, canceled := c.ctx, c.canceled
	c.mu.Unlock()
	switch {
	case ctx != nil:
		return ctx
	case !canceled && time.Now().Before(c.deadline):
		return c.parent
	default:
		return c.start()
	}
}

// start returns the parent with the deadline, making it first if need be.
func (c *lazyCtx) start() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		if c.canceled {
			c.ctx, c.stop = context.WithCancel(c.parent)
			c.stop()
		} else {
			c.ctx, c.stop = context.WithDeadline(c.parent, c.deadline)
		}
	}
	return c.ctx
}

// cancel ends the context and the requests made within it.
func (c *lazyCtx) cancel() {
	c.mu.Lock()
	c.canceled = true
	stop, children := c.stop, c.children
	c.children = nil
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	for _, cancel := range children {
		cancel()
	}
}

// onCancel has cancel called when the context is cancelled, at once if it
// already is.
func (c *lazyCtx) onCancel(cancel context.CancelFunc) {
	c.mu.Lock()
	canceled := c.canceled
	if !canceled {
		c.children = append(c.children, cancel)
	}
	c.mu.Unlock()
	if canceled {
		cancel()
	}
}
