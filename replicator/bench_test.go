package replicator_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
	"github.com/tidemark/tidemark/stream"
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

// BenchmarkApplyTTL measures the apply loop catching up b.N puts (100-byte
// values over 1000 keys) without a time to live, with one that never runs
// out during the run (index entries only), with one that has run out for
// the first half of the puts by the time the second half is published
// (the second half's first puts expire the first half's), and with puts
// of new keys published over twice their TTL (nearly every put of the
// second half expires a key).
func BenchmarkApplyTTL(b *testing.B) {
	for _, tt := range []struct {
		name string
		ttl  time.Duration
		// steady: the puts are published over twice the TTL, so that
		// during the second half nearly every put expires a key.
		steady bool
	}{{"none", 0, false}, {"pending", time.Hour, false}, {"expiring", time.Second, false}, {"steady", time.Second, true}} {
		b.Run(tt.name, func(b *testing.B) {
			env := testenv.Start(b)
			value := []byte(strings.Repeat("v", 100))
			msgs := make([]*nats.Msg, b.N)
			for i := range msgs {
				key := fmt.Sprintf("key-%d", i%1000)
				if tt.steady {
					key = fmt.Sprintf("key-%d", i)
				}
				msgs[i] = stream.Message(env.Config.Subject, api.WriteRequest{Op: api.OpPut, Key: key, Value: value, TTL: tt.ttl})
			}
			half := b.N / 2
			switch {
			case tt.steady:
				const chunks = 40
				start := time.Now()
				for c := range chunks {
					at := start.Add(time.Duration(c) * 2 * tt.ttl / chunks)
					testenv.Eventually(b, 10*time.Second, "the chunk's time", func() bool { return time.Now().After(at) })
					publishMsgs(b, env, msgs[c*b.N/chunks:(c+1)*b.N/chunks])
				}
			case tt.ttl == time.Second:
				publishMsgs(b, env, msgs[:half])
				end := time.Now().Add(tt.ttl)
				testenv.Eventually(b, 10*time.Second, "the first half's TTL to run out", func() bool { return time.Now().After(end) })
				publishMsgs(b, env, msgs[half:])
			default:
				publishMsgs(b, env, msgs)
			}
			r := open(b, env, b.TempDir())

			b.ResetTimer()
			run(b, r)
			waitApplied(b, r, uint64(b.N))
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(r.Stats().Expired), "expired")
		})
	}
}

// publishMsgs publishes msgs pipelined and waits for every ack.
func publishMsgs(b *testing.B, env *testenv.Env, msgs []*nats.Msg) {
	b.Helper()
	const window = 512
	var futures []jetstream.PubAckFuture
	wait := func() {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatalf("publish: %v", err)
			case <-time.After(testTimeout):
				b.Fatalf("no ack within %v", testTimeout)
			}
		}
		futures = futures[:0]
	}
	for _, m := range msgs {
		f, err := env.JS.PublishMsgAsync(m)
		if err != nil {
			b.Fatalf("publish: %v", err)
		}
		if futures = append(futures, f); len(futures) == window {
			wait()
		}
	}
	wait()
}
