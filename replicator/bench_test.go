package replicator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
)

// BenchmarkApply measures the apply loop catching up b.N messages (100-byte
// values over 1000 keys) already in the stream.
func BenchmarkApply(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			env := testenv.Start(b)
			value := strings.Repeat("v", 100)
			ws := make([]write, b.N)
			for i := range ws {
				ws[i] = put(fmt.Sprintf("key-%d", i%1000), value)
			}
			publishAsync(b, env, 1, ws)
			r := open(b, env, b.TempDir(), func(c *replicator.Config) { c.SyncWrites = sync })

			b.ResetTimer()
			run(b, r)
			waitApplied(b, r, uint64(b.N))
			b.StopTimer()
			st := r.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(st.Messages)/float64(max(st.Batches, 1)), "msgs/batch")
		})
	}
}

// BenchmarkWriteToApplied measures a write's trip from publish to a woken
// WaitApplied on a running replica: the latency of read-your-writes.
func BenchmarkWriteToApplied(b *testing.B) {
	env := testenv.Start(b)
	r := open(b, env, b.TempDir())
	run(b, r)
	ctx := context.Background()
	w := put("key", strings.Repeat("v", 100))
	b.ResetTimer()
	for range b.N {
		ack, err := env.JS.PublishMsg(ctx, w.msg(env.Config.Subject))
		if err != nil {
			b.Fatal(err)
		}
		if err := r.WaitApplied(ctx, ack.Sequence); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetFromTables measures point reads that miss the record cache
// and read Badger's tables, over a store larger than Badger's block cache,
// so that blocks keep being read (and their checksums verified) from the
// files.
func BenchmarkGetFromTables(b *testing.B) {
	const keys = 200_000
	env := testenv.Start(b)
	dir := b.TempDir()
	ws := make([]write, keys)
	value := strings.Repeat("v", 128)
	for i := range ws {
		ws[i] = put(fmt.Sprintf("key-%06d", i), value)
	}
	for i := 0; i < keys; i += 1000 { // in steps: the client stalls past 4000 pending
		publishAsync(b, env, uint64(i+1), ws[i:i+1000])
	}
	r := open(b, env, dir)
	stop := run(b, r)
	waitApplied(b, r, keys)
	if err := stop(); err != nil {
		b.Fatal(err)
	}
	if err := r.Close(); err != nil { // flushes the memtable into tables
		b.Fatal(err)
	}
	r = open(b, env, dir, func(c *replicator.Config) { c.CacheBytes = -1 })
	run(b, r)
	waitApplied(b, r, keys)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		// A stride that walks the whole key space, block after block.
		i = (i + 7919) % keys
		if _, _, err := r.Get(fmt.Sprintf("key-%06d", i)); err != nil {
			b.Fatal(err)
		}
	}
}
