package client

import (
	"github.com/tidemark/tidemark/internal/backoff"
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"iter"
	"time"

	"github.com/nats-io/nats.go"
)

// Event is one event of a watch (api.Event).
type Event = api.Event

// Defaults of watches over NATS.
const (
	// WatchAckEvery and WatchAckInterval are how often a watcher
	// acknowledges: after this many events, and at least this often.
	WatchAckEvery    = 128
	WatchAckInterval = time.Second
	// watchLiveness is how many progress intervals a watcher waits for
	// anything from its replica before it resumes on another.
	watchLiveness = 3
	// watchRetryMax caps the backoff between attempts to resume.
	watchRetryMax = 2 * time.Second
)

// Watcher is a Transport that serves watches.
type Watcher interface {
	// Watch streams the events of req, resuming on its own after a
	// failure with nothing lost or repeated; it ends with the first error
	// it cannot get past (api.ErrResumePointCompacted: list again) or when
	// the caller stops.
	Watch(ctx context.Context, req api.WatchRequest) iter.Seq2[Event, error]
}

var _ Watcher = (*NATS)(nil)

// WatchOption shapes one Watch.
type WatchOption func(*api.WatchRequest)

// WatchAfter resumes a watch after revision rev (an event's ID) instead of
// starting with the initial state.
func WatchAfter(rev uint64) WatchOption {
	return func(w *api.WatchRequest) { w.Resume, w.After = true, rev }
}

// WatchReplica serves the watch from one replica.
func WatchReplica(id string) WatchOption {
	return func(w *api.WatchRequest) { w.Replica = id }
}

// WatchProgress sets how often an idle watch gets a progress event.
func WatchProgress(d time.Duration) WatchOption {
	return func(w *api.WatchRequest) { w.Progress = d }
}

// WatchWait bounds how long the watch's start waits for the session token.
func WatchWait(d time.Duration) WatchOption {
	return func(w *api.WatchRequest) { w.Wait = d }
}

// Watch streams the changes of the keys under prefix: without WatchAfter,
// first the live records as of at least the session's token (puts without
// an ID), then EventSynced, then every change in stream order, with
// EventProgress while idle. A transaction's changes come consecutively,
// each with Txn set to the transaction's revision and op count, More on all
// but the last. Each event's token is merged into the context's session. The watch reconnects on its own, on another replica
// if need be, from the last event's ID; it ends at the first error it
// cannot get past: api.ErrResumePointCompacted means the resume point is
// gone and the caller lists again (Watch without WatchAfter).
func (c *Client) Watch(ctx context.Context, prefix string, opts ...WatchOption) iter.Seq2[Event, error] {
	req := api.WatchRequest{Prefix: prefix, Wait: c.wait}
	for _, o := range opts {
		o(&req)
	}
	return func(yield func(Event, error) bool) {
		w, ok := c.transport.(Watcher)
		if !ok {
			yield(Event{}, api.Errorf(api.ErrInvalidRequest, "this transport does not serve watches"))
			return
		}
		s := SessionFrom(ctx)
		if s != nil {
			req.Token = s.Token()
		}
		for ev, err := range w.Watch(ctx, req) {
			if s != nil && err == nil {
				s.observe(ev.Token)
			}
			if !yield(ev, err) {
				return
			}
		}
	}
}

// Watch streams the events of req from a replica over the NATS watch
// protocol (README, "Watch"): to req.Replica, else to the replica the
// Router picks for the token, else to any ready one. The initial state is
// held back until its EventSynced, so that a replica that fails part way
// costs a new snapshot rather than a repeated record. When the replica
// stops (an error event, a gap in the event numbers, nothing heard for
// three progress intervals) it resumes from the last event's ID on another
// replica.
func (c *NATS) Watch(ctx context.Context, req api.WatchRequest) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		if err := req.Validate(); err != nil {
			yield(Event{}, err)
			return
		}
		if req.Progress <= 0 {
			req.Progress = api.DefaultWatchProgress
		}
		w := &natsWatch{c: c, watchState: watchState{req: req, yield: yield}}
		if err := w.run(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, errYieldStopped) {
			yield(Event{}, err)
		}
	}
}

// errYieldStopped ends a watch whose caller stopped iterating.
var errYieldStopped = errors.New("caller stopped")

// errResume ends one attempt that the watch resumes after.
type errResume struct{ error }

func (e errResume) Unwrap() error { return e.error }

// natsWatch is a watch over NATS across its attempts.
type natsWatch struct {
	c *NATS
	watchState
}

// watchState is what a watch keeps across its attempts, over either
// transport: the request, whose Resume and After move as events arrive,
// and the initial state held back until its synced event.
type watchState struct {
	req     api.WatchRequest
	yield   func(Event, error) bool
	initial []Event
	// started is set once a replica has started the watch: until then a
	// failure is retried only for the watch's wait, so that a watch
	// nobody can serve fails rather than hangs.
	started bool
	begun   time.Time
	// group is the revision of the last change passed on, groupSeen how
	// many changes of it were: one revision may have several (a message's
	// write and the expiries it brings). req.After moves past a revision
	// only once it is complete, and a resume skips the changes of it
	// already passed on, which the replica sends again.
	group     uint64
	groupSeen int
	replay    int
}

// resuming prepares a new attempt: the replica sends again the changes of
// a revision passed on in part.
func (w *watchState) resuming() {
	w.initial = w.initial[:0]
	w.replay = 0
	if w.group > w.req.After {
		w.replay = w.groupSeen
	}
}

// giveUp reports whether a watch that failed to start with err, wait after
// it began, should fail rather than try again.
func (w *watchState) giveUp(wait time.Duration) bool {
	if w.begun.IsZero() {
		w.begun = time.Now()
	}
	return !w.started && time.Since(w.begun) >= wait
}

// wait is how long the watch's start may wait for its token.
func (w *natsWatch) wait() time.Duration {
	if w.req.Wait > 0 {
		return w.req.Wait
	}
	return w.c.ReadWait
}

func (w *natsWatch) run(ctx context.Context) error {
	w.begun = time.Now()
	b := backoff.Backoff{Max: watchRetryMax}
	exclude := ""
	compacted := 0
	for {
		served, err := w.attempt(ctx, exclude)
		var (
			resume  errResume
			refused startCompacted
		)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil, errors.Is(err, errYieldStopped):
			return err
		case errors.As(err, &refused):
			// A replica that restarted holds only what it applied since:
			// another may still hold the resume point.
			if compacted++; compacted >= watchCompactedTries || w.req.Replica != "" {
				return refused.error
			}
			exclude = served
		case errors.As(err, &resume), retryable(err):
			if w.req.Replica != "" && errors.Is(err, nats.ErrNoResponders) {
				return w.c.pinnedErr(w.req.Replica, err)
			}
			if w.giveUp(w.wait()) {
				return err
			}
			if served != "" && w.req.Replica == "" {
				exclude = served
			}
			if b.Wait(ctx) != nil {
				return ctx.Err()
			}
		default:
			return err
		}
	}
}

// watchCompactedTries is how many replicas a resume point is asked of
// before the watch gives up with api.ErrResumePointCompacted.
const watchCompactedTries = 3

// startCompacted is a replica's refusal to start at a resume point older
// than its window.
type startCompacted struct{ error }

func (e startCompacted) Unwrap() error { return e.error }

// retryable reports whether a watch that failed to start with err may
// start on another replica.
func retryable(err error) bool {
	return errors.Is(err, api.ErrUnavailable) || errors.Is(err, api.ErrTokenWaitTimeout) || isNoReply(err) ||
		errors.Is(err, nats.ErrNoResponders)
}

// attempt runs the watch on one replica until it ends; it returns the
// replica it asked (or that answered).
func (w *natsWatch) attempt(ctx context.Context, exclude string) (string, error) {
	c := w.c
	w.resuming()
	target := w.req.Replica
	if target == "" && c.Router != nil {
		need := w.req.Token.Seq
		if w.req.Resume {
			need = max(need, w.req.After)
		}
		target = c.Router.Pick(need, exclude)
	}
	subject := c.subjects.Watch()
	if target != "" {
		subject = c.subjects.ReplicaWatch(target)
	}
	inbox := c.nc.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return target, api.Errorf(api.ErrUnavailable, "watch subscription: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, -1) // flow control bounds what is in flight

	wait := w.req.Wait
	if wait <= 0 {
		wait = c.ReadWait
	}
	rctx, cancel := context.WithTimeout(ctx, wait+c.ReadMargin)
	reply, err := c.request(rctx, wire.WatchMsg(subject, w.req, inbox), "replica")
	cancel()
	if err != nil {
		if target != "" && errors.Is(err, nats.ErrNoResponders) && w.req.Replica == "" {
			c.Router.Forget(target)
		}
		return target, err
	}
	control, replica, err := wire.DecodeWatchReply(reply)
	if replica == "" {
		replica = target
	}
	if errors.Is(err, api.ErrResumePointCompacted) {
		return replica, startCompacted{err}
	}
	if err != nil {
		return replica, err
	}
	w.started = true
	defer func() { _ = c.nc.Publish(control, wire.WatchControlMsg(0, true)) }()

	liveness := watchLiveness*w.req.Progress + c.ReadMargin
	var (
		received, acked uint64
		heard           = time.Now()
		ackedAt         = time.Now()
	)
	for {
		next := min(WatchAckInterval-time.Since(ackedAt), liveness-time.Since(heard))
		nctx, cancel := context.WithTimeout(ctx, max(next, time.Millisecond))
		m, err := sub.NextMsgWithContext(nctx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return replica, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			if time.Since(heard) >= liveness {
				return replica, errResume{api.Errorf(api.ErrUnavailable, "replica %s sent nothing for %v", replica, liveness)}
			}
			_ = c.nc.Publish(control, wire.WatchControlMsg(received, false))
			acked, ackedAt = received, time.Now()
			continue
		default:
			return replica, errResume{api.Errorf(api.ErrUnavailable, "watch subscription: %w", err)}
		}
		heard = time.Now()
		n, ev, err := wire.DecodeEvent(m)
		if err != nil {
			return replica, errResume{err}
		}
		if n != received+1 {
			return replica, errResume{api.Errorf(api.ErrUnavailable, "watch event %d lost (got %d)", received+1, n)}
		}
		received = n
		if received-acked >= WatchAckEvery || time.Since(ackedAt) >= WatchAckInterval {
			_ = c.nc.Publish(control, wire.WatchControlMsg(received, false))
			acked, ackedAt = received, time.Now()
		}
		if err := w.handle(ev); err != nil {
			return replica, err
		}
	}
}

// handle passes one event on, keeping the watch's resume point.
func (w *watchState) handle(ev Event) error {
	if !ev.Token.IsZero() {
		if m, err := w.req.Token.Merge(ev.Token); err == nil {
			w.req.Token = m
		}
	}
	emit := func(ev Event) error {
		if !w.yield(ev, nil) {
			return errYieldStopped
		}
		return nil
	}
	switch ev.Type {
	case api.EventError:
		if errors.Is(ev.Err, api.ErrResumePointCompacted) || !retryable(ev.Err) {
			return ev.Err
		}
		return errResume{ev.Err}
	case api.EventPut, api.EventDelete:
		if ev.ID == 0 {
			if w.req.Resume {
				return errResume{api.Errorf(api.ErrInternal, "a record of the initial state in a resumed watch")}
			}
			w.initial = append(w.initial, ev)
			return nil
		}
		if w.req.Resume && ev.ID <= w.req.After {
			return nil // sent before; a replica never does, but nothing repeats
		}
		if ev.ID == w.group {
			if w.replay > 0 {
				w.replay-- // passed on before the resume
				return nil
			}
			w.groupSeen++
		} else {
			if w.group != 0 {
				w.req.After = max(w.req.After, w.group) // the revision before is complete
			}
			w.group, w.groupSeen, w.replay = ev.ID, 1, 0
		}
		w.req.Resume = true
		return emit(ev)
	case api.EventSynced:
		if w.req.Resume {
			return nil
		}
		for _, r := range w.initial {
			if err := emit(r); err != nil {
				return err
			}
		}
		w.initial = nil
	case api.EventProgress:
		if w.req.Resume && ev.ID < max(w.req.After, w.group) {
			return nil // ids never go back
		}
	}
	if ev.Type != api.EventPut || ev.ID != 0 {
		w.req.Resume, w.req.After = true, max(w.req.After, ev.ID)
	}
	return emit(ev)
}
