package writer_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tidemark/tidemark/internal/natsserver"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/writer"
)

// BenchmarkWrite measures puts of 128-byte values to an embedded server
// (file storage, no fsync on every write), one at a time and from parallel
// callers.
func BenchmarkWrite(b *testing.B) {
	e := testenv.Start(b)
	w := writer.New(writer.Config{Stream: e.Stream})
	value := make([]byte, 128)
	ctx := context.Background()
	var n atomic.Uint64

	b.Run("sequential", func(b *testing.B) {
		b.SetBytes(int64(len(value)))
		for b.Loop() {
			req := api.WriteRequest{Op: api.OpPut, Key: "key-" + strconv.FormatUint(n.Add(1)%1000, 10), Value: value}
			if _, err := w.Write(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) { writeParallel(b, w, 16, &n, value) })
	// About 64 callers in all, whatever the number of CPUs.
	b.Run("parallel-64", func(b *testing.B) { writeParallel(b, w, max(1, 64/runtime.GOMAXPROCS(0)), &n, value) })
	b.Run("if-absent", func(b *testing.B) {
		b.SetBytes(int64(len(value)))
		for b.Loop() {
			req := api.WriteRequest{Op: api.OpPut, Key: "new-" + strconv.FormatUint(n.Add(1), 10), Value: value, IfAbsent: true}
			if _, err := w.Write(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("if-match", func(b *testing.B) {
		b.SetBytes(int64(len(value)))
		res, err := w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "cas", Value: value})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			req := api.WriteRequest{Op: api.OpPut, Key: "cas", Value: value, IfRevision: res.Revision}
			if res, err = w.Write(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// writeParallel puts value from parallelism callers per CPU (b.SetParallelism)
// until the benchmark ends, to keys numbered by n.
func writeParallel(b *testing.B, w *writer.Writer, parallelism int, n *atomic.Uint64, value []byte) {
	ctx := context.Background()
	b.SetBytes(int64(len(value)))
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := api.WriteRequest{Op: api.OpPut, Key: "key-" + strconv.FormatUint(n.Add(1)%1000, 10), Value: value}
			if _, err := w.Write(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGroupCommit measures puts from about 64 parallel callers,
// published one by one and with group commit, to a server that fsyncs every
// write (durable, as production runs) and to one that does not (fast).
func BenchmarkGroupCommit(b *testing.B) {
	value := make([]byte, 256)
	var n atomic.Uint64
	for _, server := range []struct {
		name string
		sync bool
	}{{"durable", true}, {"fast", false}} {
		b.Run(server.name, func(b *testing.B) {
			e := testenv.StartServer(b, natsserver.ServerConfig{SyncAlways: server.sync})
			for _, mode := range []struct {
				name  string
				group bool
			}{{"one-by-one", false}, {"group-commit", true}} {
				w := writer.New(writer.Config{Stream: e.Stream, GroupCommit: mode.group})
				b.Run(mode.name, func(b *testing.B) { writeParallel(b, w, max(1, 64/runtime.GOMAXPROCS(0)), &n, value) })
			}
		})
	}
}
