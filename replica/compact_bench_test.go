package replica_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replica"
	"github.com/tidemark/tidemark/stream"
)

// BenchmarkCompactionBounds writes 1 M values of 256 B over 100 k keys
// with compaction on (its defaults, a duplicate window of a second) and
// reports what the stream holds once compaction has caught up, the base
// snapshot's size, and how long a new replica takes to bootstrap from it
// and catch up. Run it once: -bench CompactionBounds -benchtime 1x.
func BenchmarkCompactionBounds(b *testing.B) {
	const n, keys = 1_000_000, 100_000
	for range b.N {
		env := testenv.Start(b)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		info, err := env.Stream.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		sc := info.Config
		sc.Duplicates = time.Second
		if _, err := env.JS.UpdateStream(ctx, sc); err != nil {
			b.Fatal(err)
		}
		dir := b.TempDir()
		start := func(id string, c replica.Compaction) (*replica.Replica, func()) {
			r := replica.New(replica.Config{ID: id, Dir: filepath.Join(dir, id), Stream: env.Stream, Conn: env.Conn.Conn,
				Bootstrap: true, Compaction: c, Logger: zerolog.Nop()})
			if err := r.Open(); err != nil {
				b.Fatal(err)
			}
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- r.Run(rctx) }()
			return r, func() { stop(); <-done; _ = r.Close() }
		}
		a, stopA := start("a1", replica.Compaction{Enabled: true, Interval: time.Second})
		value := make([]byte, 256)
		for i := range n {
			m := stream.Message(env.Stream.Subject(), api.WriteRequest{Op: api.OpPut, Key: fmt.Sprintf("key-%06d", i%keys), Value: value})
			if _, err := env.JS.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
			if i%2048 == 0 {
				<-env.JS.PublishAsyncComplete()
			}
		}
		<-env.JS.PublishAsyncComplete()
		last, err := env.Stream.LastSeq(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := a.Replicator().WaitApplied(ctx, last); err != nil {
			b.Fatal(err)
		}
		var st replica.CompactStatus
		testenv.Eventually(b, 2*time.Minute, "compaction up to the base snapshot", func() bool {
			st = a.CompactStatus()
			info, err := env.Stream.Info(ctx)
			return err == nil && st.Base != nil && st.Base.Applied+uint64(replica.DefaultSnapshotMessages) > last &&
				info.State.FirstSeq == min(st.Base.Applied, last-uint64(replica.DefaultWindowMessages)+1)
		})
		if info, err = env.Stream.Info(ctx); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		r, stopR := start("b2", replica.Compaction{})
		if err := r.Replicator().WaitApplied(ctx, last); err != nil {
			b.Fatal(err)
		}
		boot := time.Since(t0)
		b.ReportMetric(float64(info.State.Msgs), "stream-msgs")
		b.ReportMetric(float64(info.State.Bytes)/(1<<20), "stream-MiB")
		b.ReportMetric(float64(st.Base.Bytes)/(1<<20), "base-MiB")
		b.ReportMetric(float64(st.Removed), "removed-msgs")
		b.ReportMetric(boot.Seconds(), "bootstrap-s")
		stopR()
		stopA()
		cancel()
	}
}
