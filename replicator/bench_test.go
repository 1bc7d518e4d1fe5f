package replicator_test

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// BenchmarkApplyValueSize measures the apply loop catching up b.N puts of
// values of several sizes over 1000 keys, with Badger's value threshold
// below, at and above them: where Badger keeps values decides how much its
// memtable flushes and compactions rewrite. Run it with a fixed count
// (-benchtime 20000x): b.N values of 64 KiB must fit in the stream.
func BenchmarkApplyValueSize(b *testing.B) {
	for _, size := range []int{256, 2 << 10, 4 << 10, 64 << 10} {
		for _, threshold := range []int64{1 << 10, 4 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("size=%d/threshold=%d", size, threshold), func(b *testing.B) {
				env := testenv.Start(b)
				value := strings.Repeat("v", size)
				ws := make([]write, b.N)
				for i := range ws {
					ws[i] = put(fmt.Sprintf("key-%d", i%1000), value)
				}
				for i := 0; i < len(ws); i += 1000 { // in steps: the client stalls past 4000 pending
					publishAsync(b, env, uint64(i+1), ws[i:min(i+1000, len(ws))])
				}
				dir := b.TempDir()
				r := open(b, env, dir, func(c *replicator.Config) { c.ValueThreshold = threshold })

				b.SetBytes(int64(size))
				b.ResetTimer()
				cpu := processCPU(b)
				stop := run(b, r)
				waitApplied(b, r, uint64(b.N))
				cpu = processCPU(b) - cpu
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
				// CPU time, unlike the elapsed time, hardly depends on what
				// else the machine runs.
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
				if err := stop(); err != nil {
					b.Fatal(err)
				}
				if err := r.Close(); err != nil {
					b.Fatal(err)
				}
				// The store's size once closed: with its memtable flushed,
				// without the value log garbage that Run collects later.
				b.ReportMetric(float64(dirBytes(b, dir))/float64(b.N), "disk-B/msg")
			})
		}
	}
}

// processCPU is the CPU time, user and system, the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dirBytes is the size of the files in dir.
func dirBytes(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
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
