package replicator

import (
	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/wire"

	"context"
	"encoding/binary"
	"errors"
	"fmt"
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
// A message expires at most maxExpiries keys: when more are due at once,
// the rest expire at the following messages (ticks, on an idle stream), at
// the same positions on every replica.
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

// maxExpiries bounds the index entries one message expires, in the order
// of the index (expiry, then key), so that the transaction of a single
// message always fits Badger's limits; the rest expire at the following
// messages, at the same positions on every replica.
const maxExpiries = 256

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
// pending expiry as the transaction leaves it, and the keys it expired.
type expirer struct {
	next    int64 // the earliest pending expiry; 0: none
	expired []expiry
}

func (r *Replicator) newExpirer() expirer { return expirer{next: r.nextExpiry.Load()} }

// due expires, in txn, every key whose expiry is at or before now, the
// stream time of the message at seq about to be applied.
func (x *expirer) due(txn *badger.Txn, seq uint64, now int64) error {
	if x.next == 0 || x.next > now {
		return nil
	}
	var done [][]byte // index entries to remove
	var keys []expiry
	x.next = 0
	err := func() error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(expiryPrefix), PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			at, key, err := decodeExpiryKey(item.Key())
			if err != nil {
				return err
			}
			if at > now || len(done) == maxExpiries {
				x.next = at
				return nil
			}
			var rev uint64
			if err := item.Value(func(b []byte) error {
				if len(b) != 8 {
					return fmt.Errorf("%w: expiry of %q: index value of %d bytes", ErrCorrupt, key, len(b))
				}
				rev = binary.BigEndian.Uint64(b)
				return nil
			}); err != nil {
				return err
			}
			done = append(done, item.KeyCopy(nil))
			keys = append(keys, expiry{key: key, seq: rev})
		}
		return nil
	}()
	if err != nil {
		return err
	}
	for i, k := range done {
		if err := txn.Delete(k); err != nil {
			return err
		}
		live, err := putAt(txn, keys[i].key, keys[i].seq)
		if err != nil {
			return err
		}
		if !live {
			continue // superseded: a stale index entry
		}
		if err := txn.Set(dataKey(keys[i].key), encodeRecord(stream.Entry{Op: api.OpDelete}, seq)); err != nil {
			return err
		}
		x.expired = append(x.expired, expiry{key: keys[i].key, seq: seq})
	}
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
	if err := txn.Set(expiryKey(at, d.entry.Key), u64(d.seq)); err != nil {
		return err
	}
	if x.next == 0 || at < x.next {
		x.next = at
	}
	return nil
}

// committed publishes what a committed transaction left: the earliest
// pending expiry and the count of keys expired.
func (r *Replicator) committedExpiries(x *expirer) {
	r.nextExpiry.Store(x.next)
	r.expired.Add(uint64(len(x.expired)))
}

// cacheExpired replaces the cache entries of the keys x expired at seq,
// from x.expired[i:], and returns the index of the first expiry after seq;
// commitTxn calls it in stream order, before the message at seq.
func (r *Replicator) cacheExpired(x *expirer, i int, seq uint64) int {
	for ; i < len(x.expired) && x.expired[i].seq == seq; i++ {
		e := x.expired[i]
		r.cache.update(e.key, api.Record{Key: e.key, Revision: e.seq, Deleted: true})
	}
	return i
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
func (r *Replicator) tick(ctx context.Context) {
	every(ctx, r.cfg.TickInterval, func() bool {
		at := r.nextExpiry.Load()
		applied := r.Applied()
		if at == 0 || at > time.Now().UnixNano() || applied == 0 || applied < r.cfg.Stream.KnownLast() || !r.Ready() {
			return true
		}
		if err := r.publishTick(ctx, at, applied); err != nil && ctx.Err() == nil {
			r.log.Debug().Err(err).Uint64("applied", applied).Msg("clock tick")
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
