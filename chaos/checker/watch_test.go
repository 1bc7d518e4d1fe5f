package checker_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/chaos/checker"
	"github.com/tidemark/tidemark/chaos/history"
)

// watchStream is a stream with keys under p/ and outside it, a key that
// expires at a message that writes another, a transaction and a write the
// session rule skips.
func watchStream() []history.Message {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	return []history.Message{
		{Seq: 1, Kind: history.Put, Key: "p/a", Value: []byte("a1"), Time: at(0)},
		{Seq: 2, Kind: history.Put, Key: "q/x", Value: []byte("x1"), Time: at(0)},
		{Seq: 3, Kind: history.Put, Key: "p/b", Value: []byte("b1"), Time: at(0), TTL: time.Second},
		{Seq: 4, Kind: history.Delete, Key: "p/a", Time: at(0.5)},
		{Seq: 5, Kind: history.Put, Key: "p/f", Value: []byte("f1"), Time: at(2)}, // p/b expires here
		{Seq: 6, Kind: history.Marker, Time: at(3), TxnSize: 2},
		{Seq: 7, Kind: history.Put, Key: "p/c", Value: []byte("c1"), Time: at(3), TxnIndex: 1, TxnSize: 2},
		{Seq: 8, Kind: history.Put, Key: "q/y", Value: []byte("y1"), Time: at(3), TxnIndex: 2, TxnSize: 2},
		{Seq: 9, Kind: history.Put, Key: "p/d", Value: []byte("d1"), Time: at(3), SessionID: "s", SessionSeq: 2},
		{Seq: 10, Kind: history.Put, Key: "p/d", Value: []byte("d2"), Time: at(3), SessionID: "s", SessionSeq: 1}, // skipped
		{Seq: 11, Kind: history.Put, Key: "p/e", Value: []byte("e1"), Time: at(3)},
	}
}

func initial(key, value string, rev uint64) history.WatchEvent {
	return history.WatchEvent{Type: history.WatchPut, Key: key, Value: []byte(value), Revision: rev}
}

func wput(key, value string, rev uint64) history.WatchEvent {
	return history.WatchEvent{Type: history.WatchPut, ID: rev, Key: key, Value: []byte(value), Revision: rev}
}

func wdel(key string, rev uint64) history.WatchEvent {
	return history.WatchEvent{Type: history.WatchDelete, ID: rev, Key: key, Revision: rev}
}

func synced(id uint64) history.WatchEvent {
	return history.WatchEvent{Type: history.WatchSynced, ID: id}
}

func progress(id uint64) history.WatchEvent {
	return history.WatchEvent{Type: history.WatchProgress, ID: id}
}

func more(ev history.WatchEvent) history.WatchEvent { ev.More = true; return ev }

// goodWatches are watchers that saw what the fold of watchStream holds.
func goodWatches() []history.Watch {
	return []history.Watch{
		{ID: 0, Prefix: "p/", Events: []history.WatchEvent{
			initial("p/a", "a1", 1), synced(1),
			wput("p/b", "b1", 3), wdel("p/a", 4), more(wdel("p/b", 5)), wput("p/f", "f1", 5), progress(6), wput("p/c", "c1", 7), progress(8),
			{Type: history.WatchError, Code: "resume_point_compacted", Error: "resume point compacted"},
			// Listed again.
			initial("p/c", "c1", 7), initial("p/f", "f1", 5), synced(7),
			wput("p/d", "d1", 9), wput("p/e", "e1", 11), progress(11),
		}},
		{ID: 1, Prefix: "q/", Events: []history.WatchEvent{
			synced(0), wput("q/x", "x1", 2), progress(5), wput("q/y", "y1", 8), progress(11),
		}},
		// Ends part way through revision 5: its put of p/f is not missing.
		{ID: 2, Prefix: "p/", Events: []history.WatchEvent{
			initial("p/b", "b1", 3), synced(4), more(wdel("p/b", 5)),
		}},
	}
}

func watchHistory(ws []history.Watch) *history.History {
	return &history.History{Version: history.Version, Final: &history.Final{Stream: watchStream()}, Watches: ws}
}

func TestCheckWatchGood(t *testing.T) {
	r := checker.Check(watchHistory(goodWatches()))
	if n := r.Counts[checker.Watch]; n != 0 {
		t.Fatalf("%d watch violations in a good history:\n%s", n, r.Summary())
	}
	if got, want := r.WatchEvents, 14; got != want {
		t.Fatalf("%d watch events checked, want %d", got, want)
	}
	if got, want := r.WatchChanges, []int{7, 2, 1}; !slices.Equal(got, want) {
		t.Fatalf("change events per watcher %v, want %v", got, want)
	}
	// A watcher that lists again on its own ends its listing the same way.
	ws := goodWatches()
	ws[0].Events[9] = history.WatchEvent{Type: history.WatchRelist}
	if r := checker.Check(watchHistory(ws)); r.Counts[checker.Watch] != 0 || r.WatchEvents != 14 {
		t.Fatalf("%d watch violations, %d events checked with a relist:\n%s", r.Counts[checker.Watch], r.WatchEvents, r.Summary())
	}
}

// TestCheckWatchViolations breaks the good watchers one way at a time and
// checks that the watch check names what broke.
func TestCheckWatchViolations(t *testing.T) {
	// edit changes watcher w's events.
	type edit func(evs []history.WatchEvent) []history.WatchEvent
	at := func(i int, ev history.WatchEvent) edit { // replace event i
		return func(evs []history.WatchEvent) []history.WatchEvent { evs[i] = ev; return evs }
	}
	drop := func(i int) edit {
		return func(evs []history.WatchEvent) []history.WatchEvent { return slices.Delete(evs, i, i+1) }
	}
	insert := func(i int, ev history.WatchEvent) edit {
		return func(evs []history.WatchEvent) []history.WatchEvent { return slices.Insert(evs, i, ev) }
	}
	tests := []struct {
		name   string
		w      int
		edit   edit
		detail string
	}{
		{"missing change", 0, drop(3), `delete "p/a" at 4 missing`},
		{"missing expiry", 0, drop(4), `delete "p/b" at 5 missing`},
		{"missing transaction op", 0, drop(7), `put "p/c" at 7 missing`},
		{"missing last", 1, drop(3), `put "q/y" at 8 missing`},
		{"repeated", 0, insert(3, wput("p/b", "b1", 3)), `"p/b" at 3 repeated`},
		{"out of order", 0, func(evs []history.WatchEvent) []history.WatchEvent {
			evs[2], evs[3] = evs[3], evs[2]
			return evs
		}, "out of revision order"},
		{"outside the prefix", 0, insert(2, wput("q/x", "x1", 2)), "outside the prefix"},
		{"wrong value", 0, at(14, wput("p/e", "e2", 11)), `the fold wrote "e1"`},
		{"phantom", 0, insert(6, wput("p/z", "z1", 6)), "phantom"},
		{"skipped write shown", 0, insert(14, wput("p/d", "d2", 10)), "phantom"},
		{"delete for a put", 1, at(1, wdel("q/x", 2)), "phantom"},
		{"id and revision differ", 1, at(1, history.WatchEvent{Type: history.WatchPut, ID: 2, Key: "q/x", Value: []byte("x1"), Revision: 1}), "has id 2 and revision 1"},
		{"beyond the stream", 1, insert(5, progress(12)), "beyond the stream's end"},
		{"ids go back", 1, insert(3, progress(1)), "ids went back"},
		{"initial missing", 0, drop(11), `initial state misses "p/f"`},
		{"initial wrong value", 0, at(0, initial("p/a", "a2", 1)), `the fold at 1 has "a1"`},
		{"initial not live", 0, insert(1, initial("p/b", "b1", 3)), "no live key at 1"},
		{"initial repeated", 0, insert(1, initial("p/a", "a1", 1)), "repeated"},
		{"initial after synced", 1, insert(1, initial("q/x", "x1", 2)), "after the synced event"},
		{"no synced", 2, drop(1), "without a synced event"},
		{"listed again without an end", 0, drop(9), "a second synced event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := goodWatches()
			ws[tt.w].Events = tt.edit(slices.Clone(ws[tt.w].Events))
			r := checker.Check(watchHistory(ws))
			if r.Counts[checker.Watch] == 0 {
				t.Fatalf("no watch violation:\n%s", r.Summary())
			}
			for _, v := range r.Examples[checker.Watch] {
				if strings.Contains(v.Detail, tt.detail) {
					return
				}
			}
			t.Fatalf("no watch violation says %q:\n%s", tt.detail, r.Summary())
		})
	}
}
