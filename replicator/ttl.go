package replicator

import (
	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/wire"

	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/stream"
)

// Keys with a time to live expire in stream time, so that every replica
// expires a key at the same stream position. A put with a TTL stores, with
// its record, an index entry
//
//	x/<expiry uint64 big-endian><key>   revision of the put, uint64 big-endian
//
// whose expiry E is the put's stream timestamp plus its TTL (Unix
// nanoseconds). Before the apply loop applies a message of stream time t,
// it expires every key whose E <= t: the key's record becomes a tombstone
// whose revision is that message's sequence S, in the same transaction as
// the message. An index entry whose key has moved on (a later put, with a
// TTL or without, or a delete: its record's revision is no longer the
// put's) is just removed. So every replica expires a key at S, the first
// message at or after E, whatever its own clock says and however late it
// applies it; a read after it is 404 with a token of at least S, which
// makes any other replica wait until it has expired the key too.
//
// The earliest pending E is kept in memory (nextExpiry, read again from
// the index whenever Run starts on a database: after Open, a reset or a
// snapshot install; the index travels in snapshots with every other key),
// so a message costs nothing when nothing is due.
//
// A message expires at most maxExpiries keys (fewer when they are long:
// maxExpiryBytes): when more are due at once, the rest expire at the
// following messages (ticks, on an idle stream), at the same positions on
// every replica.
//
// On an idle stream time does not move. A replica that is caught up and
// finds the earliest expiry due by its own clock publishes a clock tick
// (stream.TickMsg) expecting the stream's last sequence to be its applied:
// the tick lands only on a stream that is still idle, at most one per
// position however many replicas publish it, and it moves stream time past
// E (or, if the server's clock is behind, close to it: the next check
// publishes another). A key therefore expires on an idle stream within
// about Config.TickInterval plus the clock skew between the replica and
// the stream's server after E.

// expiryPrefix is the prefix of the expiry index.
const expiryPrefix = "x/"

// maxExpiries and maxExpiryBytes bound the index entries one message
// takes, in the order of the index (expiry, then key), and the bytes of
// their keys, so that the transaction of a single message always fits
// Badger's limits (a message takes entries while it has taken fewer than
// both); the rest expire at the following messages, at the same positions
// on every replica.
const (
	maxExpiries    = 4096
	maxExpiryBytes = 256 << 10
)

// DefaultTickInterval is how often a replica checks whether an idle
// stream needs a clock tick.
const DefaultTickInterval = 500 * time.Millisecond

func expiryKey(at int64, key string) []byte {
	b := make([]byte, 0, len(expiryPrefix)+8+len(key))
	b = append(b, expiryPrefix...)
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	return append(b, key...)
}

// decodeExpiryKey returns the expiry and the key of an index key.
func decodeExpiryKey(k []byte) (int64, string, error) {
	if len(k) <= len(expiryPrefix)+8 {
		return 0, "", fmt.Errorf("%w: expiry index key of %d bytes", ErrCorrupt, len(k))
	}
	return int64(binary.BigEndian.Uint64(k[len(expiryPrefix):])), string(k[len(expiryPrefix)+8:]), nil
}

// expiry is one key expired by a commit: its tombstone's revision.
type expiry struct {
	key string
	seq uint64
}

// expirer carries the expiries of one commit transaction: the earliest
// pending expiry as the transaction leaves it and the keys it expired. It
// reads the committed index through a read-only transaction of its own (the
// apply loop is the only writer, so that one sees what the commit
// transaction started from), and keeps the entries the commit transaction
// added itself: an iterator of the commit transaction would sort all its
// pending writes each time a message has something due.
type expirer struct {
	next    int64 // the earliest pending expiry; 0: none
	expired []expiry

	db    *badger.DB
	view  *badger.Txn      // read-only; opened when something is first due
	it    *badger.Iterator // of view's index, at the first entry not yet taken
	added []indexEntry     // the entries the commit transaction set, in index order
}

// indexEntry is one entry of the expiry index.
type indexEntry struct {
	k   []byte // the index key
	at  int64
	key string
	rev uint64 // the put's; 0 for a committed entry whose value is not read yet
}

func (r *Replicator) newExpirer(db *badger.DB) expirer {
	return expirer{next: r.nextExpiry.Load(), db: db}
}

// close ends the expirer's read-only transaction.
func (x *expirer) close() {
	if x.it != nil {
		x.it.Close()
		x.view.Discard()
	}
}

// head returns the first committed index entry not yet taken, leaving out
// those the commit transaction has set again.
func (x *expirer) head() (indexEntry, bool, error) {
	for ; x.it.Valid(); x.it.Next() {
		k := x.it.Item().Key()
		if _, found := x.findAdded(k); found {
			continue // set again in this transaction: added holds it
		}
		at, key, err := decodeExpiryKey(k)
		return indexEntry{k: k, at: at, key: key}, err == nil, err
	}
	return indexEntry{}, false, nil
}

func (x *expirer) findAdded(k []byte) (int, bool) {
	return slices.BinarySearchFunc(x.added, k, func(e indexEntry, k []byte) int { return bytes.Compare(e.k, k) })
}

// due expires, in txn, every key whose expiry is at or before now, the
// stream time of the message at seq about to be applied, up to
// maxExpiries and maxExpiryBytes of the first index entries.
func (x *expirer) due(txn *badger.Txn, seq uint64, now int64) error {
	if x.next == 0 || x.next > now {
		return nil
	}
	if x.it == nil {
		x.view = x.db.NewTransaction(false)
		x.it = x.view.NewIterator(badger.IteratorOptions{Prefix: []byte(expiryPrefix), PrefetchValues: true, PrefetchSize: 16})
		x.it.Rewind()
	}
	for n, size := 0, 0; ; n++ {
		c, ok, err := x.head()
		if err != nil {
			return err
		}
		var e indexEntry
		switch {
		case len(x.added) > 0 && (!ok || bytes.Compare(x.added[0].k, c.k) < 0):
			e = x.added[0]
		case ok:
			e = c
		default:
			x.next = 0
			return nil
		}
		if e.at > now || n == maxExpiries || size >= maxExpiryBytes {
			x.next = e.at
			return nil
		}
		size += len(e.key)
		if e.rev == 0 { // committed: read its value, and take it
			if err := x.it.Item().Value(func(b []byte) error {
				if len(b) != 8 {
					return fmt.Errorf("%w: expiry of %q: index value of %d bytes", ErrCorrupt, e.key, len(b))
				}
				e.rev = binary.BigEndian.Uint64(b)
				return nil
			}); err != nil {
				return err
			}
			e.k = x.it.Item().KeyCopy(nil)
			x.it.Next()
		} else {
			x.added = x.added[1:]
		}
		if err := x.expire(txn, e, seq); err != nil {
			return err
		}
	}
}

// expire removes e from the index and, unless a later write superseded the
// put it names, expires its key at seq.
func (x *expirer) expire(txn *badger.Txn, e indexEntry, seq uint64) error {
	if err := txn.Delete(e.k); err != nil {
		return err
	}
	live, err := putAt(txn, e.key, e.rev)
	if err != nil || !live {
		return err // !live: superseded, a stale index entry
	}
	if err := txn.Set(dataKey(e.key), encodeRecord(stream.Entry{Op: api.OpDelete}, seq, e.at)); err != nil { // its stream time, for the tombstone horizon
		return err
	}
	x.expired = append(x.expired, expiry{key: e.key, seq: seq})
	return nil
}

// putAt reports whether key's current record in txn is the put at rev.
func putAt(txn *badger.Txn, key string, rev uint64) (bool, error) {
	item, err := txn.Get(dataKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("expire %q: %w", key, err)
	}
	live := false
	err = item.Value(func(b []byte) error {
		live = len(b) >= recordHeader && b[0] == kindPut && binary.BigEndian.Uint64(b[1:]) == rev
		return nil
	})
	return live, err
}

// add indexes the expiry of d, an applied put with a TTL.
func (x *expirer) add(txn *badger.Txn, d *delivery) error {
	at := d.time + int64(d.entry.TTL)
	e := indexEntry{k: expiryKey(at, d.entry.Key), at: at, key: d.entry.Key, rev: d.seq}
	if err := txn.Set(e.k, u64(d.seq)); err != nil {
		return err
	}
	if i, found := x.findAdded(e.k); found {
		x.added[i] = e
	} else {
		x.added = slices.Insert(x.added, i, e)
	}
	if x.next == 0 || at < x.next {
		x.next = at
	}
	return nil
}

// committedExpiries publishes what a committed transaction left: the
// earliest pending expiry and the count of keys expired.
func (r *Replicator) committedExpiries(x *expirer) {
	r.nextExpiry.Store(x.next)
	r.expired.Add(uint64(len(x.expired)))
}

// cacheExpired replaces the cache entries of the keys x expired at seq,
// from x.expired[i:], appends their deletes to changes (for the watch
// feed), and returns the index of the first expiry after seq; commitTxn
// calls it in stream order, before the message at seq.
func (r *Replicator) cacheExpired(x *expirer, i int, seq uint64, changes []feedEntry) (int, []feedEntry) {
	for ; i < len(x.expired) && x.expired[i].seq == seq; i++ {
		e := x.expired[i]
		rec := api.Record{Key: e.key, Revision: e.seq, Deleted: true}
		r.cache.update(e.key, rec)
		changes = append(changes, feedEntry{rec: rec})
	}
	return i, changes
}

// loadExpiry reads the earliest pending expiry of db's index.
func (r *Replicator) loadExpiry(db *badger.DB) error {
	var next int64
	err := db.View(func(txn *badger.Txn) (err error) {
		defer guard("read expiry index", &err)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(expiryPrefix)})
		defer it.Close()
		if it.Rewind(); it.Valid() {
			next, _, err = decodeExpiryKey(it.Item().Key())
		}
		return err
	})
	if err != nil {
		return r.storeFailed(err)
	}
	r.nextExpiry.Store(next)
	return nil
}

// NextExpiry returns the stream time at which the earliest key with a time
// to live expires, as far as this replica has applied; zero when none is
// pending.
func (r *Replicator) NextExpiry() time.Time {
	if at := r.nextExpiry.Load(); at != 0 {
		return time.Unix(0, at)
	}
	return time.Time{}
}

// tick publishes a clock tick every TickInterval while an expiry is due by
// this machine's clock and the replica, caught up, has nothing left to
// apply (see above).
// A failure is logged as a warning once, until a tick succeeds again.
func (r *Replicator) tick(ctx context.Context) {
	failing := false
	every(ctx, r.cfg.TickInterval, func() bool {
		at := r.nextExpiry.Load()
		applied := r.Applied()
		if at == 0 || at > time.Now().UnixNano() || applied == 0 || applied < r.cfg.Stream.KnownLast() || !r.Ready() {
			return true
		}
		err := r.publishTick(ctx, at, applied)
		switch {
		case err == nil || ctx.Err() != nil:
			failing = false
		case !failing:
			failing = true
			r.log.Warn().Err(err).Uint64("applied", applied).Str("subject", stream.TickSubject(r.cfg.Stream.Subject())).
				Msg("publish clock tick; keys whose time to live ran out wait for the next write to expire")
		default:
			r.log.Debug().Err(err).Uint64("applied", applied).Msg("publish clock tick")
		}
		return true
	})
}

// publishTick publishes the tick of the expiry at, expecting the stream's
// last sequence to be applied. Its message id names both, so that replicas
// at the same position store one tick, and a tick that landed before at
// (the server's clock behind this one's) does not hold back the next one.
func (r *Replicator) publishTick(ctx context.Context, at int64, applied uint64) error {
	m := stream.TickMsg(r.cfg.Stream.Subject(), at, applied)
	ctx, cancel := context.WithTimeout(ctx, max(r.cfg.TickInterval, time.Second))
	defer cancel()
	_, err := r.cfg.Stream.JetStream().PublishMsg(ctx, m, jetstream.WithRetryAttempts(0))
	if wire.WrongLastSeq(err) {
		return nil // the stream moved on: its time with it
	}
	return err
}
