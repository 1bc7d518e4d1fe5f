package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/wire"
)

// benchWrite puts one value of 128 bytes and returns its revision.
func benchWrite(ctx context.Context, b *testing.B, s *stacktest.Stack, i int) uint64 {
	res, err := s.Transport.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "bench/" + strconv.Itoa(i%1000), Value: make([]byte, 128)})
	if err != nil {
		b.Error(err)
		return 0
	}
	return res.Revision
}

// writeRate is how many puts a second 64 callers get through for d.
func writeRate(ctx context.Context, b *testing.B, s *stacktest.Stack, d time.Duration) float64 {
	var n atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for c := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; time.Now().Before(deadline); i += 64 {
				benchWrite(ctx, b, s, i)
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

// times records when each revision was acknowledged or delivered.
type times struct {
	mu sync.Mutex
	at map[uint64]time.Time
}

func (t *times) set(rev uint64) {
	now := time.Now()
	t.mu.Lock()
	if t.at == nil {
		t.at = map[uint64]time.Time{}
	}
	t.at[rev] = now
	t.mu.Unlock()
}

func (t *times) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.at)
}

// latencies are delivered - acked of every acknowledged revision, sorted.
func latencies(acked, delivered *times) []time.Duration {
	var out []time.Duration
	for rev, a := range acked.at {
		if d, ok := delivered.at[rev]; ok {
			out = append(out, max(d.Sub(a), 0))
		}
	}
	slices.Sort(out)
	return out
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	return float64(d[min(len(d)-1, int(float64(len(d))*p))].Microseconds())
}

// BenchmarkWatch measures watches on an in-process stack (one replica):
// the latency from a put's acknowledgement to its delivery at a watcher
// (the Go client over NATS), at 10% and 50% of the write rate, next to a
// raw JetStream ordered consumer's in the same run; and fan-out, 1, 100 and
// 1000 watchers of one replica: events delivered per second and the
// replica's apply rate. Run it once: go test -run '^$' -bench BenchmarkWatch
// -benchtime 1x ./gateway/.
func BenchmarkWatch(b *testing.B) {
	s := stacktest.Start(b, stacktest.Options{Replicas: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := client.New(s.Transport)
	full := writeRate(ctx, b, s, 2*time.Second)
	b.Logf("write rate, 64 callers: %.0f/s", full)

	for _, share := range []float64{0.1, 0.5} {
		b.Run(fmt.Sprintf("latency/%d%%", int(share*100)), func(b *testing.B) {
			wctx, wcancel := context.WithCancel(ctx)
			defer wcancel()
			var acked, watched, raw times
			cons, err := s.Env.JS.OrderedConsumer(wctx, s.Env.Stream.Name(), jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
			if err != nil {
				b.Fatal(err)
			}
			cc, err := cons.Consume(func(m jetstream.Msg) {
				if md, err := m.Metadata(); err == nil {
					raw.set(md.Sequence.Stream)
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Stop()
			synced := make(chan struct{})
			go func() {
				for ev, err := range c.Watch(wctx, "bench/") {
					if err != nil {
						return
					}
					switch {
					case ev.Type == api.EventSynced:
						close(synced)
					case ev.ID != 0 && ev.Type == api.EventPut:
						watched.set(ev.ID)
					}
				}
			}()
			<-synced
			rate := full * share
			n := int(rate * 3) // three seconds of writes
			interval := time.Duration(float64(time.Second) / rate)
			var wg sync.WaitGroup
			start := time.Now()
			for i := range n {
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d) // the pace of an open-loop load
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if rev := benchWrite(wctx, b, s, i); rev != 0 {
						acked.set(rev)
					}
				}()
			}
			wg.Wait()
			testenv.Eventually(b, 30*time.Second, "every write delivered", func() bool {
				return watched.len() >= n && raw.len() >= n
			})
			w, r := latencies(&acked, &watched), latencies(&acked, &raw)
			b.ReportMetric(rate, "writes/s")
			b.ReportMetric(pct(w, 0.5), "watch-p50-µs")
			b.ReportMetric(pct(w, 0.99), "watch-p99-µs")
			b.ReportMetric(pct(r, 0.5), "raw-p50-µs")
			b.ReportMetric(pct(r, 0.99), "raw-p99-µs")
		})
	}

	// Fan-out: the watchers have a connection of their own, as they would
	// in other processes. The replica is paused while 5000 puts go to the
	// stream, then resumed: its catch-up apply rate with the watchers
	// attached, next to none, is what they cost the apply loop; then the
	// events they get per second.
	repl := s.Replica(b, "r1").Replicator()
	wc := client.New(client.NewNATS(testenv.Connect(b, s.Env.Server.ClientURL()).Conn, wire.Subjects{}))
	const writes = 5000
	for _, watchers := range []int{0, 1, 100, 1000} {
		b.Run(fmt.Sprintf("fanout/%d", watchers), func(b *testing.B) {
			wctx, wcancel := context.WithCancel(ctx)
			var delivered atomic.Int64
			var wg, ready sync.WaitGroup
			from := repl.Applied()
			for range watchers {
				wg.Add(1)
				ready.Add(1)
				go func() {
					defer wg.Done()
					once := sync.OnceFunc(ready.Done)
					defer once()
					for ev, err := range wc.Watch(wctx, "bench/", client.WatchAfter(from), client.WatchProgress(time.Second)) {
						if err != nil {
							return
						}
						once() // a resumed watch starts with a progress event
						if ev.ID != 0 && ev.Type == api.EventPut {
							delivered.Add(1)
						}
					}
				}()
			}
			ready.Wait()
			repl.Pause()
			var pw sync.WaitGroup
			for c := range 64 {
				pw.Add(1)
				go func() {
					defer pw.Done()
					for i := c; i < writes; i += 64 {
						benchWrite(wctx, b, s, i)
					}
				}()
			}
			pw.Wait()
			info, err := s.Env.Stream.Info(wctx)
			if err != nil {
				b.Fatal(err)
			}
			target := info.State.LastSeq
			t0 := time.Now()
			repl.Resume()
			if err := repl.WaitApplied(wctx, target); err != nil {
				b.Fatal(err)
			}
			apply := float64(target-from) / time.Since(t0).Seconds()
			want := int64(target-from) * int64(watchers)
			testenv.Eventually(b, 120*time.Second, "every watcher to get every put", func() bool { return delivered.Load() >= want })
			elapsed := time.Since(t0).Seconds()
			wcancel()
			wg.Wait()
			b.ReportMetric(apply, "applied/s")
			b.ReportMetric(float64(delivered.Load())/elapsed, "events/s")
		})
	}
}
