package replicator

import (
	"github.com/tidemark/tidemark/api"

	"hash/maphash"
	"sync"
	"sync/atomic"
)

// DefaultCacheBytes is the default size of the record cache.
const DefaultCacheBytes = 64 << 20

// cacheShards is the number of independently locked parts of the cache.
const cacheShards = 64

// entryOverhead is what the cache charges an entry beyond its key and value:
// the map slot, the entry and the slice headers, roughly.
const entryOverhead = 96

// recordCache holds the current record of recently written and recently read
// keys, so that a point read that needs no wait costs a map lookup instead
// of a Badger transaction. It never serves anything older than Badger would:
//
//   - After each commit, and before it publishes the new applied sequence,
//     the apply loop replaces the entry of every key it wrote that the
//     cache holds. An entry therefore reflects at least every commit up to
//     the applied sequence a reader loaded before looking the entry up (it
//     may reflect a later one; the record's revision then says so, as it
//     does for a Badger read).
//   - Entries are added by reads that missed, with what they read from
//     Badger, and only if no apply began since before their Badger
//     snapshot (gen unchanged and even) and the key is still absent:
//     otherwise a write the snapshot missed could already have been
//     applied while the key was absent (or replaced and then evicted), and
//     the stale record would hide it. The check and the insert hold the
//     shard's lock, and the apply loop bumps gen before it takes any shard
//     lock, so an apply that starts after the check finds the entry and
//     replaces it.
//
// The apply loop adds nothing itself, so a replica catching up (or one
// nobody reads from) spends a lookup per write on the cache, and no
// memory. Absent keys are cached too (as a record with Revision 0), so a
// read of a key that does not exist is as cheap.
type recordCache struct {
	// gen is odd while the apply loop updates entries; it only grows.
	gen    atomic.Uint64
	seed   maphash.Seed
	limit  int64 // bytes per shard
	shards [cacheShards]cacheShard
}

type cacheShard struct {
	mu           sync.RWMutex
	m            map[string]api.Record
	bytes        int64
	hits, misses atomic.Uint64 // per shard, so that readers share no counter
	_            [8]byte       // 64 bytes: shards on separate cache lines
}

// newRecordCache returns a cache of about size bytes; nil when size <= 0.
func newRecordCache(size int64) *recordCache {
	if size <= 0 {
		return nil
	}
	c := &recordCache{seed: maphash.MakeSeed(), limit: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]api.Record)
	}
	return c
}

func (c *recordCache) shard(key string) *cacheShard {
	return &c.shards[maphash.String(c.seed, key)%cacheShards]
}

func cost(key string, rec api.Record) int64 {
	return int64(len(key) + len(rec.Value) + entryOverhead)
}

// get returns the cached record of key. The record's Value is the cache's:
// callers copy it before handing it out.
func (c *recordCache) get(key string) (api.Record, bool) {
	if c == nil {
		return api.Record{}, false
	}
	s := c.shard(key)
	s.mu.RLock()
	rec, ok := s.m[key]
	s.mu.RUnlock()
	if ok {
		s.hits.Add(1)
	} else {
		s.misses.Add(1)
	}
	return rec, ok
}

// generation is what a read that may fill the cache loads before it opens
// its Badger snapshot.
func (c *recordCache) generation() uint64 {
	if c == nil {
		return 0
	}
	return c.gen.Load()
}

// fill adds what a read found in a Badger snapshot opened after it loaded
// gen, unless an apply has begun since or the key is cached already. It
// keeps a copy of the value: rec's is the caller's.
func (c *recordCache) fill(key string, rec api.Record, gen uint64) {
	if c == nil || gen%2 == 1 {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if _, ok := s.m[key]; ok {
		return
	}
	if rec.Value != nil {
		rec.Value = append([]byte{}, rec.Value...)
	}
	c.put(s, key, rec)
}

// beginApply and endApply bracket the apply loop's updates of one commit.
func (c *recordCache) beginApply() {
	if c != nil {
		c.gen.Add(1)
	}
}

func (c *recordCache) endApply() {
	if c != nil {
		c.gen.Add(1)
	}
}

// update replaces key's entry, if the cache holds one, with the record the
// apply loop has just committed; the apply loop calls it between beginApply
// and endApply.
func (c *recordCache) update(key string, rec api.Record) {
	if c == nil {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	if _, ok := s.m[key]; ok {
		c.put(s, key, rec)
	}
	s.mu.Unlock()
}

// put stores rec under key in s, which the caller holds, evicting other
// entries while the shard is over its budget. A record too large for a
// shard is not kept, and an older entry of the key is dropped with it.
func (c *recordCache) put(s *cacheShard, key string, rec api.Record) {
	if old, ok := s.m[key]; ok {
		s.bytes -= cost(key, old)
		delete(s.m, key)
	}
	n := cost(key, rec)
	if n > c.limit/2 {
		return
	}
	if s.bytes+n > c.limit {
		// Map iteration starts at a random place: this evicts at random.
		for k, v := range s.m {
			s.bytes -= cost(k, v)
			delete(s.m, k)
			if s.bytes+n <= c.limit {
				break
			}
		}
	}
	s.m[key] = rec
	s.bytes += n
}

// reset empties the cache; the database under it was replaced.
func (c *recordCache) reset() {
	if c == nil {
		return
	}
	c.gen.Add(2) // no read that began before can fill
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.bytes = 0
		s.mu.Unlock()
	}
}

// stats returns the hits, misses and entries of the cache.
func (c *recordCache) stats() (hits, misses uint64, entries int) {
	if c == nil {
		return 0, 0, 0
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		entries += len(s.m)
		s.mu.RUnlock()
		hits += s.hits.Load()
		misses += s.misses.Load()
	}
	return hits, misses, entries
}
