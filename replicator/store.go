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

func encodeRecord(e stream.Entry, rev uint64) []byte {
	kind := byte(kindPut)
	if e.Op == api.OpDelete {
		kind = kindTombstone
	}
	b := make([]byte, recordHeader, recordHeader+len(e.Value))
	b[0] = kind
	binary.BigEndian.PutUint64(b[1:], rev)
	if kind == kindPut {
		b = append(b, e.Value...)
	}
	return b
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
	txnSkip := false // the session rule left out the transaction being applied
	for i := range ds {
		d := &ds[i]
		d.skip = false
		if d.entry.Op == stream.OpSession {
			// A session order marker: it only holds the session's place
			// in the stream for the write that follows it.
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
		if err := txn.Set(dataKey(d.entry.Key), encodeRecord(d.entry, d.seq)); err != nil {
			return i, 0, err
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
	// The cache's entries of these keys are replaced before the caller
	// publishes applied.
	r.cache.beginApply()
	for _, d := range ds {
		if d.skip {
			continue
		}
		rec := api.Record{Key: d.entry.Key, Revision: d.seq, Deleted: d.entry.Op == api.OpDelete}
		if !rec.Deleted {
			rec.Value = d.entry.Value
		}
		r.cache.update(d.entry.Key, rec)
	}
	r.cache.endApply()
	return len(ds), skipped, nil
}

// sessionOrder applies the monotonic-writes rule to d, in txn: a write is
// applied only if its session sequence is above the highest one stored for
// its session within stream.SessionWindow of stream time, and then becomes
// that highest one. Every replica reads the same stream, so every replica
// makes the same decision. The record is read through txn, so it sees the
// writes of this same batch.
func sessionOrder(txn *badger.Txn, d delivery) (bool, error) {
	key := append([]byte(sessionPrefix), d.entry.Session...)
	item, err := txn.Get(key)
	switch {
	case err == nil:
		var seq uint64
		var at int64
		if err := item.Value(func(b []byte) error {
			if len(b) != 16 {
				return fmt.Errorf("session %q: corrupt record of %d bytes", d.entry.Session, len(b))
			}
			seq, at = binary.BigEndian.Uint64(b), int64(binary.BigEndian.Uint64(b[8:]))
			return nil
		}); err != nil {
			return false, err
		}
		if d.entry.SessionSeq <= seq && d.time-at < int64(stream.SessionWindow) {
			return false, nil
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return false, fmt.Errorf("read session %q: %w", d.entry.Session, err)
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), d.entry.SessionSeq)
	v = binary.BigEndian.AppendUint64(v, uint64(d.time))
	return true, txn.Set(key, v)
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
		opts := badger.DefaultIteratorOptions
		opts.Prefix = dataKey(prefix)
		opts.PrefetchSize = min(limit+1, 100)
		it := txn.NewIterator(opts)
		defer it.Close()
		start := opts.Prefix
		if after != "" {
			if k := dataKey(after + "\x00"); string(k) > string(start) {
				start = k
			}
		}
		more := false
		for it.Seek(start); it.ValidForPrefix(opts.Prefix); it.Next() {
			item := it.Item()
			key := string(item.Key()[len(dataPrefix):])
			var rec api.Record
			if err := item.Value(func(b []byte) error {
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
			if len(items) == limit || !page.Add(rec) {
				more = true
				break
			}
			items = append(items, rec)
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

// sessionSweepInterval is how often the apply loop forgets expired sessions.
const sessionSweepInterval = 10 * time.Minute

// sweepSessions deletes the session records that stream.SessionWindow has
// expired as of the stream time now (Unix nanoseconds): records the order
// rule already treats as absent, so deleting them changes no decision. It
// runs on the apply goroutine, between batches, so no apply transaction
// races with it. Failures are logged and left for the next sweep.
func (r *Replicator) sweepSessions(db *badger.DB, now int64) {
	cutoff := now - int64(stream.SessionWindow)
	var expired [][]byte
	err := db.View(func(txn *badger.Txn) (err error) {
		defer guard("sweep sessions", &err)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(sessionPrefix), PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			err := item.Value(func(b []byte) error {
				if len(b) == 16 && int64(binary.BigEndian.Uint64(b[8:])) < cutoff {
					expired = append(expired, item.KeyCopy(nil))
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	for len(expired) > 0 && err == nil {
		n := min(len(expired), 1000)
		err = db.Update(func(txn *badger.Txn) error {
			for _, k := range expired[:n] {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		r.sessionsSwept.Add(uint64(n))
		expired = expired[n:]
	}
	if err != nil {
		r.log.Warn().Err(r.storeFailed(err)).Msg("forget expired sessions")
	}
}
