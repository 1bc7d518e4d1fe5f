package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/tidemark/tidemark/stream"
)

// JetStream's atomic batch publish headers.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// maxAtomicBatch is the server's default limit on an atomic batch.
const maxAtomicBatch = 1000

// errOverloaded counts an open-loop call that found every worker busy.
var errOverloaded = errors.New("every worker busy: the load is over capacity")

// envelope returns the stream message of a put of value to key under the
// stream subject prefix: what the writer publishes.
func envelope(subject, key string, value []byte) *nats.Msg {
	m := nats.NewMsg(stream.KeySubject(subject, key))
	m.Header.Set(stream.HeaderOp, string(stream.OpPut))
	m.Data = value
	return m
}

// batchAck is the server's answer to the commit of an atomic batch.
type batchAck struct {
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
	Batch  string `json:"batch"`
	Count  int    `json:"count"`
	Error  *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// publishBatch publishes msgs as one atomic batch: JetStream stores all of
// them, contiguously, or none, with one fsync under sync_interval: always.
// It returns the sequence of the last message.
func publishBatch(ctx context.Context, nc *nats.Conn, msgs []*nats.Msg) (uint64, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	id := nuid.Next()
	for i, m := range msgs {
		if m.Header == nil {
			m.Header = nats.Header{}
		}
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		if i == len(msgs)-1 {
			m.Header.Set(hdrBatchCommit, "1")
			break
		}
		if err := nc.PublishMsg(m); err != nil {
			return 0, fmt.Errorf("batch publish: %w", err)
		}
	}
	reply, err := nc.RequestMsgWithContext(ctx, msgs[len(msgs)-1])
	if err != nil {
		return 0, fmt.Errorf("batch commit: %w", err)
	}
	return parseBatchAck(reply.Data, len(msgs))
}

// parseBatchAck decodes the server's answer to the commit of an atomic
// batch of n messages and returns the sequence of the last one.
func parseBatchAck(data []byte, n int) (uint64, error) {
	var ack batchAck
	if err := json.Unmarshal(data, &ack); err != nil {
		return 0, fmt.Errorf("batch commit: bad ack %q: %w", truncate(data, 200), err)
	}
	switch {
	case ack.Error != nil:
		return 0, fmt.Errorf("batch commit: %s (%d)", ack.Error.Description, ack.Error.ErrCode)
	case ack.Count != n:
		return 0, fmt.Errorf("batch commit: %d messages stored, want %d", ack.Count, n)
	case ack.Seq < uint64(n):
		return 0, fmt.Errorf("batch commit: last sequence %d for %d messages", ack.Seq, n)
	}
	return ack.Seq, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// fillFor publishes messages made by mk in atomic batches of up to
// maxAtomicBatch, a few batches in flight, until n messages (n > 0) or for
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
	for start := 0; n <= 0 || start < n; start += maxAtomicBatch {
		end := start + maxAtomicBatch
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
				seq, err = publishBatch(bctx, nc, msgs)
				cancel()
				if err == nil {
					break
				}
				_ = stream.Sleep(pctx, time.Duration(attempt+1)*50*time.Millisecond)
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
