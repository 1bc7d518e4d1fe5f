package client_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
)

// BenchmarkClient measures a Session's put and read-your-writes get of
// 128-byte values over each transport, against the whole pipeline in
// process (writer, two replicas, gateway), next to the NATS transport's
// bare write for the Session's own cost.
func BenchmarkClient(b *testing.B) {
	s := stacktest.Start(b, stacktest.Options{})
	ctx := context.Background()
	value := make([]byte, 128)
	for _, tr := range []struct {
		name string
		t    client.Transport
	}{
		{"nats", client.NewNATS(s.Conn.Conn, s.Subjects)},
		{"http", client.NewHTTP(s.URL)},
	} {
		c := client.New(tr.t)
		b.Run(tr.name+"/put", func(b *testing.B) {
			sess := c.NewSession()
			b.SetBytes(int64(len(value)))
			i := 0
			for b.Loop() {
				i++
				if _, err := sess.Put(ctx, "bench/"+strconv.Itoa(i%1000), value); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tr.name+"/put-get", func(b *testing.B) {
			sess := c.NewSession()
			i := 0
			for b.Loop() {
				i++
				key := "bench/" + strconv.Itoa(i%1000)
				if _, err := sess.Put(ctx, key, value); err != nil {
					b.Fatal(err)
				}
				if _, err := sess.Get(ctx, key); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tr.name+"/put-no-session", func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				if _, err := c.Put(ctx, "bench/"+strconv.Itoa(i%1000), value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
