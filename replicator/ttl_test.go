package replicator_test

import (
	"github.com/tidemark/tidemark/api"

	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
	"github.com/tidemark/tidemark/stream"
)

// ttlTimeout bounds the wait for an expiry: the TTL, plus a generous
// multiple of the documented bound (a tick interval plus clock skew, none
// here) for a loaded machine.
const ttlTimeout = 15 * time.Second

// putTTL publishes a put of key with a time to live and returns its
// sequence and stream time.
func putTTL(t testing.TB, env *testenv.Env, key, value string, ttl time.Duration) (uint64, time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	m := stream.Message(env.Config.Subject, api.WriteRequest{Op: api.OpPut, Key: key, Value: []byte(value), TTL: ttl})
	ack, err := env.JS.PublishMsg(ctx, m)
	if err != nil {
		t.Fatalf("publish put of %q with TTL %v: %v", key, ttl, err)
	}
	msg, err := env.Stream.Handle().GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatalf("get message %d: %v", ack.Sequence, err)
	}
	return ack.Sequence, msg.Time
}

// waitExpired waits until r reads key as deleted and returns its
// tombstone's revision.
func waitExpired(t testing.TB, r *replicator.Replicator, key string) uint64 {
	t.Helper()
	var rev uint64
	testenv.Eventually(t, ttlTimeout, fmt.Sprintf("%q to expire", key), func() bool {
		rec, _, err := r.Get(key)
		rev = rec.Revision
		return errors.Is(err, api.ErrNotFound) && rec.Deleted
	})
	return rev
}

// checkExpiryPosition checks that S, a key's expiry, is the first message
// of the stream at or after at, the key's expiry time.
func checkExpiryPosition(t testing.TB, env *testenv.Env, s uint64, at time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	m, err := env.Stream.Handle().GetMsg(ctx, s)
	if err != nil {
		t.Fatalf("get message %d: %v", s, err)
	}
	if m.Time.Before(at) {
		t.Fatalf("expired at message %d of %v, before the expiry time %v", s, m.Time, at)
	}
	prev, err := env.Stream.Handle().GetMsg(ctx, s-1)
	if err != nil {
		t.Fatalf("get message %d: %v", s-1, err)
	}
	if !prev.Time.Before(at) {
		t.Fatalf("expired at message %d, but message %d of %v is already at the expiry time %v", s, s-1, prev.Time, at)
	}
}

// A key with a TTL expires on an idle stream (a replica publishes a clock
// tick), at the same position on two replicas: the first message at or
// after its expiry time. A later put without a TTL clears it.
func TestTTLExpiresIdleAtOnePosition(t *testing.T) {
	env := testenv.Start(t)
	fast := func(c *replicator.Config) { c.TickInterval = 50 * time.Millisecond }
	r1 := open(t, env, t.TempDir(), fast)
	r2 := open(t, env, t.TempDir(), fast, func(c *replicator.Config) { c.ID = "r2" })
	run(t, r1)
	run(t, r2)

	seq, at := putTTL(t, env, "gone", "v", time.Second)
	keep, _ := putTTL(t, env, "kept", "v", time.Second)
	kept := publish(t, env, put("kept", "forever"))
	waitApplied(t, r1, kept)
	if rec, _, err := r1.Get("gone"); err != nil || rec.Revision != seq {
		t.Fatalf("Get before expiry=%+v, %v; want the put at %d", rec, err, seq) // and the record is cached
	}
	s1, s2 := waitExpired(t, r1, "gone"), waitExpired(t, r2, "gone")
	if s1 != s2 || s1 <= kept {
		t.Fatalf("expired at %d on r1 and %d on r2; want one position after %d", s1, s2, kept)
	}
	checkExpiryPosition(t, env, s1, at.Add(time.Second))
	if got := time.Since(at.Add(time.Second)); got > ttlTimeout {
		t.Fatalf("expired %v after its expiry time", got)
	}
	for _, r := range []*replicator.Replicator{r1, r2} {
		testenv.Eventually(t, ttlTimeout, "no expiry pending", func() bool { return r.NextExpiry().IsZero() })
		if rec, _, err := r.Get("kept"); err != nil || string(rec.Value) != "forever" || rec.Revision != kept || rec.Revision == keep {
			t.Fatalf("Get(kept)=%+v, %v; want the put without TTL at %d", rec, err, kept)
		}
		if items, _, _, err := r.Scan("", "", 10, nil); err != nil || len(items) != 1 || items[0].Key != "kept" {
			t.Fatalf("Scan=%+v, %v; want only kept", items, err)
		}
	}
	if got := r1.Stats().Expired + r2.Stats().Expired; got != 2 {
		t.Fatalf("expired %d keys on two replicas, want 1 each", got)
	}
}

// A replica paused past an expiry expires the key at the same position
// once resumed, and until then a read with the token of the other
// replica's 404 waits: it never sees the value again.
func TestTTLPausedReplicaWaitsForExpiry(t *testing.T) {
	env := testenv.Start(t)
	fast := func(c *replicator.Config) { c.TickInterval = 50 * time.Millisecond }
	r1 := open(t, env, t.TempDir(), fast)
	r2 := open(t, env, t.TempDir(), fast, func(c *replicator.Config) { c.ID = "r2" })
	run(t, r1)
	run(t, r2)
	seq, _ := putTTL(t, env, "k", "v", time.Second)
	waitApplied(t, r2, seq)
	r2.Pause()
	s := waitExpired(t, r1, "k")
	_, token, err := r1.Get("k")
	if !errors.Is(err, api.ErrNotFound) || token < s {
		t.Fatalf("read after expiry: token %d, %v; want not found with a token of at least %d", token, err, s)
	}
	// The paused replica still holds the value, so a read there must wait
	// for the token.
	if rec, _, err := r2.Get("k"); err != nil || rec.Revision != seq {
		t.Fatalf("paused replica: Get=%+v, %v; want the put at %d", rec, err, seq)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err = r2.WaitApplied(ctx, token)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("paused replica: WaitApplied(%d)=%v, want a timeout", token, err)
	}
	r2.Resume()
	waitApplied(t, r2, token)
	rec, _, err := r2.Get("k")
	if !errors.Is(err, api.ErrNotFound) || rec.Revision != s {
		t.Fatalf("resumed replica: Get=%+v, %v; want expired at %d", rec, err, s)
	}
}

// More keys than one message may expire at once expire over the following
// messages, at the same positions on every replica, and the expiry index
// travels in a snapshot: a replica restored from one taken before the
// expiries expires the same keys at the same positions.
func TestTTLManyKeysAndSnapshot(t *testing.T) {
	env := testenv.Start(t)
	noTicks := func(c *replicator.Config) { c.TickInterval = time.Hour } // time moves with the test's writes only
	r1 := open(t, env, t.TempDir(), noTicks)
	run(t, r1)
	// Keys of 1000 bytes: a message expires keys while their bytes are
	// below 256 KiB, so 263 of them.
	const n, perMessage, ttl = 300, 263, 3 * time.Second
	name := func(i int) string { return fmt.Sprintf("k%03d", i) + strings.Repeat("x", 996) }
	var last uint64
	var lastAt time.Time
	for i := range n {
		last, lastAt = putTTL(t, env, name(i), "v", ttl)
	}
	waitApplied(t, r1, last)
	var snap bytes.Buffer
	if _, err := r1.Snapshot(context.Background(), &snap); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	dir := t.TempDir()
	if _, err := replicator.Restore(dir, bytes.NewReader(snap.Bytes()), env.Stream.ID()); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	r2 := open(t, env, dir, noTicks, func(c *replicator.Config) { c.ID = "r2" })
	run(t, r2)
	// Every key is due once the stream's clock passes the last one's expiry.
	testenv.Eventually(t, ttlTimeout, "every expiry time to pass", func() bool { return time.Now().After(lastAt.Add(ttl)) })
	var first uint64
	for i := range 2 {
		seq, at := putTTL(t, env, "mover", "v", time.Hour)
		if !at.After(lastAt.Add(ttl)) {
			t.Fatalf("message %d at %v, not after the last expiry time %v (the test needs the server's clock)", seq, at, lastAt.Add(ttl))
		}
		if i == 0 {
			first = seq
		}
		last = seq
	}
	waitApplied(t, r1, last)
	waitApplied(t, r2, last)
	revs := map[uint64]int{}
	for i := range n {
		key := name(i)
		rec1, _, err1 := r1.Get(key)
		rec2, _, err2 := r2.Get(key)
		if !rec1.Deleted || !rec2.Deleted || rec1.Revision != rec2.Revision || !errors.Is(err1, api.ErrNotFound) || !errors.Is(err2, api.ErrNotFound) {
			t.Fatalf("%s: r1 %+v, %v; restored r2 %+v, %v; want expired at one position", key, rec1, err1, rec2, err2)
		}
		revs[rec1.Revision]++
	}
	want := map[uint64]int{first: perMessage, first + 1: n - perMessage}
	if fmt.Sprint(revs) != fmt.Sprint(want) {
		t.Fatalf("keys expired per message: %v, want %v", revs, want)
	}
}

// Expiries inside one batch: a replica that applies a put with a TTL, its
// expiry and a later put of the key in one transaction, with the keys in
// its record cache, ends where a replica that applies one message per
// transaction does.
func TestTTLWithinOneBatch(t *testing.T) {
	env := testenv.Start(t)
	noTicks := func(c *replicator.Config) { c.TickInterval = time.Hour } // time moves with the test's writes only
	r1 := open(t, env, t.TempDir(), noTicks)
	r2 := open(t, env, t.TempDir(), noTicks, func(c *replicator.Config) { c.ID, c.MaxBatch = "r2", 1 })
	run(t, r1)
	run(t, r2)
	pa, _ := putTTL(t, env, "a", "v", time.Second)
	pb, at := putTTL(t, env, "b", "v", time.Second)
	waitApplied(t, r1, pb)
	for _, k := range []string{"a", "b"} {
		if _, _, err := r1.Get(k); err != nil { // cached
			t.Fatalf("Get(%s): %v", k, err)
		}
	}
	r1.Pause()
	testenv.Eventually(t, ttlTimeout, "the expiry time to pass", func() bool { return time.Now().After(at.Add(time.Second)) })
	s := publish(t, env, put("c", "moves time"))
	again := publish(t, env, put("b", "again"))
	waitApplied(t, r2, again)
	if rec, _, err := r1.Get("a"); err != nil || rec.Revision != pa {
		t.Fatalf("paused: Get(a)=%+v, %v; want the put at %d", rec, err, pa)
	}
	r1.Resume()
	waitApplied(t, r1, again)
	for _, r := range []*replicator.Replicator{r1, r2} {
		if rec, _, err := r.Get("a"); !errors.Is(err, api.ErrNotFound) || rec.Revision != s {
			t.Fatalf("Get(a)=%+v, %v; want expired at %d", rec, err, s)
		}
		if rec, _, err := r.Get("b"); err != nil || string(rec.Value) != "again" || rec.Revision != again {
			t.Fatalf("Get(b)=%+v, %v; want the put again at %d", rec, err, again)
		}
		if got, want := r.Stats().Expired, uint64(2); got != want {
			t.Fatalf("Expired=%d, want %d", got, want)
		}
	}
}
