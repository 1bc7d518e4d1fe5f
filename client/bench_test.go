package client_test

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/writer"
)

// BenchmarkNATS_Write measures puts of 128-byte values through the writer
// service: client, NATS request/reply, writer, JetStream publish.
func BenchmarkNATS_Write(b *testing.B) {
	e := testenv.Start(b)
	ctx, cancel := context.WithCancel(context.Background())
	svc := writer.NewService(e.Conn.Conn, wire.Subjects{}, writer.New(writer.Config{Stream: e.Stream}), zerolog.Nop())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	c := client.NewNATS(e.Conn.Conn, wire.Subjects{})
	value := make([]byte, 128)
	var n atomic.Uint64
	write := func() error {
		req := api.WriteRequest{Op: api.OpPut, Key: "key-" + strconv.FormatUint(n.Add(1)%1000, 10), Value: value}
		_, err := c.Write(context.Background(), req)
		return err
	}
	testenv.Eventually(b, 10*time.Second, "writer service to answer", func() bool { return write() == nil })

	b.Run("sequential", func(b *testing.B) {
		b.SetBytes(int64(len(value)))
		for b.Loop() {
			if err := write(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(int64(len(value)))
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := write(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
