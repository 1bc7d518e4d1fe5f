package replicator_test

import (
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
)

// TestStreamLostTailDuringCheck loses the connection while a history check
// is in flight: the replica's request for the stream's info is stuck (held
// by a proxy) when the server stops, and the server comes back on an older
// copy of its store, which lost 11-20. The check waits for an answer that
// never comes, up to the request timeout, but the replica must stop serving
// as soon as the connection drops, not when the check gives up, and must
// check the restored stream as soon as the connection is back: no token of
// the new history may be answered from the old one.
func TestStreamLostTailDuringCheck(t *testing.T) {
	env := testenv.StartDir(t, t.TempDir())
	proxy, _, st := testenv.ProxyStream(t, env.Server, env.Config)
	r := open(t, env, t.TempDir(), func(c *replicator.Config) {
		c.Stream = st
		c.CheckInterval = 20 * time.Millisecond
	})
	run(t, r)
	keys := keysN("k", 10)
	waitApplied(t, r, publish(t, env, puts(keys, "v1")...)) // 1-10

	backup := env.BackupStore(t)
	waitServed(t, r, publish(t, env, puts(keys, "v2")...)) // 11-20

	// The replica is idle: what it sends next is a check's request for the
	// stream's info, which the proxy holds.
	proxy.Hold()
	testenv.Eventually(t, testTimeout, "a check of the replica to be stuck in the proxy", func() bool { return proxy.Held() > 0 })
	env.StopServer()
	proxy.Release()
	testenv.RestoreDir(t, backup, env.StoreDir())
	env.StartServerAgain(t)

	// The new history: 11-20 again, other writes, within the check's
	// request timeout.
	for i, k := range keys {
		seq := publish(t, env, put(k, "v3"))
		if got, want := seq, uint64(11+i); got != want {
			t.Fatalf("publish after the restore: seq %d, want %d", got, want)
		}
		readNew(t, r, k, "v3", seq)
	}
}
