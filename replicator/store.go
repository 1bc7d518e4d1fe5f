package replicator

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tidemark/tidemark/stream"
)

// Storage layout; see the package documentation.
const (
	dataPrefix    = "d/"
	sessionPrefix = "s/"
	formatV1      = 1

	kindPut       = 'p'
	kindTombstone = 't'
	recordHeader  = 1 + 8 // kind, revision
)

var (
	keyApplied = []byte("m/applied")
	keyStream  = []byte("m/stream")
	keyFormat  = []byte("m/format")
)

func dataKey(key string) []byte {
	b := make([]byte, 0, len(dataPrefix)+len(key))
	return append(append(b, dataPrefix...), key...)
}

// encodeRecord encodes the record of e applied at revision rev; a
// tombstone also holds its stream time at (Unix nanoseconds), for
// sweepTombstones.
func encodeRecord(e stream.Entry, rev uint64, at int64) []byte {
	kind := byte(kindPut)
	if e.Op == api.OpDelete {
		kind = kindTombstone
	}
	b := make([]byte, recordHeader, recordHeader+max(len(e.Value), 8))
	b[0] = kind
	binary.BigEndian.PutUint64(b[1:], rev)
	if kind == kindPut {
		b = append(b, e.Value...)
	} else {
		b = binary.BigEndian.AppendUint64(b, uint64(at))
	}
	return b
}

// tombstoneTime returns the stream time a tombstone was stored at; a
// tombstone of an older layout has none.
func tombstoneTime(b []byte) (int64, bool) {
	if len(b) != recordHeader+8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[recordHeader:])), true
}

// decodeRecord decodes a stored record of key; it does not retain b.
func decodeRecord(key string, b []byte) (api.Record, error) {
	if len(b) < recordHeader || (b[0] != kindPut && b[0] != kindTombstone) {
		return api.Record{}, fmt.Errorf("key %q: corrupt record of %d bytes", key, len(b))
	}
	rec := api.Record{Key: key, Revision: binary.BigEndian.Uint64(b[1:])}
	if b[0] == kindTombstone {
		rec.Deleted = true
		return rec, nil
	}
	rec.Value = append([]byte{}, b[recordHeader:]...)
	return rec, nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// readApplied reads the applied sequence in txn; 0 when none is stored.
func readApplied(txn *badger.Txn) (uint64, error) {
	item, err := txn.Get(keyApplied)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read applied: %w", err)
	}
	var v uint64
	err = item.Value(func(b []byte) error {
		if len(b) != 8 {
			return fmt.Errorf("%w: m/applied of %d bytes", ErrCorrupt, len(b))
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	return v, err
}

// readMeta reads the stored applied sequence, stream identity and format.
func readMeta(db *badger.DB) (applied uint64, id string, format int, err error) {
	err = db.View(func(txn *badger.Txn) (err error) {
		defer guard("read metadata", &err)
		if applied, err = readApplied(txn); err != nil {
			return err
		}
		if item, err := txn.Get(keyStream); err == nil {
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read stream id: %w", err)
			}
			id = string(v)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("read stream id: %w", err)
		}
		if item, err := txn.Get(keyFormat); err == nil {
			v, err := item.ValueCopy(nil)
			if err != nil || len(v) != 1 {
				return fmt.Errorf("%w: read format: bad value", ErrCorrupt)
			}
			format = int(v[0])
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("read format: %w", err)
		}
		return nil
	})
	return applied, id, format, err
}

// writeIdentity records the stream identity and layout version.
func writeIdentity(db *badger.DB, id string) error {
	return db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(keyStream, []byte(id)); err != nil {
			return err
		}
		return txn.Set(keyFormat, []byte{formatV1})
	})
}

// commitTxnGuarded is commitTxn with a panic inside Badger as ErrCorrupt.
func (r *Replicator) commitTxnGuarded(db *badger.DB, ds []delivery) (n, skipped int, err error) {
	defer guard("apply", &err)
	return r.commitTxn(db, ds)
}

// commitTxn writes ds and the last one's sequence as applied in one
// transaction, leaving out the writes that came out of session order. It
// returns how many messages it applied (counted or not) and how many of them
// it left out; on badger.ErrTxnTooBig, how many fitted.
func (r *Replicator) commitTxn(db *badger.DB, ds []delivery) (int, int, error) {
	txn := db.NewTransaction(true)
	defer txn.Discard()
	skipped := 0
	exp := r.newExpirer(db) // keys with a time to live (ttl.go)
	defer exp.close()
	txnSkip := false // the session rule left out the transaction being applied
	for i := range ds {
		d := &ds[i]
		d.skip = false
		if err := exp.due(txn, d.seq, d.time); err != nil {
			return i, 0, err
		}
		if d.entry.Op == stream.OpSession || d.entry.Op == stream.OpTick {
			// A session order marker only holds the session's place in
			// the stream for the write that follows it; a clock tick only
			// moves stream time (ttl.go).
			d.skip = true
			continue
		}
		if d.entry.Op == stream.OpTxn {
			// A transaction's marker changes no key; it carries the
			// transaction's session step, which decides for all its ops.
			d.skip, txnSkip = true, false
			if d.entry.Session != "" {
				apply, err := sessionOrder(txn, *d)
				if err != nil {
					return i, 0, err
				}
				txnSkip = !apply
			}
			continue
		}
		if d.entry.TxnIndex > 0 && txnSkip {
			d.skip = true
			skipped++
			continue
		}
		if d.entry.Session != "" {
			apply, err := sessionOrder(txn, *d)
			if err != nil {
				return i, 0, err
			}
			if !apply {
				d.skip = true
				skipped++
				continue
			}
		}
		if err := txn.Set(dataKey(d.entry.Key), encodeRecord(d.entry, d.seq, d.time)); err != nil {
			return i, 0, err
		}
		if d.entry.TTL != 0 {
			if err := exp.add(txn, d); err != nil {
				return i, 0, err
			}
		}
	}
	last := ds[len(ds)-1].seq
	txn, err := r.appliedTxn(db, txn, last)
	if err != nil {
		return len(ds), 0, err
	}
	defer txn.Discard()
	if err := txn.Set(keyApplied, u64(last)); err != nil {
		return len(ds), 0, err
	}
	h := head{seq: last, sum: ds[len(ds)-1].sum()}
	if err := txn.Set(keyHead, h.encode()); err != nil {
		return len(ds), 0, err
	}
	if err := txn.Commit(); err != nil {
		return len(ds), 0, err
	}
	r.setHead(h, true)
	r.committedExpiries(&exp)
	// The cache's entries of these keys are replaced before the caller
	// publishes applied. The watch feed (feed.go) gets the same changes,
	// expiries included, here and only here, so that every change of the
	// state reaches watchers.
	r.cache.beginApply()
	changes := r.feedBuf[:0]
	ex := 0
	txnStart := -1 // index in changes of the first op's change of the transaction being applied
	for _, d := range ds {
		ex, changes = r.cacheExpired(&exp, ex, d.seq, changes)
		if d.skip {
			continue
		}
		rec := api.Record{Key: d.entry.Key, Revision: d.seq, Deleted: d.entry.Op == api.OpDelete}
		if !rec.Deleted {
			rec.Value = d.entry.Value
		}
		r.cache.update(d.entry.Key, rec)
		e := feedEntry{rec: rec}
		if d.entry.TxnIndex > 0 {
			if txnStart < 0 {
				txnStart = len(changes)
			}
			e.txn.Ops = 1 // an op; the transaction's mark is set at its last
		}
		changes = append(changes, e)
		if txnStart >= 0 && d.entry.EndsTxn() {
			markTxn(changes[txnStart:], d.seq)
			txnStart = -1
		}
	}
	r.cache.endApply()
	r.feed.append(changes, last)
	clear(changes)
	r.feedBuf = changes[:0]
	return len(ds), skipped, nil
}

// markTxn marks the changes of one transaction, ents, from its first op's
// to its last op's at revision rev (with the expiries its ops brought,
// which are not its ops), as one group of the watch feed.
func markTxn(ents []feedEntry, rev uint64) {
	ops := 0
	for i := range ents {
		ops += ents[i].txn.Ops
	}
	for i := range ents {
		if ents[i].txn.Ops != 0 {
			ents[i].txn = api.TxnMark{Revision: rev, Ops: ops}
		}
		ents[i].group = rev
	}
}

// sessionOrder applies the monotonic-writes rule to d, in txn: a write is
// applied only if its session sequence is above the highest one stored for
// its session within stream.SessionWindow of stream time, and then becomes
// that highest one. Every replica reads the same stream, so every replica
// makes the same decision. The record is read through txn, so it sees the
// writes of this same batch.
func sessionOrder(txn *badger.Txn, d delivery) (bool, error) {
	seq, at, found, err := readSession(txn, d.entry.Session)
	switch {
	case err != nil:
		return false, err
	case found && d.entry.SessionSeq <= seq && d.time-at < int64(stream.SessionWindow):
		return false, nil
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, sessionRecord), d.entry.SessionSeq)
	v = binary.BigEndian.AppendUint64(v, uint64(d.time))
	return true, txn.Set(sessionKey(d.entry.Session), v)
}

// sessionRecord is the size of a session's record: the highest write
// number applied for it and the stream time (Unix nanoseconds) it was
// applied at.
const sessionRecord = 16

// sessionKey is the key of session id's record.
func sessionKey(id string) []byte { return append([]byte(sessionPrefix), id...) }

// decodeSession decodes a session's record; ok is false when b is not one.
func decodeSession(b []byte) (seq uint64, at int64, ok bool) {
	if len(b) != sessionRecord {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b), int64(binary.BigEndian.Uint64(b[8:])), true
}

// readSession reads session id's record in txn; found is false when it has
// none.
func readSession(txn *badger.Txn, id string) (seq uint64, at int64, found bool, err error) {
	item, err := txn.Get(sessionKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("read session %q: %w", id, err)
	}
	err = item.Value(func(b []byte) error {
		var ok bool
		if seq, at, ok = decodeSession(b); !ok {
			return fmt.Errorf("%w: session %q: record of %d bytes", ErrCorrupt, id, len(b))
		}
		return nil
	})
	return seq, at, err == nil, err
}

// Get returns the record of key and the applied sequence of the snapshot it
// was read from. It fails with api.ErrNotFound when the key does not
// exist; for a deleted key it also returns the record with Deleted set and
// the delete's revision.
func (r *Replicator) Get(key string) (api.Record, uint64, error) {
	r.dbMu.RLock()
	defer r.dbMu.RUnlock()
	if r.db == nil {
		return api.Record{}, 0, r.notOpen()
	}
	// The apply loop publishes applied only once its commit is visible, so
	// a snapshot taken after loading applied reflects at least that much.
	// It may reflect a later commit too: a write of this key there shows as
	// the record's revision, and the read is as of that revision. One
	// Badger lookup instead of two (Scan, whose keys could each be newer,
	// reads applied from its snapshot instead).
	if err := r.wrongReason(); err != nil {
		return api.Record{Key: key}, r.applied.Load(), err
	}
	applied := r.applied.Load()
	if rec, ok := r.cache.get(key); ok {
		if rec.Value != nil {
			rec.Value = append([]byte{}, rec.Value...) // the cache keeps its own
		}
		return served(rec, applied)
	}
	gen := r.cache.generation() // before the snapshot: see recordCache
	rec := api.Record{Key: key}
	err := r.db.View(func(txn *badger.Txn) (err error) {
		defer guard("get", &err)
		item, err := txn.Get(dataKey(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return api.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("get %q: %w", key, err)
		}
		return item.Value(func(b []byte) error {
			rec, err = decodeRecord(key, b)
			return err
		})
	})
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		return api.Record{Key: key}, applied, r.storeFailed(err)
	}
	if err := r.wrongReason(); err != nil {
		// The state stopped being served while this read ran.
		return api.Record{Key: key}, applied, err
	}
	// Not found is cached as Revision 0, like a record.
	r.cache.fill(key, rec, gen)
	return served(rec, applied)
}

// sessionSlack widens Session's window for the clocks of the stream's
// servers and of this replica, which need not agree.
const sessionSlack = time.Hour

// Session returns the highest write number applied for session id, if its
// record is recent enough that the session order rule may still leave a
// write out by it (stream.SessionWindow, measured generously on this
// machine's clock), else 0. A writer asks it (with a strong read) for a
// session whose order markers compaction removed from the stream.
func (r *Replicator) Session(id string) (uint64, error) {
	r.dbMu.RLock()
	defer r.dbMu.RUnlock()
	if r.db == nil {
		return 0, r.notOpen()
	}
	if err := r.wrongReason(); err != nil {
		return 0, err
	}
	var seq uint64
	err := r.db.View(func(txn *badger.Txn) (err error) {
		defer guard("read session", &err)
		n, at, found, err := readSession(txn, id)
		if found && time.Now().UnixNano()-at < int64(stream.SessionWindow+sessionSlack) {
			seq = n
		}
		return err
	})
	if err != nil {
		return 0, r.storeFailed(err)
	}
	return seq, nil
}

// served is what Get returns for rec, the key's record (Revision 0 when it
// does not exist), read when applied was the applied sequence.
func served(rec api.Record, applied uint64) (api.Record, uint64, error) {
	applied = max(applied, rec.Revision)
	if rec.Revision == 0 || rec.Deleted {
		return rec, applied, api.ErrNotFound
	}
	return rec, applied, nil
}

// Scan returns up to limit live keys that start with prefix and sort after
// after, in key order, and the applied sequence of the snapshot they were
// read from; the page stops at the first key page does not Add (nil: no
// byte limit). next is the last key returned when more keys remain, else "".
// A limit <= 0 means api.DefaultScanLimit.
func (r *Replicator) Scan(prefix, after string, limit int, page *wire.PageBudget) (items []api.Record, next string, applied uint64, err error) {
	if limit <= 0 {
		limit = api.DefaultScanLimit
	}
	r.dbMu.RLock()
	defer r.dbMu.RUnlock()
	if r.db == nil {
		return nil, "", 0, r.notOpen()
	}
	if err := r.wrongReason(); err != nil {
		return nil, "", r.applied.Load(), err
	}
	err = r.db.View(func(txn *badger.Txn) (err error) {
		defer guard("scan", &err)
		if applied, err = readApplied(txn); err != nil {
			return err
		}
		more := false
		err = eachLive(txn, prefix, after, min(limit+1, 100), func(rec api.Record) (bool, error) {
			if len(items) == limit || !page.Add(rec) {
				more = true
				return false, nil
			}
			items = append(items, rec)
			return true, nil
		})
		if err != nil {
			return err
		}
		if more {
			next = items[len(items)-1].Key
		}
		return nil
	})
	if err == nil {
		err = r.wrongReason() // the state stopped being served while this read ran
	}
	if err != nil {
		return nil, "", applied, r.storeFailed(err)
	}
	return items, next, applied, nil
}

// DefaultSweepInterval is how often the apply loop forgets expired
// sessions and collects old tombstones.
const DefaultSweepInterval = 10 * time.Minute

// DefaultTombstoneHorizon is how long, in stream time, a replica keeps the
// tombstone of a deleted key (Config.TombstoneHorizon).
const DefaultTombstoneHorizon = 24 * time.Hour

// eachLive calls fn with the live records under prefix that sort after
// after ("" for all), in key order, in txn, until fn returns false.
func eachLive(txn *badger.Txn, prefix, after string, prefetch int, fn func(api.Record) (bool, error)) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = dataKey(prefix)
	opts.PrefetchSize = prefetch
	it := txn.NewIterator(opts)
	defer it.Close()
	start := opts.Prefix
	if after != "" {
		if k := dataKey(after + "\x00"); string(k) > string(start) {
			start = k
		}
	}
	for it.Seek(start); it.ValidForPrefix(opts.Prefix); it.Next() {
		item := it.Item()
		key := string(item.Key()[len(dataPrefix):])
		var rec api.Record
		if err := item.Value(func(b []byte) (err error) {
			if len(b) > 0 && b[0] == kindTombstone {
				rec.Deleted = true
				return nil
			}
			rec, err = decodeRecord(key, b)
			return err
		}); err != nil {
			return fmt.Errorf("scan %q: %w", prefix, err)
		}
		if rec.Deleted {
			continue
		}
		ok, err := fn(rec)
		if err != nil || !ok {
			return err
		}
	}
	return nil
}

// sweepSessions deletes the session records that stream.SessionWindow has
// expired as of the stream time now (Unix nanoseconds): records the order
// rule already treats as absent, so deleting them changes no decision.
func (r *Replicator) sweepSessions(db *badger.DB, now int64) {
	cutoff := now - int64(stream.SessionWindow)
	r.sweep(db, "forget expired sessions", []byte(sessionPrefix), func(_, b []byte) bool {
		_, at, ok := decodeSession(b)
		return ok && at < cutoff
	}, func(keys [][]byte) { r.sessionsSwept.Add(uint64(len(keys))) })
}

// sweepTombstones deletes the tombstones stored more than the tombstone
// horizon of stream time before now (Unix nanoseconds): after it, a read of
// the key answers not found without the delete's revision, as for a key
// never written. The cache forgets them too. It also counts the
// tombstones that remain (Stats.Tombstones).
func (r *Replicator) sweepTombstones(db *badger.DB, now int64) {
	cutoff := now - int64(r.cfg.TombstoneHorizon)
	var left int64
	r.sweep(db, "collect tombstones", []byte(dataPrefix), func(_, b []byte) bool {
		if len(b) < recordHeader || b[0] != kindTombstone {
			return false
		}
		if at, ok := tombstoneTime(b); ok && at < cutoff {
			return true
		}
		left++
		return false
	}, func(keys [][]byte) {
		r.tombstonesSwept.Add(uint64(len(keys)))
		r.cache.beginApply()
		for _, k := range keys {
			key := string(k[len(dataPrefix):])
			r.cache.update(key, api.Record{Key: key})
		}
		r.cache.endApply()
	})
	r.tombstones.Store(left)
}

// sweep deletes, in transactions of up to 1000 keys, the keys under prefix
// whose value expired says is expired, and hands each committed group to
// done. It runs on the apply goroutine, between batches, so no apply
// transaction races with it. Failures are logged and left for the next
// sweep.
func (r *Replicator) sweep(db *badger.DB, what string, prefix []byte, expired func(key, value []byte) bool, done func(keys [][]byte)) {
	var keys [][]byte
	err := db.View(func(txn *badger.Txn) (err error) {
		defer guard(what, &err)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if item.ValueSize() > maxSweptValue {
				continue // not a record the sweeps collect: leave its value unread
			}
			err := item.Value(func(b []byte) error {
				if expired(item.Key(), b) {
					keys = append(keys, item.KeyCopy(nil))
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	for len(keys) > 0 && err == nil {
		n := min(len(keys), 1000)
		err = db.Update(func(txn *badger.Txn) error {
			for _, k := range keys[:n] {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			done(keys[:n])
		}
		keys = keys[n:]
	}
	if err != nil {
		r.log.Warn().Err(r.storeFailed(err)).Msg(what)
	}
}

// maxSweptValue bounds the values the sweeps read: session records and
// tombstones are smaller, so bigger values (puts) are skipped unread.
const maxSweptValue = 64
