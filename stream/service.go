package stream

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// DefaultMaxInFlight bounds the requests one service handles at once.
const DefaultMaxInFlight = 4096

// Respond sends a service reply built by one of the Encode*Reply functions,
// as a micro error reply when err is not nil (so micro stats count it).
func Respond(req micro.Request, h nats.Header, body []byte, err error) error {
	if err != nil {
		return req.Error(h.Get(HeaderErrorCode), h.Get(HeaderError), body, micro.WithHeaders(micro.Headers(h)))
	}
	return req.Respond(body, micro.WithHeaders(micro.Headers(h)))
}

// Pool runs micro request handlers concurrently: micro calls an endpoint's
// handler on one goroutine, so a handler that waits (for a token, for a
// publish ack) would hold up every other request of that endpoint. Pool
// bounds the requests in flight and waits for them on Close.
type Pool struct {
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup
}

// NewPool returns a pool of at most max concurrent handlers (DefaultMaxInFlight
// when max <= 0) whose contexts derive from ctx.
func NewPool(ctx context.Context, max int) *Pool {
	if max <= 0 {
		max = DefaultMaxInFlight
	}
	ctx, cancel := context.WithCancel(ctx)
	return &Pool{ctx: ctx, cancel: cancel, sem: make(chan struct{}, max)}
}

// Handler wraps fn so that each request runs on its own goroutine, once a
// slot is free.
func (p *Pool) Handler(fn func(ctx context.Context, req micro.Request)) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		select {
		case p.sem <- struct{}{}:
		case <-p.ctx.Done():
			return
		}
		p.wg.Add(1)
		go func() {
			defer func() { <-p.sem; p.wg.Done() }()
			fn(p.ctx, req)
		}()
	})
}

// Close cancels the handlers' context and waits for them to return.
func (p *Pool) Close() {
	p.cancel()
	p.wg.Wait()
}
