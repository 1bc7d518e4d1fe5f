package checker

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/tidemark/tidemark/chaos/history"
)

// segment is one listing of a watcher: its initial state, the synced
// event's position, and the change events after it up to the watch's end.
type segment struct {
	initial []history.WatchEvent
	synced  uint64
	hasSync bool
	changes []history.WatchEvent
	// complete is the highest position the watch said it had sent every
	// change up to (a synced or progress id, or a change's revision that
	// no other change of its revision followed); last the highest id seen.
	complete, last uint64
	events         []history.WatchEvent
}

// checkWatches checks what every watcher saw against the fold of the
// stream, one listing at a time.
func checkWatches(r *Report, w *world, watches []history.Watch) {
	for _, wt := range watches {
		r.Watchers++
		changes := 0
		for _, ev := range wt.Events {
			if ev.ID != 0 && (ev.Type == history.WatchPut || ev.Type == history.WatchDelete) {
				changes++
			}
		}
		r.WatchChanges = append(r.WatchChanges, changes)
		var seg *segment
		flush := func() {
			if seg != nil {
				checkSegment(r, w, wt, seg)
			}
			seg = nil
		}
		for _, ev := range wt.Events {
			if seg == nil {
				seg = &segment{}
			}
			seg.events = append(seg.events, ev)
			switch ev.Type {
			case history.WatchError, history.WatchRelist:
				flush()
				continue
			case history.WatchPut, history.WatchDelete:
				if ev.ID == 0 {
					if seg.hasSync || ev.Type != history.WatchPut {
						watchViolation(r, wt, seg, ev.Revision, "a record of an initial state (%s %q) after the synced event", ev.Type, ev.Key)
						continue
					}
					seg.initial = append(seg.initial, ev)
					continue
				}
				if !seg.hasSync {
					watchViolation(r, wt, seg, ev.ID, "change %s %q at %d before the synced event", ev.Type, ev.Key, ev.ID)
					continue
				}
				seg.changes = append(seg.changes, ev)
				if !ev.More {
					seg.complete = max(seg.complete, ev.ID)
				}
			case history.WatchSynced:
				if seg.hasSync {
					watchViolation(r, wt, seg, ev.ID, "a second synced event (%d) without an error between", ev.ID)
					continue
				}
				seg.hasSync, seg.synced, seg.complete = true, ev.ID, ev.ID
			case history.WatchProgress:
				seg.complete = max(seg.complete, ev.ID)
			}
			if ev.ID != 0 {
				if ev.ID < seg.last {
					watchViolation(r, wt, seg, ev.ID, "%s event at %d after id %d: ids went back", ev.Type, ev.ID, seg.last)
				}
				seg.last = max(seg.last, ev.ID)
			}
		}
		flush()
	}
}

func watchViolation(r *Report, wt history.Watch, seg *segment, seq uint64, format string, args ...any) {
	from := "before its synced event"
	if seg.hasSync {
		from = fmt.Sprintf("synced at %d", seg.synced)
	}
	r.add(Violation{Kind: Watch, Session: -1, Index: -1, Seq: seq,
		Detail: fmt.Sprintf("watcher %d (prefix %q, %s): ", wt.ID, wt.Prefix, from) + fmt.Sprintf(format, args...)})
}

// verifiable reports whether seg can be checked against the final stream:
// its events name that stream, and it saw nothing that a fault may have
// lost (no event before a restore that lost a tail).
func (w *world) verifiable(seg *segment) bool {
	for _, ev := range seg.events {
		if ev.Stream != "" && w.finalID != "" && ev.Stream != w.finalID {
			return false
		}
		for _, l := range w.losses {
			if ev.Time.Before(l.Restored) {
				return false
			}
		}
	}
	return true
}

// checkSegment checks one listing: the initial state is the fold's live
// keys under the prefix at the synced position S, and the changes are
// exactly the fold's changes of keys under the prefix after S, in revision
// order, up to the last position the watch reached.
func checkSegment(r *Report, w *world, wt history.Watch, seg *segment) {
	if !seg.hasSync {
		if len(seg.initial) > 0 || len(seg.changes) > 0 {
			watchViolation(r, wt, seg, 0, "%d records of an initial state without a synced event", len(seg.initial))
		}
		return
	}
	if w.final == nil {
		return
	}
	if !w.verifiable(seg) {
		r.WatchUnverifiable++
		return
	}
	s := w.final
	if n := uint64(len(s.Stream)); seg.last > n {
		watchViolation(r, wt, seg, seg.last, "id %d beyond the stream's end (%d)", seg.last, n)
		return
	}
	// The initial state.
	live := map[string]history.Record{}
	for _, rec := range s.Live(wt.Prefix, seg.synced) {
		live[rec.Key] = rec
	}
	seen := map[string]bool{}
	for _, ev := range seg.initial {
		r.WatchEvents++
		switch rec, ok := live[ev.Key]; {
		case !strings.HasPrefix(ev.Key, wt.Prefix):
			watchViolation(r, wt, seg, ev.Revision, "initial record of %q, outside the prefix", ev.Key)
		case seen[ev.Key]:
			watchViolation(r, wt, seg, ev.Revision, "initial record of %q repeated", ev.Key)
		case !ok:
			watchViolation(r, wt, seg, ev.Revision, "initial record of %q = %q at %d: no live key at %d", ev.Key, abbrev(ev.Value), ev.Revision, seg.synced)
		case ev.Revision != rec.Revision || !bytes.Equal(ev.Value, rec.Value):
			watchViolation(r, wt, seg, ev.Revision, "initial record of %q = %q at %d, the fold at %d has %q at %d",
				ev.Key, abbrev(ev.Value), ev.Revision, seg.synced, abbrev(rec.Value), rec.Revision)
		}
		seen[ev.Key] = true
	}
	for key, rec := range live {
		if !seen[key] {
			watchViolation(r, wt, seg, rec.Revision, "initial state misses %q = %q at %d", key, abbrev(rec.Value), rec.Revision)
		}
	}

	// The changes, by revision.
	got := map[uint64][]history.WatchEvent{}
	var prev uint64
	ordered := true
	for _, ev := range seg.changes {
		r.WatchEvents++
		if ordered && ev.ID < prev {
			watchViolation(r, wt, seg, ev.ID, "change %s %q at %d after a change at %d: out of revision order", ev.Type, ev.Key, ev.ID, prev)
			ordered = false
		}
		prev = max(prev, ev.ID)
		if ev.Revision != ev.ID {
			watchViolation(r, wt, seg, ev.ID, "change %s %q has id %d and revision %d", ev.Type, ev.Key, ev.ID, ev.Revision)
		}
		if !strings.HasPrefix(ev.Key, wt.Prefix) {
			watchViolation(r, wt, seg, ev.ID, "change %s %q at %d, outside the prefix", ev.Type, ev.Key, ev.ID)
			continue
		}
		got[ev.ID] = append(got[ev.ID], ev)
	}
	want := map[uint64][]history.Record{}
	var revs []uint64
	for _, rec := range s.Changes(wt.Prefix, seg.synced, seg.last) {
		if len(want[rec.Revision]) == 0 {
			revs = append(revs, rec.Revision)
		}
		want[rec.Revision] = append(want[rec.Revision], rec)
	}
	for rev := range got {
		if len(want[rev]) == 0 {
			revs = append(revs, rev)
		}
	}
	slices.Sort(revs)
	for _, rev := range revs {
		checkRevision(r, wt, seg, rev, want[rev], got[rev])
	}
}

// checkRevision matches the changes a watcher saw at rev with the fold's.
func checkRevision(r *Report, wt history.Watch, seg *segment, rev uint64, want []history.Record, got []history.WatchEvent) {
	used := make([]bool, len(want))
	for _, ev := range got {
		del := ev.Type == history.WatchDelete
		match, repeated := -1, false
		for i, rec := range want {
			if rec.Key != ev.Key || rec.Deleted != del {
				continue
			}
			if used[i] {
				repeated = true
				continue
			}
			match = i
			break
		}
		switch {
		case match >= 0:
			used[match] = true
			if !del && !bytes.Equal(ev.Value, want[match].Value) {
				watchViolation(r, wt, seg, rev, "change put %q = %q at %d, the fold wrote %q", ev.Key, abbrev(ev.Value), rev, abbrev(want[match].Value))
			}
		case repeated:
			watchViolation(r, wt, seg, rev, "change %s %q at %d repeated", ev.Type, ev.Key, rev)
		default:
			watchViolation(r, wt, seg, rev, "change %s %q = %q at %d: the fold has no such change (phantom)", ev.Type, ev.Key, abbrev(ev.Value), rev)
		}
	}
	if rev > seg.complete {
		return // the watch ended part way through this revision
	}
	for i, rec := range want {
		if !used[i] {
			op := "put"
			if rec.Deleted {
				op = "delete"
			}
			watchViolation(r, wt, seg, rev, "change %s %q at %d missing (the watch reached %d)", op, rec.Key, rev, seg.complete)
		}
	}
}
