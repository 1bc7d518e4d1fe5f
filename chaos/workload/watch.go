package workload

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/chaos/history"
	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/backoff"
)

// watchRetryMax caps the pause between a watch that ended and the next
// listing.
const watchRetryMax = 2 * time.Second

// watcher is one watch of a prefix with the Go client over NATS, which
// resumes on another replica on its own. It records every event it is
// given; a watch that ends with an error (the resume point compacted, no
// replica starting it in time) is recorded as such, and the watcher lists
// again: a new initial state and its synced event. It also lists again
// on its own (recorded as WatchRelist) after a random WatchRelist to
// 2*WatchRelist changes, so that initial states taken under load are
// checked too.
type watcher struct {
	cfg *Config
	c   *client.Client
	rng *rand.Rand
	rec *history.Watch
}

func (w *watcher) run(ctx context.Context) {
	b := backoff.Backoff{Max: watchRetryMax}
	for ctx.Err() == nil {
		ended := false
		relist, changes := -1, 0
		if w.cfg.WatchRelist > 0 {
			relist = w.cfg.WatchRelist + w.rng.IntN(w.cfg.WatchRelist+1)
		}
		for ev, err := range w.c.Watch(ctx, w.rec.Prefix, client.WatchProgress(w.cfg.WatchProgress)) {
			if ctx.Err() != nil {
				return // events after the end are not recorded: the run no longer waits for them
			}
			if err != nil {
				w.add(history.WatchEvent{Type: history.WatchError, Code: api.Code(err), Error: err.Error()})
				ended = true
				break
			}
			b.Reset()
			w.add(history.WatchEvent{Type: history.WatchType(ev.Type), ID: ev.ID, Key: ev.Key, Revision: ev.Revision,
				Value: ev.Value, More: ev.More, Stream: ev.Token.Stream})
			if ev.ID != 0 && (ev.Type == api.EventPut || ev.Type == api.EventDelete) {
				if changes++; changes == relist {
					w.add(history.WatchEvent{Type: history.WatchRelist})
					ended = true
					b.Reset()
					break
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		if !ended {
			w.add(history.WatchEvent{Type: history.WatchError, Error: "the watch ended"})
		}
		if changes != relist && b.Wait(ctx) != nil {
			return
		}
	}
}

func (w *watcher) add(ev history.WatchEvent) {
	ev.Time = time.Now()
	w.rec.Events = append(w.rec.Events, ev)
}
