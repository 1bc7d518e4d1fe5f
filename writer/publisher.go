package writer

import (
	"github.com/tidemark/tidemark/wire"

	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxPendingAcks bounds the publishes of a writer that wait for their ack
// at once; more wait for a slot.
const maxPendingAcks = 4096

// publisher publishes messages to JetStream for many callers at once, and
// answers each caller as a synchronous publish would: with its own ack or
// error. Instead of one request and reply per message, one goroutine, running
// while there is work, hands every queued message to JetStream without
// waiting for its ack, so that many go to the server in one socket write;
// each caller waits for its own ack. A caller alone sends its message itself.
type publisher struct {
	js         jetstream.JetStream // the publisher's own: async acks
	connClosed chan struct{}       // closed once the connection has closed

	callers atomic.Int64 // callers in publish

	mu      sync.Mutex
	queue   []*publication
	running bool // a goroutine is sending the queue
}

// publication is one message to send.
type publication struct {
	ctx  context.Context // the caller's: it waits no longer
	msg  *nats.Msg
	opts []jetstream.PublishOpt
	sent chan sent // receives the outcome of sending msg, when queued; buffered
}

// sent is the outcome of sending a message: the future of its ack, or why it
// could not be sent.
type sent struct {
	ack jetstream.PubAckFuture
	err error
}

// newPublisher returns a publisher on nc whose acks time out after
// ackTimeout, so that an ack that never comes does not hold a slot.
func newPublisher(nc *nats.Conn, ackTimeout time.Duration) *publisher {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxPendingAcks), jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		panic(fmt.Sprintf("writer: JetStream publisher: %v", err)) // only invalid options fail
	}
	p := &publisher{js: js, connClosed: make(chan struct{})}
	// The acks still to come on a connection that closes never come: a
	// synchronous publish fails at once, and so do the callers waiting here.
	closing := nc.StatusChanged(nats.CLOSED)
	if nc.IsClosed() {
		close(p.connClosed)
	} else {
		go func() {
			<-closing
			close(p.connClosed)
		}()
	}
	return p
}

// publish publishes msg with opts and returns its ack, or the error of the
// publish. When ctx ends first it returns ctx.Err(), and msg may still be
// stored: like a synchronous publish whose answer did not come in time.
func (p *publisher) publish(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	pub := &publication{ctx: ctx, msg: msg, opts: opts}
	alone := p.callers.Add(1) == 1
	defer p.callers.Add(-1)
	var s sent
	if alone {
		// Send from this goroutine, which saves a hand-off: there is
		// nothing to batch with.
		s = p.send(pub)
	} else {
		pub.sent = make(chan sent, 1)
		p.enqueue(pub)
		select {
		case s = <-pub.sent:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	select {
	case ack := <-s.ack.Ok():
		return ack, nil
	case err := <-s.ack.Err():
		return nil, err
	case <-p.connClosed:
		return nil, nats.ErrConnectionClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// enqueue queues pub for the publisher's goroutine, starting it if it is not
// running.
func (p *publisher) enqueue(pub *publication) {
	p.mu.Lock()
	p.queue = append(p.queue, pub)
	start := !p.running
	p.running = true
	p.mu.Unlock()
	if start {
		go p.run()
	}
}

// run sends the queued messages until the queue is empty.
func (p *publisher) run() {
	var batch []*publication
	for {
		p.mu.Lock()
		batch, p.queue = p.queue, batch[:0]
		if len(batch) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for i, pub := range batch {
			pub.sent <- p.send(pub)
			batch[i] = nil
		}
	}
}

// send hands pub's message to JetStream, waiting while maxPendingAcks
// publishes wait for their acks. A message whose caller has stopped waiting
// is not sent.
func (p *publisher) send(pub *publication) sent {
	nc := p.js.Conn()
	for {
		if err := pub.ctx.Err(); err != nil {
			return sent{err: err}
		}
		ack, err := p.js.PublishMsgAsync(pub.msg, pub.opts...)
		switch {
		case errors.Is(err, jetstream.ErrTooManyStalledMsgs) && !nc.IsClosed():
			continue // no slot yet: wait for one while the caller waits
		case err != nil && !wire.Closed(err) && (nc.IsClosed() || nc.IsDraining()):
			// The first publish subscribes to the acks, and on a closed
			// or draining connection that fails with an error that does
			// not say so.
			err = fmt.Errorf("%w: %v", nats.ErrConnectionClosed, err)
		}
		return sent{ack, err}
	}
}
