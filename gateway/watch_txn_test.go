package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
)

// TestWatchTxnMarked: a transaction of puts and deletes under a watched
// prefix (and one op outside it) reaches an SSE watcher and a NATS watcher
// as consecutive events, with no other event between them while other
// writes of the prefix go on, each marked with the transaction's revision
// and op count, the SSE id on the last of them only; a single put is not
// marked. A resume (Last-Event-ID, WatchAfter) after the transaction
// repeats none of it; one after the write before it loses none of it.
func TestWatchTxnMarked(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2, WatchProgress: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seed := put(t, s, "t/c", "deleted by the transaction")

	status, body, sse := openWatch(t, s.URL+"/v1/watch?prefix=t/", api.HeaderToken, seed.Token)
	if status != 200 {
		t.Fatalf("watch: %d %s", status, body)
	}
	if ev := sse.next(t, 10*time.Second); ev.Type != "put" || ev.change(t).Key != "t/c" {
		t.Fatalf("initial event %+v, want the put of t/c", ev)
	}
	if ev := sse.next(t, 10*time.Second); ev.Type != "synced" {
		t.Fatalf("event %+v, want synced", ev)
	}
	c := client.New(s.Transport)
	natsEvents := watchEvents(ctx, c, "t/", client.WatchAfter(seed.Revision))

	// Other writes of the prefix go on around the transaction.
	bgCtx, bgStop := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for i := 0; bgCtx.Err() == nil; i++ {
			if _, err := c.Put(bgCtx, "t/bg/"+strconv.Itoa(i), []byte("x")); err != nil && bgCtx.Err() == nil {
				t.Errorf("background put: %v", err)
				return
			}
		}
	}()
	single := put(t, s, "t/single", "1")
	r := do(t, "POST", s.URL+"/v1/txn", `{"ops":[
		{"op":"put","key":"t/a","value":"YQ=="},
		{"op":"put","key":"u/outside","value":"dQ=="},
		{"op":"delete","key":"t/c"},
		{"op":"put","key":"t/b","value":"Yg=="}]}`)
	if r.Status != 200 {
		t.Fatalf("POST /v1/txn: %d %s", r.Status, r.Body)
	}
	var res api.TxnResultJSON
	if err := json.Unmarshal([]byte(r.Body), &res); err != nil {
		t.Fatal(err)
	}
	after := put(t, s, "t/after", "2")
	bgStop()
	bg.Wait()

	type change struct {
		typ, key string
		rev      uint64
		txn      api.TxnMark
		hasID    bool // SSE only
	}
	mark := api.TxnMark{Revision: res.Revision, Ops: 4}
	want := []change{
		{"put", "t/single", single.Revision, api.TxnMark{}, true},
		{"put", "t/a", res.Ops[0].Revision, mark, false},
		{"delete", "t/c", res.Ops[2].Revision, mark, false},
		{"put", "t/b", res.Ops[3].Revision, mark, true},
		{"put", "t/after", after.Revision, api.TxnMark{}, true},
	}
	// check compares the changes a watcher saw up to t/after with want
	// from want[from]: the background writes left out, the transaction's
	// events consecutive among all.
	check := func(name string, got []change, from int, sseIDs bool) {
		t.Helper()
		var own []change
		run := -1 // index in got of the transaction's first event
		for i, c := range got {
			if !c.txn.IsZero() && run < 0 {
				run = i
			}
			if !strings.HasPrefix(c.key, "t/bg/") {
				own = append(own, c)
			}
		}
		for i, c := range got {
			if inRun := run >= 0 && i >= run && i < run+3; inRun != (c.txn == mark) {
				t.Fatalf("%s: event %d %+v of %+v: the transaction's 3 events are not consecutive", name, i, c, got)
			}
		}
		if len(own) != len(want)-from {
			t.Fatalf("%s: changes %+v, want %+v", name, own, want[from:])
		}
		for i, c := range own {
			w := want[from+i]
			if !sseIDs {
				c.hasID, w.hasID = false, false
			}
			if c != w {
				t.Fatalf("%s: change %d %+v, want %+v (all: %+v)", name, i, c, w, own)
			}
		}
	}
	sseChanges := func(w *sseStream) []change {
		var got []change
		for {
			ev := w.next(t, 10*time.Second)
			if ev.Type != "put" && ev.Type != "delete" {
				t.Fatalf("event %+v, want a change", ev)
			}
			d := ev.change(t)
			c := change{typ: ev.Type, key: d.Key, rev: d.Revision, hasID: ev.HasID}
			if d.Txn != nil {
				c.txn = api.TxnMark{Revision: d.Txn.Revision, Ops: d.Txn.Ops}
			}
			if ev.HasID && ev.ID != strconv.FormatUint(d.Revision, 10) {
				t.Fatalf("event %+v: id of revision %d", ev, d.Revision)
			}
			got = append(got, c)
			if d.Key == "t/after" {
				return got
			}
		}
	}
	natsChanges := func(events <-chan api.Event) []change {
		var got []change
		for {
			var ev api.Event
			select {
			case ev = <-events:
			case <-time.After(10 * time.Second):
				t.Fatal("no event within 10s")
			}
			if ev.Type == api.EventError {
				t.Fatalf("watch: %v", ev.Err)
			}
			if ev.Type != api.EventPut && ev.Type != api.EventDelete {
				continue
			}
			got = append(got, change{typ: string(ev.Type), key: ev.Key, rev: ev.Revision, txn: ev.Txn})
			if ev.Key == "t/after" {
				return got
			}
		}
	}
	check("SSE", sseChanges(sse), 0, true)
	check("NATS", natsChanges(natsEvents), 0, false)

	tok := after.Token
	for _, tt := range []struct {
		after uint64
		from  int
	}{{res.Revision, 4}, {single.Revision, 1}} {
		id := strconv.FormatUint(tt.after, 10)
		status, body, w := openWatch(t, s.URL+"/v1/watch?prefix=t/", api.HeaderToken, tok, "Last-Event-ID", id)
		if status != 200 {
			t.Fatalf("resume after %s: %d %s", id, status, body)
		}
		check("SSE after "+id, sseChanges(w), tt.from, true)
		check("NATS after "+id, natsChanges(watchEvents(ctx, c, "t/", client.WatchAfter(tt.after))), tt.from, false)
	}
}

// watchEvents runs c.Watch until ctx ends, passing its events on; an error
// comes as an error event.
func watchEvents(ctx context.Context, c *client.Client, prefix string, opts ...client.WatchOption) <-chan api.Event {
	out := make(chan api.Event, 4096)
	go func() {
		for ev, err := range c.Watch(ctx, prefix, append(opts, client.WatchProgress(100*time.Millisecond))...) {
			if err != nil {
				ev = api.Event{Type: api.EventError, Err: err}
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return out
}
