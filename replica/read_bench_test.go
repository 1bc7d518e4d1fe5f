package replica_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replica"
	"github.com/tidemark/tidemark/stream"
)

// BenchmarkGet measures the in-process point read of an embedded replica,
// with a token it has already reached (the common case of read-your-writes:
// the reply needs no wait), from one caller and from parallel callers.
func BenchmarkGet(b *testing.B) {
	const keys = 1000
	env := testenv.Start(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	value := make([]byte, 128)
	var last uint64
	for i := range keys {
		m := nats.NewMsg(stream.KeySubject(env.Config.Subject, "key-"+strconv.Itoa(i)))
		m.Header.Set(api.HeaderOp, string(api.OpPut))
		m.Data = value
		ack, err := env.JS.PublishMsg(ctx, m)
		if err != nil {
			b.Fatal(err)
		}
		last = ack.Sequence
	}
	r := replica.New(replica.Config{ID: "bench", Dir: b.TempDir(), Stream: env.Stream, Logger: zerolog.Nop()})
	if err := r.Open(); err != nil {
		b.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	b.Cleanup(func() { stop(); <-done; _ = r.Close() })
	if err := r.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	tok := env.Stream.Token(last)
	reqs := make([]api.GetRequest, keys)
	for i := range reqs {
		reqs[i] = api.GetRequest{Key: "key-" + strconv.Itoa(i), ReadSpec: api.ReadSpec{Token: tok}}
	}

	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := r.Get(ctx, reqs[i%keys]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := r.Get(ctx, reqs[i%keys]); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}
