package bench

import (
	"github.com/tidemark/tidemark/internal/backoff"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/stream"
)

// errOverloaded counts an open-loop call that found every worker busy.
var errOverloaded = errors.New("every worker busy: the load is over capacity")

// envelope returns the stream message of a put of value to key under the
// stream subject prefix: what the writer publishes.
func envelope(subject, key string, value []byte) *nats.Msg {
	m := nats.NewMsg(stream.KeySubject(subject, key))
	m.Header.Set(api.HeaderOp, string(api.OpPut))
	m.Data = value
	return m
}

// fillFor publishes messages made by mk in atomic batches of up to
// stream.MaxAtomicBatch, a few batches in flight, until n messages (n > 0) or for
// d (d > 0), whichever comes first, and returns how many it published and
// the last sequence.
func fillFor(ctx context.Context, nc *nats.Conn, n int, d time.Duration, mk func(i int) *nats.Msg) (int, uint64, error) {
	const inflight = 4
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	var (
		mu    sync.Mutex
		last  uint64
		count int
		ferr  error
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, inflight)
	pctx := context.WithoutCancel(ctx) // batches already sent are seen through
	for start := 0; n <= 0 || start < n; start += stream.MaxAtomicBatch {
		end := start + stream.MaxAtomicBatch
		if n > 0 {
			end = min(end, n)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		mu.Lock()
		err := ferr
		mu.Unlock()
		if err != nil || ctx.Err() != nil {
			break
		}
		msgs := make([]*nats.Msg, 0, end-start)
		for i := start; i < end; i++ {
			msgs = append(msgs, mk(i))
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var seq uint64
			var err error
			for attempt := 0; attempt < 5; attempt++ {
				// A batch the server dropped (a full ingest queue) is
				// refused whole: send it again.
				bctx, cancel := context.WithTimeout(pctx, 30*time.Second)
				seq, err = stream.PublishBatch(bctx, nc, msgs)
				cancel()
				if err == nil {
					break
				}
				_ = backoff.Sleep(pctx, time.Duration(attempt+1)*50*time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if ferr == nil {
					ferr = err
				}
				return
			}
			count += len(msgs)
			last = max(last, seq)
		}()
	}
	wg.Wait()
	if ferr == nil && d <= 0 {
		ferr = ctx.Err()
	}
	return count, last, ferr
}

// asyncPublish publishes with JetStream's asynchronous publish, at most
// window messages awaiting their ack, for l's duration or operation count,
// and measures each message from publish to ack.
func asyncPublish(ctx context.Context, js jetstream.JetStream, l load, window int, mk func(i int) *nats.Msg) sample {
	type pending struct {
		f jetstream.PubAckFuture
		t time.Time
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if l.duration > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, l.duration)
		defer stop()
	}
	q := make(chan pending, window)
	rec, perr := &recorder{}, &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range q {
			select {
			case <-p.f.Ok():
				rec.record(time.Since(p.t), nil)
			case err := <-p.f.Err():
				rec.record(0, err)
			}
		}
	}()
	start := time.Now()
	for i := 0; ctx.Err() == nil && (l.ops <= 0 || i < l.ops); i++ {
		t := time.Now()
		f, err := js.PublishMsgAsync(mk(i))
		if err != nil {
			perr.record(0, err)
			continue
		}
		select {
		case q <- pending{f, t}:
		case <-ctx.Done():
		}
	}
	close(q)
	<-done
	return merge(time.Since(start), []*recorder{rec, perr})
}
