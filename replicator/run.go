package replicator

import (
	"github.com/tidemark/tidemark/api"

	"github.com/tidemark/tidemark/internal/backoff"

	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/tidemark/tidemark/stream"
)

// delivery is one stream message as the pump hands it to the apply loop.
type delivery struct {
	seq   uint64
	entry stream.Entry
	time  int64 // the message's stream timestamp, in Unix nanoseconds
	size  int64 // bytes charged to the pump's budget
	err   error // not nil for the last delivery: why the pump stopped
	skip  bool  // set by commitTxn: left out by the session order rule

	// The message as stored, for its identity (history.go).
	subject string
	hdr     nats.Header
	data    []byte
}

// sum is the identity of the delivered message (history.go).
func (d *delivery) sum() [sha256.Size]byte {
	return messageSum(time.Unix(0, d.time), d.subject, d.hdr, d.data)
}

// Run consumes the stream from applied + 1 and applies it until ctx ends
// (it then returns nil) or the replica cannot go on: ErrGap, ErrBadMessage,
// ErrStreamMismatch or a Badger failure, which it logs and returns. It
// rebuilds the replica on its own after ErrDiverged, ErrAhead and
// ErrCorrupt (reset.go), and waits for space after ErrDiskFull. When Run returns,
// Err reports why and waiters fail. Run is called once.
func (r *Replicator) Run(ctx context.Context) error {
	r.dbMu.RLock()
	db := r.db
	r.dbMu.RUnlock()
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return ErrClosed
	case db == nil:
		r.mu.Unlock()
		return ErrNotOpen
	case r.running || r.err != nil:
		r.mu.Unlock()
		return errors.New("replicator: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	r.running, r.cancelRun, r.runDone = true, cancel, done
	r.mu.Unlock()
	defer close(done)
	defer cancel()

	err := r.runBootstrapping(ctx, db) // run, with snapshot bootstrap (bootstrap.go)
	if err != nil {
		r.log.Error().Err(err).Uint64("applied", r.Applied()).Msg("replica stopped; not serving")
		r.fail(err)
		return err
	}
	r.fail(ErrStopped)
	return nil
}

func (r *Replicator) run(ctx context.Context, db *badger.DB) error {
	info, err := r.streamInfo(ctx)
	if err != nil {
		return nilOnDone(ctx, err)
	}
	if err := r.verifyRetrying(ctx, info.Created); err != nil {
		if mismatch(err) {
			r.hold(err)
		}
		return nilOnDone(ctx, err)
	}
	applied := r.Applied()
	first, last := info.State.FirstSeq, info.State.LastSeq
	if last > applied && first > applied+1 {
		return fmt.Errorf("%w: applied %d, the stream now starts at %d (messages removed by limits or a purge); rebuild the replica", ErrGap, applied, first)
	}
	if err := r.checkSpace(true); err != nil {
		return err
	}
	r.release(ErrUnverified)
	r.release(ErrDiskFull)
	if err := r.loadExpiry(db); err != nil { // ttl.go
		return err
	}
	cons, msgs, err := r.consume(ctx, applied+1)
	if err != nil {
		return nilOnDone(ctx, err)
	}
	defer r.deleteConsumer(ctx, cons)
	r.mu.Lock()
	r.target, r.targetSet = last, true
	r.verified = true // a rebuild may end once caught up (advance)
	r.mu.Unlock()
	r.advance(applied) // ready at once if there is nothing to catch up
	r.log.Info().Uint64("applied", applied).Uint64("target", last).Uint64("first", first).Msg("replicating")
	pctx, pcancel := context.WithCancel(ctx)
	budgetSize := 2 * int64(r.cfg.MaxBatchBytes)
	budget := semaphore.NewWeighted(budgetSize)
	in := make(chan delivery, r.cfg.MaxBatch)
	lost := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(5)
	go func() { defer wg.Done(); r.pump(pctx, msgs, in, budget, budgetSize, info.Created) }()
	go func() { defer wg.Done(); r.tick(pctx) }() // ttl.go
	go func() { defer wg.Done(); r.collectGarbage(pctx, db) }()
	go func() { defer wg.Done(); r.scrub(pctx, db) }()
	go func() { defer wg.Done(); r.watchStream(pctx, info.Created, lost) }()

	err = r.applyLoop(ctx, db, in, budget, lost)
	pcancel()
	msgs.Stop()
	wg.Wait()
	return nilOnDone(ctx, err)
}

func nilOnDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// streamInfo asks for the stream's state, retrying with backoff while NATS
// is unreachable.
func (r *Replicator) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	var b backoff.Backoff
	for attempt := 0; ; attempt++ {
		info, err := r.cfg.Stream.Info(ctx)
		if err == nil {
			return info, nil
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) || ctx.Err() != nil {
			return nil, err
		}
		r.retryLog(attempt).Err(err).Msg("stream info; retrying")
		if err := b.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

// consume starts an ordered consumer from sequence start, retrying with
// backoff while NATS is unreachable.
func (r *Replicator) consume(ctx context.Context, start uint64) (jetstream.Consumer, jetstream.MessagesContext, error) {
	js := r.cfg.Stream.JetStream()
	// The client buffer is bounded in bytes; it must hold at least the
	// largest message the server accepts, or the consumer would stall.
	pullBytes := max(4*r.cfg.MaxBatchBytes, 2*int(js.Conn().MaxPayload()))
	var b backoff.Backoff
	for attempt := 0; ; attempt++ {
		cons, err := js.OrderedConsumer(ctx, r.cfg.Stream.Name(), jetstream.OrderedConsumerConfig{
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:   start,
		})
		if err == nil {
			var msgs jetstream.MessagesContext
			// A one-second heartbeat notices a lost server (the consumer's
			// leader going away) in about two seconds, not the default ten.
			if msgs, err = cons.Messages(jetstream.PullMaxBytes(pullBytes), jetstream.PullHeartbeat(time.Second)); err == nil {
				return cons, msgs, nil
			}
			r.deleteConsumer(ctx, cons)
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		r.retryLog(attempt).Err(err).Uint64("seq", start).Msg("create consumer; retrying")
		if err := b.Wait(ctx); err != nil {
			return nil, nil, err
		}
	}
}

// deleteConsumer removes the ordered consumer's current server-side
// consumer, which the server would otherwise keep until it has been idle
// for a while. It is best effort.
func (r *Replicator) deleteConsumer(ctx context.Context, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteConsumerTimeout)
	defer cancel()
	if err := r.cfg.Stream.JetStream().DeleteConsumer(ctx, r.cfg.Stream.Name(), info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		r.log.Debug().Err(err).Str("consumer", info.Name).Msg("delete consumer")
	}
}

// deleteConsumerTimeout bounds the clean-up of the consumer when Run ends.
const deleteConsumerTimeout = 2 * time.Second

// retryLog warns on the first failure of a retry loop and logs the rest at
// debug level.
func (r *Replicator) retryLog(attempt int) *zerolog.Event {
	if attempt == 0 {
		return r.log.Warn()
	}
	return r.log.Debug()
}

// pump receives messages, decodes them and hands them to the apply loop,
// holding at most the budget's bytes in the hand-off. A message that does
// not decode is handed over with its error and ends the pump.
//
// The ordered consumer replaces its server-side consumer on its own when it
// loses it (a reconnect, missed heartbeats, a deleted stream) and carries on
// from the next sequence. Before the first message of a new consumer, the
// pump verifies that the stream still holds the history the replica applied
// (history.go), so that a recreated stream or one that lost its tail is
// never applied as if it continued the old one. The first consumer is
// checked too: the stream could have changed between Run's first look at it
// and the consumer's creation.
func (r *Replicator) pump(ctx context.Context, msgs jetstream.MessagesContext, out chan<- delivery, budget *semaphore.Weighted, budgetSize int64, created time.Time) {
	var (
		b        backoff.Backoff
		consumer string
	)
	for attempt := 0; ; attempt++ {
		msg, err := msgs.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			select {
			case out <- delivery{err: fmt.Errorf("consumer closed: %w", err)}:
			case <-ctx.Done():
			}
			return
		}
		if err != nil {
			r.retryLog(attempt).Err(err).Msg("consume; retrying")
			if b.Wait(ctx) != nil {
				return
			}
			continue
		}
		attempt = -1
		b.Reset()
		d, name := r.decode(msg)
		if name != consumer && d.err == nil {
			r.log.Debug().Str("consumer", name).Uint64("seq", d.seq).Msg("consumer replaced; checking the stream")
			if err := r.verifyRetrying(ctx, created); err != nil {
				if mismatch(err) {
					r.hold(err)
				}
				d = delivery{err: err}
			}
		}
		consumer = name
		d.size = min(d.size, budgetSize)
		if budget.Acquire(ctx, d.size) != nil {
			return
		}
		select {
		case out <- d:
		case <-ctx.Done():
			return
		}
		if d.err != nil {
			return
		}
	}
}

// decode turns a message into a delivery, with ErrBadMessage if it is not a
// Tidemark write, and returns the name of the consumer that delivered it.
func (r *Replicator) decode(msg jetstream.Msg) (delivery, string) {
	d := delivery{size: int64(len(msg.Data()) + len(msg.Subject()))}
	meta, err := msg.Metadata()
	if err != nil {
		d.err = fmt.Errorf("%w: subject %q: no stream metadata: %v", ErrBadMessage, msg.Subject(), err)
		return d, ""
	}
	d.seq = meta.Sequence.Stream
	r.cfg.Stream.ObserveLast(d.seq + meta.NumPending)
	d.time = meta.Timestamp.UnixNano()
	d.subject, d.hdr, d.data = msg.Subject(), msg.Headers(), msg.Data()
	op := msg.Headers().Get(api.HeaderOp)
	d.entry, err = stream.DecodeMessage(r.cfg.Stream.Subject(), msg.Subject(), msg.Headers(), msg.Data())
	if err != nil {
		d.err = fmt.Errorf("%w: seq %d, subject %q, op %q: %v; the replica stops before it (see the replicator package documentation)",
			ErrBadMessage, d.seq, msg.Subject(), op, err)
	}
	return d, meta.Consumer
}

// applyLoop takes a first delivery (blocking), drains what else is already
// there up to the batch limits, and applies the batch.
func (r *Replicator) applyLoop(ctx context.Context, db *badger.DB, in <-chan delivery, budget *semaphore.Weighted, lost <-chan error) error {
	batch := make([]delivery, 0, r.cfg.MaxBatch)
	prog := progress{last: time.Now(), lastApplied: r.Applied(), start: time.Now(), done: r.isReady()}
	// The first sweep follows the first batch, so the tombstone count is
	// known soon after a start.
	sweep := struct{ last time.Time }{}
	for {
		var first delivery
		select {
		case first = <-in:
		case err := <-lost:
			return err
		case err := <-r.corruptCh:
			return err
		case <-ctx.Done():
			return nil
		}
		batch = r.drain(in, append(batch[:0], first))
		var ok bool
		if batch, ok = r.completeTxn(ctx, in, batch, budget); !ok {
			return nil
		}
		if !r.holdUnpaused(ctx) {
			return nil
		}
		batch = r.drain(in, batch)
		if batch, ok = r.completeTxn(ctx, in, batch, budget); !ok {
			r.pauseMu.Unlock()
			return nil
		}
		err := r.applyBatch(db, batch)
		r.pauseMu.Unlock()
		var size int64
		for _, d := range batch {
			size += d.size
		}
		budget.Release(size)
		if err != nil {
			return err
		}
		r.logProgress(&prog)
		if len(batch) > 0 && time.Since(sweep.last) >= r.cfg.SweepInterval {
			sweep.last = time.Now()
			now := batch[len(batch)-1].time
			r.sweepSessions(db, now)
			r.sweepTombstones(db, now)
		}
	}
}

// drain appends the deliveries already waiting, up to the batch limits or,
// inside a transaction, beyond them to its end, and stops after one that
// carries an error.
func (r *Replicator) drain(in <-chan delivery, batch []delivery) []delivery {
	var size int64
	for _, d := range batch {
		if d.err != nil {
			return batch
		}
		size += d.size
	}
	for (len(batch) < r.cfg.MaxBatch && size < int64(r.cfg.MaxBatchBytes)) || inTxn(batch) {
		select {
		case d := <-in:
			batch = append(batch, d)
			if d.err != nil {
				return batch
			}
			size += d.size
		default:
			return batch
		}
	}
	return batch
}

// inTxn reports whether batch ends inside a transaction: its last delivery
// is a transaction's marker or an op before its last.
func inTxn(batch []delivery) bool {
	if len(batch) == 0 {
		return false
	}
	d := batch[len(batch)-1]
	return d.err == nil && !d.entry.EndsTxn()
}

// completeTxn waits for the rest of a transaction that batch ends inside
// of, so that a transaction is applied whole, in one Badger transaction,
// and applied never points inside one. The stream holds a transaction's
// messages together (one atomic batch), so the rest follows at once. Its
// messages are held beyond the pump's budget, which a transaction could
// exceed: their budget is given back now. It returns false when ctx ends.
func (r *Replicator) completeTxn(ctx context.Context, in <-chan delivery, batch []delivery, budget *semaphore.Weighted) ([]delivery, bool) {
	if !inTxn(batch) {
		return batch, true
	}
	for i := range batch {
		budget.Release(batch[i].size)
		batch[i].size = 0
	}
	for inTxn(batch) {
		if r.txnWaitHook != nil {
			r.txnWaitHook(len(batch))
		}
		select {
		case d := <-in:
			budget.Release(d.size)
			d.size = 0
			batch = r.drain(in, append(batch, d))
		case <-ctx.Done():
			return batch, false
		}
	}
	return batch, true
}

// holdUnpaused waits while the replicator is paused and returns with pauseMu
// held, or false (not held) when ctx ends.
func (r *Replicator) holdUnpaused(ctx context.Context) bool {
	r.pauseMu.Lock()
	for r.paused {
		ch := r.resumeCh
		r.pauseMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
		r.pauseMu.Lock()
	}
	return true
}

// applyBatch checks the batch's sequences and commits the messages up to the
// first gap or bad message, whose error it then returns.
func (r *Replicator) applyBatch(db *badger.DB, batch []delivery) error {
	next := r.Applied() + 1
	ok := make([]delivery, 0, len(batch))
	var stop error
	want := 0 // the index of the transaction op that must come next; 0: none
	for _, d := range batch {
		if d.err != nil {
			stop = d.err
			break
		}
		if d.seq < next {
			continue // already applied (a redelivery)
		}
		if d.seq > next {
			stop = fmt.Errorf("%w: applied %d, the stream delivered %d next (messages removed by limits or a purge); rebuild the replica", ErrGap, next-1, d.seq)
			break
		}
		if err := txnOrder(d, &want); err != nil {
			stop = err
			break
		}
		ok = append(ok, d)
		next++
	}
	// A transaction cut short by a gap or a bad message is not applied.
	for len(ok) > 0 && !ok[len(ok)-1].entry.EndsTxn() {
		ok = ok[:len(ok)-1]
	}
	if len(ok) > 0 {
		if err := r.checkSpace(false); err != nil {
			return err
		}
		if err := r.commit(db, ok); err != nil {
			return err
		}
	}
	return stop
}

// txnOrder checks that d comes where its transaction headers place it: a
// transaction's ops follow its marker in order, with nothing between them.
// want is the index of the op that must come next (0: none), which it
// advances.
func txnOrder(d delivery, want *int) error {
	e := d.entry
	switch {
	case *want == 0 && e.TxnIndex == 0:
	case *want != 0 && e.TxnIndex == *want:
	default:
		return fmt.Errorf("%w: seq %d: message %d/%d of a transaction where op %d of one was due (0: none); the replica stops before it",
			ErrBadMessage, d.seq, e.TxnIndex, e.TxnSize, *want)
	}
	*want = e.TxnIndex + 1
	if e.EndsTxn() {
		*want = 0
	}
	return nil
}

// txnBoundary returns the most of the first fit deliveries of ds that end
// at a transaction's end (or outside one): 0 when the first transaction
// alone is longer than fit.
func txnBoundary(ds []delivery, fit int) int {
	for fit > 0 && !ds[fit-1].entry.EndsTxn() {
		fit--
	}
	return fit
}

// commit applies ds in as few transactions as Badger allows, each carrying
// its own applied, and publishes each new applied after its commit.
func (r *Replicator) commit(db *badger.DB, ds []delivery) error {
	for len(ds) > 0 {
		n := len(ds)
		for {
			fit, skipped, err := r.commitTxnGuarded(db, ds[:n])
			if err == nil {
				r.skipped.Add(uint64(skipped))
				break
			}
			if !errors.Is(err, badger.ErrTxnTooBig) {
				return r.storeFailed(fmt.Errorf("apply seq %d-%d: %w", ds[0].seq, ds[n-1].seq, err))
			}
			if fit >= n {
				fit = n - 1
			}
			fit = txnBoundary(ds, fit) // a transaction of the stream is never split
			if fit < 1 {
				return fmt.Errorf("apply seq %d: a single message or transaction does not fit a Badger transaction: %w", ds[0].seq, err)
			}
			n = fit
			r.splits.Add(1)
		}
		r.messages.Add(uint64(n))
		r.batches.Add(1)
		r.advance(ds[n-1].seq)
		r.committed(ds[:n]) // metrics.go
		ds = ds[n:]
	}
	return nil
}

// progress is the state of catch-up logging.
type progress struct {
	start, last time.Time
	lastApplied uint64
	done        bool
}

// logProgress logs catch-up progress at most every DefaultProgressInterval,
// and once when caught up.
func (r *Replicator) logProgress(p *progress) {
	if p.done {
		return
	}
	applied := r.Applied()
	if r.isReady() {
		p.done = true
		r.log.Info().Uint64("applied", applied).Str("took", time.Since(p.start).Round(time.Millisecond).String()).Msg("caught up")
		return
	}
	now := time.Now()
	if el := now.Sub(p.last); el >= DefaultProgressInterval {
		r.mu.Lock()
		target := r.target
		r.mu.Unlock()
		rate := float64(applied-p.lastApplied) / el.Seconds()
		ev := r.log.Info().Uint64("applied", applied).Uint64("target", target).
			Str("rate", fmt.Sprintf("%.0f msgs/s", rate))
		if target > 0 {
			ev = ev.Str("progress", fmt.Sprintf("%.1f%%", 100*float64(min(applied, target))/float64(target)))
		}
		if rate > 0 && target > applied {
			ev = ev.Str("eta", (time.Duration(float64(target-applied) / rate * float64(time.Second))).Round(time.Second).String())
		}
		ev.Msg("catching up")
		p.last, p.lastApplied = now, applied
	}
}

// collectGarbage runs Badger's value log garbage collection every
// DefaultGCInterval.
func (r *Replicator) collectGarbage(ctx context.Context, db *badger.DB) {
	every(ctx, DefaultGCInterval, func() bool {
		for ctx.Err() == nil {
			if err := runValueLogGC(db); err != nil {
				if errors.Is(err, ErrCorrupt) {
					_ = r.storeFailed(err)
					return false
				}
				if !errors.Is(err, badger.ErrNoRewrite) {
					r.log.Warn().Err(err).Msg("value log gc")
				}
				break
			}
		}
		return true
	})
}

// every calls fn every d until ctx ends or fn returns false.
func every(ctx context.Context, d time.Duration, fn func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !fn() {
			return
		}
	}
}

// runValueLogGC is one round of Badger's value log garbage collection, with
// a panic as ErrCorrupt.
func runValueLogGC(db *badger.DB) (err error) {
	defer guard("value log gc", &err)
	return classify(db.RunValueLogGC(0.5))
}
