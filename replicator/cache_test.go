package replicator_test

import (
	"github.com/tidemark/tidemark/api"

	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
)

// TestCacheNeverServesStale reads keys while the replicator applies a
// stream that rewrites and deletes them, with a cache so small that it
// evicts all the time, a default one, and none. Every read must return the
// key's last write at or before the applied sequence Get reports: a stale
// cache entry (a record older than one already applied) fails it.
func TestCacheNeverServesStale(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes int64
	}{
		{"tiny", 64 * 250}, // two entries per shard
		{"default", 0},
		{"off", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.Start(t)
			const keys, n = 150, 6000
			rng := rand.New(rand.NewPCG(1, 2))
			ws := make([]write, n)
			for i := range ws {
				k := fmt.Sprintf("k%03d", rng.IntN(keys))
				if i%7 == 3 {
					ws[i] = del(k)
				} else {
					ws[i] = put(k, fmt.Sprintf("v%d", i))
				}
			}
			// history[key] lists the sequences that wrote key, ascending.
			history := map[string][]int{}
			for i, w := range ws {
				history[w.key] = append(history[w.key], i+1)
			}
			r := open(t, env, t.TempDir(), func(c *replicator.Config) { c.CacheBytes = tc.bytes })
			run(t, r)

			var done atomic.Bool
			var wg sync.WaitGroup
			var reads atomic.Int64
			errs := make(chan error, 4)
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(g), 7))
					for !done.Load() {
						key := fmt.Sprintf("k%03d", rng.IntN(keys+10)) // some never written
						rec, applied, err := r.Get(key)
						reads.Add(1)
						if msg := checkRead(ws, history[key], key, rec, applied, err); msg != "" {
							errs <- errors.New(msg)
							return
						}
					}
				}()
			}
			for i := 0; i < n; i += 1000 {
				publishAsync(t, env, uint64(i+1), ws[i:min(i+1000, n)])
			}
			waitApplied(t, r, n)
			done.Store(true)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			st := r.Stats()
			t.Logf("%d reads; cache hits %d, misses %d, entries %d", reads.Load(), st.CacheHits, st.CacheMisses, st.CacheEntries)
			switch {
			case tc.bytes < 0 && (st.CacheHits != 0 || st.CacheEntries != 0):
				t.Fatalf("cache off, yet %d hits and %d entries", st.CacheHits, st.CacheEntries)
			case tc.bytes == 0 && st.CacheHits == 0:
				t.Fatal("default cache: no hits")
			case tc.bytes > 0 && (st.CacheEntries > 64*2 || st.CacheHits == 0):
				t.Fatalf("tiny cache: %d entries, %d hits", st.CacheEntries, st.CacheHits)
			}
		})
	}
}

// checkRead returns what is wrong with a Get of key that returned rec,
// applied and err, given the stream ws and the sequences that wrote key.
func checkRead(ws []write, seqs []int, key string, rec api.Record, applied uint64, err error) string {
	// The last write of key at or before applied.
	i := sort.SearchInts(seqs, int(applied)+1) - 1
	switch {
	case i < 0:
		if !errors.Is(err, api.ErrNotFound) || rec.Revision != 0 || rec.Deleted {
			return fmt.Sprintf("Get(%q) at applied %d = %+v, %v; want never written", key, applied, rec, err)
		}
	case ws[seqs[i]-1].op == api.OpDelete:
		if !errors.Is(err, api.ErrNotFound) || !rec.Deleted || rec.Revision != uint64(seqs[i]) {
			return fmt.Sprintf("Get(%q) at applied %d = %+v, %v; want deleted at %d", key, applied, rec, err, seqs[i])
		}
	default:
		want := ws[seqs[i]-1].value
		if err != nil || rec.Deleted || rec.Revision != uint64(seqs[i]) || string(rec.Value) != string(want) {
			return fmt.Sprintf("Get(%q) at applied %d = %+v (%q), %v; want %q at %d", key, applied, rec, rec.Value, err, want, seqs[i])
		}
	}
	return ""
}
