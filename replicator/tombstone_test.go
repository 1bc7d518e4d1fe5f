package replicator_test

import (
	"github.com/tidemark/tidemark/api"

	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
)

// A tombstone older than the horizon, in stream time, is collected (a
// delete's and an expiry's): a read
// of its key is then a not found without the delete's revision, as for a
// key never written, also from the record cache; a younger tombstone stays.
func TestTombstonesCollectedAfterHorizon(t *testing.T) {
	env := testenv.Start(t)
	const horizon = time.Second
	r := open(t, env, filepath.Join(t.TempDir(), "r"), func(c *replicator.Config) {
		c.TombstoneHorizon, c.SweepInterval = horizon, time.Nanosecond
	})
	run(t, r)
	oldDel := publish(t, env, put("old", "v"), del("old"))
	waitApplied(t, r, oldDel)
	if rec, _, err := r.Get("old"); !errors.Is(err, api.ErrNotFound) || rec.Revision != oldDel {
		t.Fatalf("Get(old)=%+v, %v; want not found at revision %d", rec, err, oldDel)
	}
	// An expiry leaves a tombstone too, and it goes the same way.
	putTTL(t, env, "ttl", "v", time.Second)
	waitExpired(t, r, "ttl")
	start := time.Now()
	testenv.Eventually(t, testTimeout, "the old tombstone collected", func() bool {
		waitApplied(t, r, publish(t, env, put("filler", "f")))
		rec, _, err := r.Get("old")
		if !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("Get(old)=%v, want not found", err)
		}
		exp, _, err := r.Get("ttl")
		if !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("Get(ttl)=%v, want not found", err)
		}
		return rec.Revision == 0 && exp.Revision == 0
	})
	if took := time.Since(start); took < horizon/4 {
		t.Fatalf("the tombstone went after %v, before the horizon of %v", took, horizon)
	}
	recentDel := publish(t, env, put("recent", "v"), del("recent"))
	last := publish(t, env, put("filler", "g"))
	waitApplied(t, r, last)
	if rec, _, err := r.Get("recent"); !errors.Is(err, api.ErrNotFound) || rec.Revision != recentDel {
		t.Fatalf("Get(recent)=%+v, %v; want not found at revision %d (inside the horizon)", rec, err, recentDel)
	}
	// The sweep after the last batch runs once it is applied.
	testenv.Eventually(t, testTimeout, "one tombstone left, two collected", func() bool {
		st := r.Stats()
		return st.TombstonesSwept == 2 && st.Tombstones == 1
	})
}
