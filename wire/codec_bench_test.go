package wire_test

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/stream"
)

// BenchmarkToken measures the session token codec: every request parses
// one and every reply formats one.
func BenchmarkToken(b *testing.B) {
	tok := api.NewToken("3f9a0c21b7d4", 1234567)
	s := tok.String()
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := api.ParseToken(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("string", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = tok.String()
		}
	})
	b.Run("merge", func(b *testing.B) {
		b.ReportAllocs()
		o := api.NewToken(tok.Stream, tok.Seq+1)
		for b.Loop() {
			if _, err := tok.Merge(o); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEnvelope measures the stream message codec: the writer encodes
// a key into its subject, every replica decodes every message.
func BenchmarkEnvelope(b *testing.B) {
	const key = "orders/2024/0042"
	value := make([]byte, 128)
	subject := stream.KeySubject(stream.DefaultSubject, key)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = stream.KeySubject(stream.DefaultSubject, key)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := stream.DecodeEntry(stream.DefaultSubject, subject, string(api.OpPut), value); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWire measures the service protocol's encoding and decoding of a
// put and of a point read's reply, as the client and the services do it.
func BenchmarkWire(b *testing.B) {
	tok := api.NewToken("3f9a0c21b7d4", 1234567)
	value := make([]byte, 128)
	subjects := wire.Subjects{}
	b.Run("write-request", func(b *testing.B) {
		b.ReportAllocs()
		req := api.WriteRequest{Op: api.OpPut, Key: "orders/42", Value: value, Token: tok}
		for b.Loop() {
			m := wire.WriteMsg(subjects.Put(), req)
			if _, err := wire.DecodeWriteRequest(api.OpPut, m.Header, m.Data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write-reply", func(b *testing.B) {
		b.ReportAllocs()
		res := api.WriteResult{Key: "orders/42", Revision: tok.Seq, Token: tok}
		for b.Loop() {
			h, body := wire.EncodeWriteReply(res, nil)
			if _, err := wire.DecodeWriteReply(&nats.Msg{Header: h, Data: body}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("get-request", func(b *testing.B) {
		b.ReportAllocs()
		req := api.GetRequest{Key: "orders/42", ReadSpec: api.ReadSpec{Token: tok, Wait: 2 * time.Second}}
		for b.Loop() {
			m := wire.GetMsg(subjects.Get(), req)
			if _, err := wire.DecodeGetRequest(m.Header); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("get-reply", func(b *testing.B) {
		b.ReportAllocs()
		res := api.GetResult{
			Record:   api.Record{Key: "orders/42", Value: value, Revision: 7},
			Token:    tok,
			ServedBy: api.ServedBy{Replica: "r1", Applied: tok.Seq, StreamLast: tok.Seq},
		}
		for b.Loop() {
			h, body := wire.EncodeGetReply(res, nil)
			if _, err := wire.DecodeGetReply("orders/42", &nats.Msg{Header: h, Data: body}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
