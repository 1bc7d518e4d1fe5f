package replicator

import (
	"github.com/tidemark/tidemark/api"

	"fmt"
	"testing"
	"unsafe"
)

func TestRecordCacheFillRules(t *testing.T) {
	c := newRecordCache(64 << 10)
	rec := func(rev uint64) api.Record { return api.Record{Key: "k", Revision: rev, Value: []byte("v")} }

	g := c.generation()
	c.beginApply()
	c.fill("k", rec(1), c.generation()) // an apply is under way: odd
	if _, ok := c.get("k"); ok {
		t.Fatal("filled while an apply was under way")
	}
	c.update("k2", rec(2)) // the apply loop replaces entries, adds none
	c.endApply()
	if _, ok := c.get("k2"); ok {
		t.Fatal("an apply added an entry")
	}
	c.fill("k", rec(1), g) // an apply began after g was loaded
	if _, ok := c.get("k"); ok {
		t.Fatal("filled with a generation an apply has passed")
	}

	g = c.generation()
	c.fill("k", rec(3), g)
	if got, ok := c.get("k"); !ok || got.Revision != 3 {
		t.Fatalf("fill: got %+v, %v", got, ok)
	}
	c.fill("k", rec(1), g) // present: never replaced by a read
	if got, _ := c.get("k"); got.Revision != 3 {
		t.Fatalf("fill replaced an entry: %+v", got)
	}
	c.beginApply()
	c.update("k", rec(5)) // the apply loop replaces what is there
	c.endApply()
	if got, _ := c.get("k"); got.Revision != 5 {
		t.Fatalf("set: %+v", got)
	}

	g = c.generation()
	c.reset()
	if _, _, n := c.stats(); n != 0 {
		t.Fatalf("reset left %d entries", n)
	}
	c.fill("k", rec(1), g)
	if _, ok := c.get("k"); ok {
		t.Fatal("filled across a reset")
	}
}

func TestRecordCacheBounds(t *testing.T) {
	if n := unsafe.Sizeof(cacheShard{}); n%64 != 0 {
		t.Fatalf("a shard is %d bytes: shards share cache lines", n)
	}
	c := newRecordCache(cacheShards * 1000)
	for i := range 10000 {
		c.fill(fmt.Sprintf("key-%d", i), api.Record{Revision: uint64(i + 1), Value: make([]byte, 100)}, c.generation())
	}
	for i := range c.shards {
		s := &c.shards[i]
		var sum int64
		for k, v := range s.m {
			sum += cost(k, v)
		}
		if s.bytes != sum || s.bytes > c.limit {
			t.Fatalf("shard %d: accounted %d bytes, holds %d, limit %d", i, s.bytes, sum, c.limit)
		}
	}
	// A record too large for a shard is not kept, and takes the key's older
	// entry with it.
	c.fill("big", api.Record{Revision: 1, Value: []byte("x")}, c.generation())
	if _, ok := c.get("big"); !ok {
		t.Fatal("fill did not add a small record")
	}
	c.update("big", api.Record{Revision: 2, Value: make([]byte, c.limit)})
	if _, ok := c.get("big"); ok {
		t.Fatal("an oversized record, or its predecessor, is cached")
	}
	if newRecordCache(0) != nil || newRecordCache(-1) != nil {
		t.Fatal("a cache of no size exists")
	}
	var off *recordCache // every method works on the nil (disabled) cache
	off.update("k", api.Record{Revision: 1})
	off.fill("k", api.Record{Revision: 1}, off.generation())
	if _, _, n := off.stats(); n != 0 {
		t.Fatal("the nil cache holds something")
	}
	if _, ok := off.get("k"); ok {
		t.Fatal("the nil cache holds something")
	}
}
