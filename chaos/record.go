package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/chaos/history"
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/wire"
)

// RecorderID is the id under which a Recorder advertises its position.
const RecorderID = "chaos-recorder"

// recorderAdvertise is how often a Recorder advertises its position.
const recorderAdvertise = 250 * time.Millisecond

// Recorder reads every message of the stream as it is stored, with an
// ordered consumer, so that the history holds the whole stream once
// compaction has purged its start. It advertises how far it has read as a
// replica status that is not ready (so no read is routed to it): compaction
// keeps what every live replica still needs, so it never purges a message
// the recorder has not read. It follows one stream; runs that delete the
// stream or restore an older copy of its store do not use it.
type Recorder struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	msgs    []history.Message
	err     error
	changed chan struct{} // closed and replaced on every change
}

// StartRecorder starts recording the stream of cfg from its first message,
// which must be 1, over nc.
func StartRecorder(ctx context.Context, nc *nats.Conn, cfg stream.Config) (*Recorder, error) {
	cfg = streamDefaults(cfg)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	st, err := stream.Open(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	cons, err := js.OrderedConsumer(ctx, cfg.Name, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{cancel: cancel, done: make(chan struct{}), changed: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		r.read(it, cfg.Subject)
	}()
	go func() {
		defer wg.Done()
		r.advertise(rctx, nc, st.ID())
	}()
	go func() {
		<-rctx.Done()
		it.Stop()
		wg.Wait()
		close(r.done)
	}()
	return r, nil
}

// read appends every message it gets, until it is stopped or a message is
// missing (purged before it was read) or undecodable.
func (r *Recorder) read(it jetstream.MessagesContext, prefix string) {
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		if err != nil {
			continue // the ordered consumer recreates itself
		}
		meta, err := msg.Metadata()
		if err == nil {
			var m history.Message
			if m, err = decodeMessage(prefix, meta.Sequence.Stream, msg.Subject(), msg.Headers(), msg.Data()); err == nil {
				err = r.add(m, meta.Timestamp)
			}
		}
		if err != nil {
			r.fail(err)
			return
		}
	}
}

func (r *Recorder) add(m history.Message, at time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if want := uint64(len(r.msgs)) + 1; m.Seq != want {
		return fmt.Errorf("recorder: got sequence %d, want %d (purged before it was read?)", m.Seq, want)
	}
	m.Time = at
	r.msgs = append(r.msgs, m)
	r.notify()
	return nil
}

func (r *Recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
	r.notify()
}

// notify wakes the waiters of Messages; r.mu is held.
func (r *Recorder) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// advertise publishes the recorder's position on its status subject.
func (r *Recorder) advertise(ctx context.Context, nc *nats.Conn, streamID string) {
	subject := wire.Subjects{}.Status(RecorderID)
	t := time.NewTicker(recorderAdvertise)
	defer t.Stop()
	for {
		r.mu.Lock()
		st := wire.ReplicaStatus{Replica: RecorderID, Stream: streamID, Applied: uint64(len(r.msgs)),
			State: wire.StateCatchingUp, Reason: "the fault campaign's stream recorder; serves nothing"}
		r.mu.Unlock()
		if b, err := json.Marshal(st); err == nil {
			_ = nc.Publish(subject, b)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Messages waits until the recorder has read the stream up to last and
// returns the messages from 1 to last.
func (r *Recorder) Messages(ctx context.Context, last uint64) ([]history.Message, error) {
	for {
		r.mu.Lock()
		n, err, changed := uint64(len(r.msgs)), r.err, r.changed
		if n >= last {
			out := append([]history.Message(nil), r.msgs[:last]...)
			r.mu.Unlock()
			return out, nil
		}
		r.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("recorder: read %d of %d messages: %w", n, last, ctx.Err())
		case <-changed:
		}
	}
}

// Stop stops the recorder.
func (r *Recorder) Stop() {
	r.cancel()
	<-r.done
}
