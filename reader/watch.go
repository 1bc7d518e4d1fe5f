package reader

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Defaults of the watch protocol's flow control (see README, "Watch").
const (
	// DefaultWatchUnacked is the most events a replica sends a watcher
	// beyond the last count it acknowledged.
	DefaultWatchUnacked = 1024
	// DefaultWatchClientTimeout is how long a replica keeps a watch whose
	// watcher sends nothing to the control subject (acknowledgements go at
	// least every wire.WatchAckInterval).
	DefaultWatchClientTimeout = 15 * time.Second
	// watchBatch is the most changes a watch takes from the window at once.
	watchBatch = 256
)

// WatchStore is the replica state a watch is served from: the watch window
// of recent changes and a snapshot scan of a prefix. The replicator
// satisfies it.
type WatchStore interface {
	// Changes returns up to limit changes under prefix after revision
	// after (more rather than split a revision's or a transaction's), the
	// position they bring the watcher to, and a channel closed at the next
	// commit; api.ErrResumePointCompacted when after is older than the
	// window.
	Changes(after uint64, prefix string, limit int, dst []api.Change) ([]api.Change, uint64, <-chan struct{}, error)
	// ScanAll calls fn with every live record under prefix from one
	// snapshot, and the snapshot's applied sequence.
	ScanAll(prefix string, fn func(rec api.Record, applied uint64) error) (uint64, error)
	// WatchWindow returns the revision after which the window holds every
	// change, and the position it holds them to.
	WatchWindow() (floor, pos uint64)
}

// watches serves the watches of one Service: one goroutine per watch, which
// pulls changes from the window at its own pace.
type watches struct {
	s      *Service
	wg     sync.WaitGroup
	active atomic.Int64
	// senders bounds the watches publishing at once to the CPUs, so that
	// however many watchers are busy, the apply loop keeps its share of
	// the CPUs; a watch waiting for its watcher holds no slot.
	sendersOnce sync.Once
	senders     chan struct{}
	// hub is closed after each commit (wake); hubMu guards it.
	hubOnce sync.Once
	hubMu   sync.Mutex
	hub     chan struct{}
}

// wake returns a channel closed after the next commit. One goroutine of the
// service waits on the store's signal and passes it on, so that a commit
// wakes one goroutine, not every watch: the apply loop does no work per
// watch.
func (w *watches) wake(ctx context.Context, store WatchStore) <-chan struct{} {
	w.hubOnce.Do(func() {
		w.hub = make(chan struct{})
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			_, _, next, _ := store.Changes(math.MaxUint64, "", 0, nil)
			for {
				select {
				case <-next:
				case <-ctx.Done():
					return
				}
				// Taken after the commit that closed next: any later
				// commit closes it, and the watches woken below see
				// every commit before it.
				_, _, next, _ = store.Changes(math.MaxUint64, "", 0, nil)
				w.hubMu.Lock()
				close(w.hub)
				w.hub = make(chan struct{})
				w.hubMu.Unlock()
			}
		}()
	})
	w.hubMu.Lock()
	defer w.hubMu.Unlock()
	return w.hub
}

func (w *watches) slots() chan struct{} {
	w.sendersOnce.Do(func() { w.senders = make(chan struct{}, max(2, runtime.GOMAXPROCS(0))) })
	return w.senders
}

// ActiveWatches returns how many watches the service serves now.
func (s *Service) ActiveWatches() int64 { return s.watches.active.Load() }

// watchHandler starts watches: it decodes the request on micro's goroutine
// and serves the watch on its own.
func (w *watches) handler(ctx context.Context) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		s := w.s
		wr, deliver, err := wire.DecodeWatchRequest(nats.Header(req.Headers()), req.Data())
		if err == nil {
			if _, ok := s.r.cfg.Store.(WatchStore); !ok {
				err = api.Errorf(api.ErrUnavailable, "replica %s does not serve watches", s.r.Replica())
			}
		}
		if err == nil && ctx.Err() != nil {
			err = api.Errorf(api.ErrUnavailable, "replica %s is shutting down", s.r.Replica())
		}
		if err != nil {
			h, body := wire.EncodeWatchReply(s.r.Replica(), "", wr.Token, err)
			s.respond(req, h, body, err)
			return
		}
		w.wg.Add(1)
		w.active.Add(1)
		go func() {
			defer w.wg.Done()
			defer w.active.Add(-1)
			w.serve(ctx, req, wr, deliver)
		}()
	})
}

// watch is one watch being served.
type watch struct {
	s        *Service
	store    WatchStore
	req      api.WatchRequest
	deliver  string
	need     uint64 // the position the initial state must reflect
	sent     uint64 // events published
	acked    atomic.Uint64
	heard    atomic.Int64 // Unix nanoseconds of the last control message
	ackCh    chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once
	slots    chan struct{} // watches.senders
	holding  bool          // this watch holds a slot
}

// acquire takes a sender slot.
func (w *watch) acquire(ctx context.Context) error {
	if w.holding {
		return nil
	}
	select {
	case w.slots <- struct{}{}:
		w.holding = true
		return nil
	case <-w.stopped:
		return errWatchStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release gives the sender slot back, if held.
func (w *watch) release() {
	if w.holding {
		<-w.slots
		w.holding = false
	}
}

// serve answers req and streams the watch until it ends.
func (w *watches) serve(ctx context.Context, req micro.Request, wr api.WatchRequest, deliver string) {
	s := w.s
	r := s.r
	store := r.cfg.Store.(WatchStore)
	fail := func(err error) {
		err = s.shutdown(ctx, err)
		h, body := wire.EncodeWatchReply(r.Replica(), "", failedToken(wr.Token, err), err)
		s.respond(req, h, body, err)
	}
	// Wait as a read does: for the session's token, and for a resume
	// point, which is a stream position too.
	tok := wr.Token
	if wr.Resume && wr.After > tok.Seq {
		if err := r.serves(tok); err != nil {
			fail(err)
			return
		}
		tok = r.cfg.Stream.Token(wr.After)
	}
	if _, err := r.await(ctx, tok, wr.Wait); err != nil {
		fail(err)
		return
	}
	if wr.Resume {
		if _, _, _, err := store.Changes(wr.After, wr.Prefix, 0, nil); err != nil {
			fail(err)
			return
		}
	}
	wt := &watch{s: s, store: store, req: wr, deliver: deliver, need: tok.Seq,
		ackCh: make(chan struct{}, 1), stopped: make(chan struct{}), slots: w.slots()}
	wt.heard.Store(time.Now().UnixNano())
	control := s.nc.NewInbox()
	sub, err := s.nc.Subscribe(control, wt.control)
	if err != nil {
		fail(api.Errorf(api.ErrUnavailable, "replica %s: watch control subscription: %w", r.Replica(), err))
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	h, body := wire.EncodeWatchReply(r.Replica(), control, r.cfg.Stream.Token(max(tok.Seq, r.cfg.Store.Applied())), nil)
	s.respond(req, h, body, nil)

	err = wt.run(ctx)
	switch {
	case errors.Is(err, errWatchStopped):
	case err != nil:
		err = s.shutdown(ctx, err)
		if ctx.Err() != nil {
			err = api.Errorf(api.ErrUnavailable, "replica %s is shutting down", r.Replica())
		}
		_ = wt.publish(api.Event{Type: api.EventError, Err: err})
		s.log.Debug().Err(err).Str("prefix", wr.Prefix).Msg("watch ended")
	}
}

// errWatchStopped ends a watch its watcher stopped.
var errWatchStopped = errors.New("watch stopped by the watcher")

// control handles a message of the watcher.
func (w *watch) control(m *nats.Msg) {
	c, err := wire.DecodeWatchControl(m.Data)
	if err != nil {
		return // not a watcher of this protocol; it keeps nothing alive
	}
	w.heard.Store(time.Now().UnixNano())
	if c.Stop {
		w.stopOnce.Do(func() { close(w.stopped) })
		return
	}
	for {
		old := w.acked.Load()
		if c.Received <= old || w.acked.CompareAndSwap(old, c.Received) {
			break
		}
	}
	select {
	case w.ackCh <- struct{}{}:
	default:
	}
}

// alive fails when the watcher has sent nothing for the client timeout.
func (w *watch) alive() error {
	quiet := time.Since(time.Unix(0, w.heard.Load()))
	if quiet > w.s.WatchClientTimeout {
		return api.Errorf(api.ErrUnavailable, "watcher sent no acknowledgement for %v: cut off (dead or too slow)", quiet.Round(time.Millisecond))
	}
	return nil
}

// publish sends the next event once the watcher has acknowledged enough of
// the ones before.
func (w *watch) publish(ev api.Event) error {
	w.sent++
	return w.s.nc.PublishMsg(wire.EventMsg(w.deliver, w.sent, ev))
}

// send is publish with flow control: at most WatchUnacked events beyond the
// last acknowledged count are in flight.
func (w *watch) send(ctx context.Context, ev api.Event) error {
	held := w.holding
	for w.sent-w.acked.Load() >= uint64(w.s.WatchUnacked) {
		w.release() // waiting for the watcher takes no slot
		if err := w.alive(); err != nil {
			return err
		}
		t := time.NewTimer(w.s.WatchClientTimeout / 4)
		select {
		case <-w.ackCh:
		case <-t.C:
		case <-w.stopped:
			t.Stop()
			return errWatchStopped
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
	if held {
		if err := w.acquire(ctx); err != nil {
			return err
		}
	}
	if err := w.publish(ev); err != nil {
		return api.Errorf(api.ErrUnavailable, "publish watch event: %w", err)
	}
	return nil
}

// run sends the initial state (unless the watch resumes), then every change
// of the prefix from the window, and progress while idle.
func (w *watch) run(ctx context.Context) error {
	defer w.release()
	r := w.s.r
	cursor := w.req.After
	if !w.req.Resume {
		applied, err := w.store.ScanAll(w.req.Prefix, func(rec api.Record, applied uint64) error {
			if err := r.checkSnapshot(w.need, applied); err != nil {
				return err
			}
			return w.send(ctx, api.Event{Type: api.EventPut, Key: rec.Key, Revision: rec.Revision, Value: rec.Value,
				Token: r.cfg.Stream.Token(max(w.need, applied))})
		})
		if err == nil {
			err = r.checkSnapshot(w.need, applied)
		}
		if err != nil {
			if api.Code(err) == api.CodeInternal && !errors.Is(err, errWatchStopped) && ctx.Err() == nil {
				err = r.internal("watch", err)
			}
			return err
		}
		if err := w.send(ctx, api.Event{Type: api.EventSynced, ID: applied, Token: r.cfg.Stream.Token(max(w.need, applied))}); err != nil {
			return err
		}
		cursor = applied
	} else if err := w.send(ctx, api.Event{Type: api.EventProgress, ID: cursor, Token: r.cfg.Stream.Token(max(w.need, cursor))}); err != nil {
		// A resumed watch starts with where it is, so that its watcher
		// knows at once that it runs.
		return err
	}
	progress := w.req.Progress
	if progress <= 0 {
		progress = w.s.WatchProgress
	}
	tick := time.NewTicker(progress)
	defer tick.Stop()
	idleSince := time.Now()
	var buf []api.Change
	for {
		if err := r.cfg.Store.Err(); err != nil {
			return r.unavailable(err)
		}
		select {
		case <-w.stopped: // a watcher that stops while changes keep coming
			return errWatchStopped
		default:
		}
		wake := w.s.watches.wake(ctx, w.store) // before Changes, so that no commit falls between
		if err := w.acquire(ctx); err != nil {
			return err
		}
		recs, next, _, err := w.store.Changes(cursor, w.req.Prefix, watchBatch, buf[:0])
		if err != nil {
			if errors.Is(err, api.ErrResumePointCompacted) {
				floor, pos := w.store.WatchWindow()
				return api.Errorf(api.ErrResumePointCompacted, "slow consumer: fell more than %d changes behind (at %d, the replica's window holds %d to %d)",
					pos-cursor, cursor, floor+1, pos)
			}
			return err
		}
		buf = recs
		for _, rec := range recs {
			// A read never splits a revision's or a transaction's
			// changes: the last of them is in recs.
			ev := api.Event{Type: api.EventPut, ID: rec.Revision, Key: rec.Key, Revision: rec.Revision, Value: rec.Value,
				Token: r.cfg.Stream.Token(max(w.need, rec.Revision)), More: rec.More, Txn: rec.Txn}
			if rec.Deleted {
				ev.Type, ev.Value = api.EventDelete, nil
			}
			if err := w.send(ctx, ev); err != nil {
				return err
			}
		}
		w.release()
		clear(buf)
		cursor = next
		if len(recs) > 0 {
			idleSince = time.Now()
			continue
		}
		select {
		case <-wake:
		case <-tick.C:
			if err := w.alive(); err != nil {
				return err
			}
			if time.Since(idleSince) >= progress-progress/10 {
				if err := w.send(ctx, api.Event{Type: api.EventProgress, ID: cursor, Token: r.cfg.Stream.Token(max(w.need, cursor))}); err != nil {
					return err
				}
				idleSince = time.Now()
			}
		case <-w.stopped:
			return errWatchStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// addWatchEndpoint adds the watch endpoint on subject to svc.
func (s *Service) addWatchEndpoint(svc micro.Service, name, subject string, queue bool, h micro.Handler, whose string) error {
	opts := []micro.EndpointOpt{micro.WithEndpointSubject(subject), micro.WithEndpointMetadata(map[string]string{
		"description":     "Watch a prefix from the token, " + whose,
		"request.body":    `{"prefix","after"?,"deliver","progress"?}`,
		"request.headers": "Tidemark-Token, Tidemark-Wait",
		"reply.body":      `{"control","replica"}; events then go to deliver`,
		"event.headers":   "Tidemark-Event, Tidemark-Event-Id, Tidemark-Event-Seq",
		"event.body":      `{"key","revision","value","txn"?:{"revision","ops"},"token"}`,
		"control.body":    `{"received":N} at least every 2s, {"stop":true}`,
		"errors":          "Nats-Service-Error-Code; resume_point_compacted when too old",
	})}
	if queue {
		opts = append(opts, micro.WithEndpointQueueGroup(QueueGroup))
	} else {
		opts = append(opts, micro.WithEndpointQueueGroupDisabled())
	}
	if err := svc.AddEndpoint(name, h, opts...); err != nil {
		return fmt.Errorf("reader service: %w", err)
	}
	return nil
}
