package replicator

import (
	"github.com/tidemark/tidemark/api"

	"sort"

	"github.com/dgraph-io/badger/v4"
	"strings"
	"sync"
)

// Defaults of the watch window (Config.WatchWindow, WatchWindowBytes).
const (
	// DefaultWatchWindow is the most recent changes the feed holds.
	DefaultWatchWindow = 100000
	// DefaultWatchWindowBytes bounds the bytes of keys and values the feed holds.
	DefaultWatchWindowBytes = 64 << 20
)

// feedEntryOverhead is what the feed charges an entry beyond its key and
// value, roughly.
const feedEntryOverhead = 64

// feed is the watch window: the most recent changes the apply loop
// committed, in stream order, bounded by count and bytes, and the position
// (applied) they bring the state to. It is filled from one place, commitTxn,
// after each commit, with every change that commit applied; every later
// change of the state (expiries, transactions) must come through there too,
// so that a watch sees everything a read of the replica would.
//
// The apply loop does no work per watcher: it appends, moves the position
// and closes one channel, which wakes every watcher at once. Each watcher
// pulls what it needs with Changes at its own pace; one that falls behind
// the window's start gets api.ErrResumePointCompacted.
type feed struct {
	mu sync.RWMutex
	// ents[start:] are the changes held, revisions ascending: every change
	// with a revision in (floor, pos].
	ents     []feedEntry
	start    int
	bytes    int64
	floor    uint64
	pos      uint64
	maxCount int
	maxBytes int64
	wake     chan struct{} // closed and replaced on every append and reset
}

// feedEntry is one change of the feed. txn marks a change that a
// transaction made; group is the revision of the transaction whose changes
// (from its first op's to its last op's, with the expiries its ops bring)
// it is among, which a read never splits, 0 outside any.
type feedEntry struct {
	rec   api.Record
	txn   api.TxnMark
	group uint64
}

func newFeed(count int, bytes int64) *feed {
	if count <= 0 {
		count = DefaultWatchWindow
	}
	if bytes <= 0 {
		bytes = DefaultWatchWindowBytes
	}
	return &feed{maxCount: count, maxBytes: bytes, wake: make(chan struct{})}
}

func feedCost(rec api.Record) int64 {
	return int64(len(rec.Key) + len(rec.Value) + feedEntryOverhead)
}

// append adds the changes of one commit that brought the state to pos. It
// keeps no reference to ents, only to the records' values, which nobody
// modifies.
func (f *feed) append(ents []feedEntry, pos uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range ents {
		f.ents = append(f.ents, e)
		f.bytes += feedCost(e.rec)
	}
	for n := len(f.ents) - f.start; n > 0 && (n > f.maxCount || f.bytes > f.maxBytes); n-- {
		old := &f.ents[f.start]
		f.floor = old.rec.Revision
		f.bytes -= feedCost(old.rec)
		*old = feedEntry{}
		f.start++
	}
	if f.start > 1024 && f.start*2 >= len(f.ents) {
		n := copy(f.ents, f.ents[f.start:])
		clear(f.ents[n:])
		f.ents, f.start = f.ents[:n], 0
	}
	f.pos = max(f.pos, pos)
	close(f.wake)
	f.wake = make(chan struct{})
}

// reset empties the feed for a state replaced as a whole (opened, rebuilt,
// restored) that is at applied: only changes after it can be served.
func (f *feed) reset(applied uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.ents)
	f.ents, f.start, f.bytes = f.ents[:0], 0, 0
	f.floor, f.pos = applied, applied
	close(f.wake)
	f.wake = make(chan struct{})
}

// changes appends to dst up to limit changes of keys under prefix with a
// revision above after, in stream order (more than limit rather than part
// of a revision's or a transaction's changes), and returns next, the
// position they bring a watcher to: the revision of the last change looked
// at when limit stopped it, else the feed's position (never below after).
// Each change's More says whether more changes of its revision or
// transaction follow it in dst. wake is closed at the next append. A
// watcher at after below the window's start has lost changes:
// api.ErrResumePointCompacted.
func (f *feed) changes(after uint64, prefix string, limit int, dst []api.Change) (out []api.Change, next uint64, wake <-chan struct{}, err error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if after < f.floor {
		return dst, after, f.wake, api.Errorf(api.ErrResumePointCompacted,
			"revision %d is older than this replica's watch window, which holds the changes after %d", after, f.floor)
	}
	held := f.ents[f.start:]
	i := sort.Search(len(held), func(i int) bool { return held[i].rec.Revision > after })
	next = after
	first := len(dst)
	var group, sentGroup uint64 // of the last change looked at, and sent
	for ; i < len(held); i++ {
		e := &held[i]
		if strings.HasPrefix(e.rec.Key, prefix) {
			// Changes of one revision (the expiries a message brings
			// with its own write) and of one transaction are never
			// split: next must not name a revision or a transaction
			// half sent.
			if len(dst) >= limit && e.rec.Revision != next && (e.group == 0 || e.group != group) {
				return dst, next, f.wake, nil
			}
			if n := len(dst); n > first && (dst[n-1].Revision == e.rec.Revision || e.group != 0 && e.group == sentGroup) {
				dst[n-1].More = true
			}
			dst = append(dst, api.Change{Record: e.rec, Txn: e.txn})
			sentGroup = e.group
		}
		next, group = e.rec.Revision, e.group
	}
	return dst, max(next, f.pos), f.wake, nil
}

// window returns the feed's start (floor) and position.
func (f *feed) window() (floor, pos uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.floor, f.pos
}

// Changes appends to dst up to limit changes (puts, and deletes with
// Deleted set) of keys under prefix applied after revision after, in
// stream order, a transaction's marked and never split, from the watch window (Config.WatchWindow), and returns the
// position they bring a watcher to (see feed.changes) and a channel closed
// at the next commit. A revision older than the window is
// api.ErrResumePointCompacted. It does no I/O.
func (r *Replicator) Changes(after uint64, prefix string, limit int, dst []api.Change) ([]api.Change, uint64, <-chan struct{}, error) {
	return r.feed.changes(after, prefix, limit, dst)
}

// WatchWindow returns the revision after which the watch window holds
// every change, and the position it holds them up to.
func (r *Replicator) WatchWindow() (floor, pos uint64) { return r.feed.window() }

// ScanAll calls fn with every live record under prefix, in key order, and
// the applied sequence of the snapshot they are all read from, which it
// also returns. fn may block (the snapshot stays open); an error of fn ends
// the scan and is returned.
func (r *Replicator) ScanAll(prefix string, fn func(rec api.Record, applied uint64) error) (applied uint64, err error) {
	r.dbMu.RLock()
	defer r.dbMu.RUnlock()
	if r.db == nil {
		return 0, r.notOpen()
	}
	if err := r.wrongReason(); err != nil {
		return r.applied.Load(), err
	}
	var fnErr error
	err = r.db.View(func(txn *badger.Txn) (err error) {
		defer guard("scan", &err)
		if applied, err = readApplied(txn); err != nil {
			return err
		}
		return eachLive(txn, prefix, "", 100, func(rec api.Record) (bool, error) {
			if fnErr = fn(rec, applied); fnErr != nil {
				return false, nil
			}
			return true, nil
		})
	})
	if fnErr != nil {
		return applied, fnErr
	}
	if err == nil {
		err = r.wrongReason()
	}
	if err != nil {
		return applied, r.storeFailed(err)
	}
	return applied, nil
}
