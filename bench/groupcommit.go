package bench

import (
	"context"
	"errors"

	"github.com/tidemark/tidemark/stream"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// groupCommitter publishes the messages of concurrent callers together: a
// caller's message joins the batch being gathered while earlier batches
// are in flight, and each batch is one JetStream atomic batch, stored with
// one fsync when the server syncs every write. It is the technique the
// writer's group commit uses, applied to raw messages, so that the report
// shows what it can reach on the same server.
type groupCommitter struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	maxBatch int
	minBatch int // smaller batches are published message by message
	in       chan gcReq
	sem      chan struct{} // batches in flight
}

type gcReq struct {
	ctx  context.Context
	msg  *nats.Msg
	done chan gcResult
}

type gcResult struct {
	seq uint64
	err error
}

func newGroupCommitter(nc *nats.Conn, js jetstream.JetStream, inflight int) *groupCommitter {
	return &groupCommitter{nc: nc, js: js, maxBatch: stream.MaxAtomicBatch, minBatch: 4,
		in: make(chan gcReq, stream.MaxAtomicBatch), sem: make(chan struct{}, inflight)}
}

// run gathers and publishes batches until ctx ends.
func (g *groupCommitter) run(ctx context.Context) {
	batch := make([]gcReq, 0, g.maxBatch)
	for {
		// Wait for a free slot first: requests gather while batches fly.
		select {
		case g.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		select {
		case r := <-g.in:
			batch = append(batch[:0], r)
		case <-ctx.Done():
			return
		}
	drain:
		for len(batch) < g.maxBatch {
			select {
			case r := <-g.in:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		b := append([]gcReq(nil), batch...)
		go func() {
			defer func() { <-g.sem }()
			g.publish(ctx, b)
		}()
	}
}

// publish stores b as one atomic batch, or message by message when it is
// small or the batch is refused (a duplicate message id, say), and answers
// every caller.
func (g *groupCommitter) publish(ctx context.Context, b []gcReq) {
	if len(b) >= g.minBatch {
		msgs := make([]*nats.Msg, len(b))
		for i, r := range b {
			msgs[i] = r.msg
		}
		last, err := stream.PublishBatch(ctx, g.nc, msgs)
		if err == nil {
			first := last - uint64(len(b)) + 1
			for i, r := range b {
				r.done <- gcResult{seq: first + uint64(i)}
			}
			return
		}
		for _, m := range msgs {
			stream.UnbatchMsg(m)
		}
	}
	for _, r := range b {
		go func() {
			ack, err := g.js.PublishMsg(r.ctx, r.msg)
			if err != nil {
				r.done <- gcResult{err: err}
				return
			}
			r.done <- gcResult{seq: ack.Sequence}
		}()
	}
}

var errStopped = errors.New("group committer stopped")

// commit publishes m with the next batch and returns its sequence.
func (g *groupCommitter) commit(ctx context.Context, m *nats.Msg) (uint64, error) {
	done := make(chan gcResult, 1)
	select {
	case g.in <- gcReq{ctx: ctx, msg: m, done: done}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case r := <-done:
		return r.seq, r.err
	case <-ctx.Done():
		return 0, errors.Join(errStopped, ctx.Err())
	}
}
