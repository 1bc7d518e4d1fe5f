package client

import (
	"github.com/tidemark/tidemark/api"

	"testing"
)

// TestWatchStateRevisionGroups: a revision with several changes (a write
// and the expiries it brings) is complete only once a later revision (or
// progress) comes; a resume in the middle of it asks after the revision
// before and passes on only the changes of it not yet passed on.
func TestWatchStateRevisionGroups(t *testing.T) {
	var got []string
	w := &watchState{req: api.WatchRequest{Resume: true, After: 4}, yield: func(ev Event, err error) bool {
		if ev.Key != "" {
			got = append(got, ev.Key)
		}
		return true
	}}
	change := func(key string, rev uint64) Event {
		return Event{Type: api.EventDelete, ID: rev, Key: key, Revision: rev}
	}
	for _, ev := range []Event{change("a", 5), change("b", 6), change("c", 6)} {
		if err := w.handle(ev); err != nil {
			t.Fatal(err)
		}
	}
	w.resuming() // cut after two of revision 6's changes
	if w.req.After != 5 {
		t.Fatalf("resume after %d, want 5 (revision 6 may be incomplete)", w.req.After)
	}
	for _, ev := range []Event{change("b", 6), change("c", 6), change("d", 6), change("e", 7),
		{Type: api.EventProgress, ID: 7}} {
		if err := w.handle(ev); err != nil {
			t.Fatal(err)
		}
	}
	if want := "a b c d e "; joined(got) != want {
		t.Fatalf("passed on %q, want %q", joined(got), want)
	}
	if w.resuming(); w.req.After != 7 || w.replay != 0 {
		t.Fatalf("resume after %d replaying %d, want 7 and 0", w.req.After, w.replay)
	}
}

func joined(keys []string) string {
	s := ""
	for _, k := range keys {
		s += k + " "
	}
	return s
}
