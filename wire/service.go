package wire

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Pool defaults.
const (
	// DefaultMaxInFlight bounds the requests one service handles at once.
	DefaultMaxInFlight = 4096
	// DefaultDrainGrace is how long Close lets requests in flight finish
	// before it cancels them.
	DefaultDrainGrace = 5 * time.Second
)

// Respond sends a service reply built by one of the Encode*Reply functions;
// an error reply carries the micro error headers that the encoder set.
// It never calls req.Error: that records the error on the request for
// micro's stats, which micro reads when the handler returns, and a Pool
// handler replies on another goroutine afterwards (a data race).
func Respond(req micro.Request, h nats.Header, body []byte, err error) error {
	if err != nil && h.Get(HeaderErrorCode) == "" {
		h.Set(HeaderErrorCode, api.Code(err))
		h.Set(HeaderError, err.Error())
	}
	return req.Respond(body, micro.WithHeaders(micro.Headers(h)))
}

// RespondUnavailable answers req with ErrUnavailable and message.
func RespondUnavailable(req micro.Request, message string) error {
	err := api.Errorf(api.ErrUnavailable, "%s", message)
	h, body := errorReply(nats.Header{}, err)
	return Respond(req, h, body, err)
}

// Pool runs micro request handlers concurrently: micro calls an endpoint's
// handler on one goroutine, so a handler that waits (for a token, for a
// publish ack) would hold up every other request of that endpoint. Pool
// bounds the requests in flight, refuses new ones once closing, and lets
// those in flight finish on Close.
type Pool struct {
	// Grace is how long Close waits before cancelling requests in flight.
	Grace time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup

	mu     sync.RWMutex
	closed bool
}

// NewPool returns a pool of at most max concurrent handlers (DefaultMaxInFlight
// when max <= 0) whose contexts derive from ctx.
func NewPool(ctx context.Context, max int) *Pool {
	if max <= 0 {
		max = DefaultMaxInFlight
	}
	ctx, cancel := context.WithCancel(ctx)
	return &Pool{Grace: DefaultDrainGrace, ctx: ctx, cancel: cancel, sem: make(chan struct{}, max)}
}

// Go runs fn on its own goroutine once a slot is free. It returns false,
// without running fn, when the pool is closing.
func (p *Pool) Go(fn func(ctx context.Context)) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	select {
	case p.sem <- struct{}{}:
	case <-p.ctx.Done():
		return false
	}
	p.wg.Add(1)
	go func() {
		defer func() { <-p.sem; p.wg.Done() }()
		fn(p.ctx)
	}()
	return true
}

// Do runs fn on the calling goroutine as one of the pool's requests, for a
// request that will not wait: no goroutine is started for it, and Close
// waits for it like the others. It returns false, without running fn, when
// the pool is closing. It does not take a slot: the caller's goroutine is
// what bounds such requests.
func (p *Pool) Do(fn func(ctx context.Context)) bool {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return false
	}
	p.wg.Add(1)
	p.mu.RUnlock()
	defer p.wg.Done()
	fn(p.ctx)
	return true
}

// Handler wraps fn so that each request runs on the pool; a request that
// arrives while the pool closes is answered with ErrUnavailable.
func (p *Pool) Handler(fn func(ctx context.Context, req micro.Request)) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		if !p.Go(func(ctx context.Context) { fn(ctx, req) }) {
			_ = RespondUnavailable(req, "service is stopping")
		}
	})
}

// Close refuses new requests, lets those in flight finish for up to Grace,
// then cancels them and waits until they return. It is idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	t := time.NewTimer(p.Grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	p.cancel()
	<-done
}
