package writer

import (
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/wire"

	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxPendingAcks bounds the publishes of a writer that wait for their ack
// at once; more wait for a slot.
const maxPendingAcks = 4096

// Group commit. A flight is what the publisher has sent and waits for: one
// atomic batch, or messages published one by one. While every flight is in
// the air, the callers that come queue, and the next flight takes them all.
const (
	// groupFlights bounds the flights in the air at once. Two keep the
	// server busy (one is stored while the next gathers) and leave the
	// batches large.
	groupFlights = 2
	// DefaultGroupCommitMin is the smallest flight sent as an atomic batch.
	// An R1 file store stages an atomic batch in a store of its own, which
	// costs about as much as a few fsyncs, so a flight of a few messages
	// is cheaper one by one.
	DefaultGroupCommitMin = 8
	// maxGroupBytes bounds the bytes of one batch (the server's
	// stream.MaxAtomicBatch bounds its messages): a batch is staged whole
	// by the server and, on a cluster, replicated in one proposal.
	maxGroupBytes = 4 << 20
)

// publisher publishes messages to JetStream for many callers at once, and
// answers each caller as a synchronous publish would: with its own ack or
// error. Instead of one request and reply per message, one goroutine, running
// while there is work, hands every queued message to JetStream without
// waiting for its ack, so that many go to the server in one socket write;
// each caller waits for its own ack. A caller alone sends its message itself.
//
// With group commit, the messages queued at the same moment go to the
// stream as one JetStream atomic batch, which a server that syncs every
// write stores with one fsync instead of one each. Every message keeps its
// own message id and expectations (Nats-Expected-*), which the server
// checks at the commit; a batch that it refuses, or whose outcome is
// unknown, is published again message by message, and the message ids keep
// any message from being stored twice, so each caller gets the outcome its
// message would have had on its own.
type publisher struct {
	js         jetstream.JetStream // the publisher's own: async acks
	connClosed chan struct{}       // closed once the connection has closed
	ackTimeout time.Duration

	callers atomic.Int64 // callers in publish

	mu      sync.Mutex
	queue   []*publication
	running bool // a goroutine is sending the queue

	flights  chan struct{} // group commit: the flights in the air; nil without
	minGroup int           // group commit: the smallest flight sent as a batch
	direct   bool          // a caller alone sends its message itself
	metrics  *writeMetrics
}

// publication is one message to send.
type publication struct {
	ctx  context.Context // the caller's: it waits no longer
	msg  *nats.Msg
	sent chan sent // receives the outcome of sending msg, when queued; buffered
}

// sent is the outcome of sending a message: the future of its ack, its ack
// when it is already known (group commit), or why it could not be sent.
type sent struct {
	future jetstream.PubAckFuture
	ack    *jetstream.PubAck
	err    error
}

// newPublisher returns a publisher on nc whose acks time out after
// ackTimeout, so that an ack that never comes does not hold a slot; group
// turns on group commit, for flights of at least minGroup messages, whose
// batches m counts.
func newPublisher(nc *nats.Conn, ackTimeout time.Duration, group bool, minGroup int, m *writeMetrics) *publisher {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxPendingAcks), jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		panic(fmt.Sprintf("writer: JetStream publisher: %v", err)) // only invalid options fail
	}
	p := &publisher{js: js, connClosed: make(chan struct{}), ackTimeout: ackTimeout, minGroup: minGroup, direct: true, metrics: m}
	if group {
		p.flights = make(chan struct{}, groupFlights)
	}
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

// publish publishes msg, whose headers say its message id and
// expectations, and returns its ack, or the error of the publish. It does
// not change msg. When ctx ends first it returns ctx.Err(), and msg may
// still be stored: like a synchronous publish whose answer did not come in
// time.
func (p *publisher) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	pub := &publication{ctx: ctx, msg: msg}
	alone := p.callers.Add(1) == 1
	defer p.callers.Add(-1)
	var s sent
	if alone && p.direct && p.idle() {
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
	return p.await(ctx, s)
}

// idle reports whether no flight is in the air: always true without group
// commit.
func (p *publisher) idle() bool { return len(p.flights) == 0 }

// await returns the ack of s once it is known.
func (p *publisher) await(ctx context.Context, s sent) (*jetstream.PubAck, error) {
	if s.err != nil || s.future == nil {
		return s.ack, s.err
	}
	select {
	case ack := <-s.future.Ok():
		return ack, nil
	case err := <-s.future.Err():
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
		if p.flights != nil {
			// Wait for a flight to land first: callers queue meanwhile.
			p.flights <- struct{}{}
		}
		p.mu.Lock()
		batch, p.queue = p.queue, batch[:0]
		if len(batch) == 0 {
			p.running = false
			p.mu.Unlock()
			if p.flights != nil {
				<-p.flights
			}
			return
		}
		p.mu.Unlock()
		if p.flights != nil {
			go p.fly(batch)
			batch = nil // the flight owns it
			continue
		}
		for i, pub := range batch {
			pub.sent <- p.send(pub)
			batch[i] = nil
		}
	}
}

// fly sends the messages of pubs, as atomic batches when there are enough
// of them, answers each caller once its outcome is known, and then lands:
// it frees its place among the flights.
func (p *publisher) fly(pubs []*publication) {
	defer func() { <-p.flights }()
	live := pubs[:0]
	for _, pub := range pubs {
		if err := pub.ctx.Err(); err != nil {
			pub.sent <- sent{err: err} // not sent: its caller has gone
			continue
		}
		live = append(live, pub)
	}
	for len(live) >= p.minGroup {
		n := groupSize(live)
		if n < p.minGroup || !p.commit(live[:n]) {
			break
		}
		live = live[n:]
	}
	if len(live) == 0 {
		return
	}
	// One by one, each waiting for its ack here, so that the flight lands
	// only when all of them are stored.
	out := make([]sent, len(live))
	for i, pub := range live {
		out[i] = p.send(pub)
	}
	for i, pub := range live {
		ack, err := p.await(context.Background(), out[i]) // acks time out (ackTimeout)
		pub.sent <- sent{ack: ack, err: err}
	}
}

// groupSize returns how many of pubs, from the first, go in one batch: at
// most stream.MaxAtomicBatch messages and maxGroupBytes bytes, and at
// least one.
func groupSize(pubs []*publication) int {
	size := 0
	for i, pub := range pubs {
		size += len(pub.msg.Data) + len(pub.msg.Subject)
		for k, vs := range pub.msg.Header {
			for _, v := range vs {
				size += len(k) + len(v)
			}
		}
		if i == stream.MaxAtomicBatch || (i > 0 && size > maxGroupBytes) {
			return i
		}
	}
	return len(pubs)
}

// commit publishes the messages of pubs as one atomic batch and answers
// their callers. It returns false, having answered none, when the server
// refused the batch (nothing of it is stored) or its outcome is unknown:
// the messages must then be published one by one.
func (p *publisher) commit(pubs []*publication) bool {
	msgs := make([]*nats.Msg, len(pubs))
	for i, pub := range pubs {
		// A copy: the batch headers must not reach the caller's message,
		// which a retry may be sending at the same time.
		msgs[i] = &nats.Msg{Subject: pub.msg.Subject, Data: pub.msg.Data, Header: maps.Clone(pub.msg.Header)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.ackTimeout)
	defer cancel()
	ack, err := stream.CommitBatch(ctx, p.js.Conn(), msgs)
	var refused *jetstream.APIError
	switch {
	case errors.As(err, &refused):
		p.metrics.batch(BatchRefused, len(msgs))
		return false
	case err != nil:
		p.metrics.batch(BatchUnknown, len(msgs))
		return false
	}
	p.metrics.batch(BatchCommitted, len(msgs))
	first := ack.Seq - uint64(len(pubs)) + 1
	for i, pub := range pubs {
		pub.sent <- sent{ack: &jetstream.PubAck{Stream: ack.Stream, Sequence: first + uint64(i)}}
	}
	return true
}

// noRetries turns off JetStream's own retries of a publish that found no
// responders: the writer's retry does them, with backoff, within the
// write's time budget. It sets no header.
var noRetries = jetstream.WithRetryAttempts(0)

// send hands pub's message to JetStream, waiting while maxPendingAcks
// publishes wait for their acks. A message whose caller has stopped waiting
// is not sent.
func (p *publisher) send(pub *publication) sent {
	nc := p.js.Conn()
	for {
		if err := pub.ctx.Err(); err != nil {
			return sent{err: err}
		}
		future, err := p.js.PublishMsgAsync(pub.msg, noRetries)
		switch {
		case errors.Is(err, jetstream.ErrTooManyStalledMsgs) && !nc.IsClosed():
			continue // no slot yet: wait for one while the caller waits
		case err != nil && !wire.Closed(err) && (nc.IsClosed() || nc.IsDraining()):
			// The first publish subscribes to the acks, and on a closed
			// or draining connection that fails with an error that does
			// not say so.
			err = fmt.Errorf("%w: %v", nats.ErrConnectionClosed, err)
		}
		return sent{future: future, err: err}
	}
}
