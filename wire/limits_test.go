package wire_test

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Keys that take room in different ways: the longest escapes, multi-byte
// runes JSON escapes (U+2028), control characters, plain ASCII.
var limitKeys = []string{
	strings.Repeat("<", api.MaxKeyLen),
	strings.Repeat("\u2028", api.MaxKeyLen/3),
	strings.Repeat("\x01", api.MaxKeyLen),
	strings.Repeat("%", api.MaxKeyLen),
	strings.Repeat("k", api.MaxKeyLen),
	"k",
}

var limitToken = api.NewToken(strings.Repeat("f", 32), math.MaxUint64)

// wireSize is the bytes a message of h and data counts against max_payload.
func wireSize(h nats.Header, data []byte) int {
	m := &nats.Msg{Header: h, Data: data}
	return m.Size()
}

// largest returns the sizes of the messages that carry a value of n bytes
// under key at their largest: the put request, the get reply and a scan
// page of that one value.
func largest(key string, n int) (put, get, scan int) {
	value := bytes.Repeat([]byte{0xff}, n)
	req := api.WriteRequest{Op: api.OpPut, Key: key, Value: value, Token: limitToken, WriteID: strings.Repeat("w", api.MaxWriteIDLen),
		IfRevision: math.MaxUint64, Session: strings.Repeat("s", api.MaxIDLen), SessionSeq: math.MaxUint64}
	m := wire.WriteMsg("x", req)
	put = wireSize(m.Header, m.Data)
	served := func(h nats.Header) {
		wire.SetServedBy(h, api.ServedBy{Replica: strings.Repeat("r", 64), Applied: math.MaxUint64, Waited: time.Duration(math.MaxInt64), StreamLast: math.MaxUint64})
	}
	h, body := wire.EncodeGetReply(api.GetResult{Record: api.Record{Key: key, Value: value, Revision: math.MaxUint64}, Token: limitToken}, nil)
	served(h)
	get = wireSize(h, body)
	h, body = wire.EncodeScanReply(api.ScanResult{Items: []api.Record{{Key: key, Value: value, Revision: math.MaxUint64}},
		Next: key, Token: limitToken}, nil)
	served(h)
	scan = wireSize(h, body)
	return put, get, scan
}

// TestTransportMaxValue checks that a value of the limit fits every message
// that carries it, whatever the key, and that the limit is the largest
// such: one byte more does not fit the worst key's scan page.
func TestTransportMaxValue(t *testing.T) {
	for _, payload := range []int64{64 << 10, 1 << 20} {
		limit := wire.TransportMaxValue(payload)
		if limit < int(payload)/2 {
			t.Fatalf("TransportMaxValue(%d)=%d, want most of it", payload, limit)
		}
		for _, key := range limitKeys {
			if err := api.ValidateKey(key); err != nil {
				t.Fatal(err)
			}
			put, get, scan := largest(key, limit)
			if int64(max(put, get, scan)) > payload {
				t.Fatalf("max_payload %d, key of %d bytes %.8q, value of the limit %d: put %d, get %d, scan %d bytes",
					payload, len(key), key, limit, put, get, scan)
			}
		}
		if _, _, scan := largest(limitKeys[0], limit+1); int64(scan) <= payload {
			t.Fatalf("max_payload %d: a value of limit+1 (%d) fits a scan page of %d bytes; the limit is not the largest", payload, limit+1, scan)
		}
	}
	if got := wire.TransportMaxValue(1024); got != 0 {
		t.Fatalf("TransportMaxValue(1024)=%d, want 0: not even the headers fit", got)
	}
}

func TestValueLimit(t *testing.T) {
	transport := wire.TransportMaxValue(1 << 20)
	for _, tt := range []struct {
		name        string
		configured  int
		maxPayload  int64
		bytes       int
		byTransport bool
		msg         string
	}{
		{"configured below the transport", 1000, 1 << 20, 1000, false, "over the configured limit of 1000 bytes"},
		{"configured above the transport", 1 << 20, 1 << 20, transport, true, "max_payload is 1048576 bytes"},
		{"no configured limit", 0, 1 << 20, transport, true, "max_payload is 1048576 bytes"},
		{"no transport", 1000, 0, 1000, false, "over the configured limit of 1000 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := wire.NewValueLimit(tt.configured, tt.maxPayload)
			if got, want := l.Bytes, tt.bytes; got != want {
				t.Fatalf("Bytes=%d, want %d", got, want)
			}
			if got, want := l.TransportLimited(), tt.byTransport; got != want {
				t.Fatalf("TransportLimited()=%v, want %v", got, want)
			}
			if err := l.Check(int64(l.Bytes)); err != nil {
				t.Fatalf("Check(limit)=%v, want nil", err)
			}
			err := l.Check(int64(l.Bytes) + 1)
			if !errors.Is(err, api.ErrValueTooLarge) || !strings.Contains(err.Error(), tt.msg) ||
				!strings.Contains(err.Error(), strconv.Itoa(l.Bytes)) {
				t.Fatalf("Check(limit+1)=%v, want ErrValueTooLarge naming %d and %q", err, l.Bytes, tt.msg)
			}
		})
	}
}

// pageFit is how many of the leading items a page of budget b takes.
func pageFit(b *wire.PageBudget, items []api.Record) int {
	for i, it := range items {
		if !b.Add(it) {
			return i
		}
	}
	return len(items)
}

// TestPageBudget cuts pages of random keys and values: the page cut fits
// max_payload with the reply's headers at their largest, one item more
// would not, and a page always keeps its first item.
func TestPageBudget(t *testing.T) {
	const payload = 64 << 10
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		items := make([]api.Record, 1+rng.IntN(60))
		for i := range items {
			key := limitKeys[rng.IntN(len(limitKeys))]
			items[i] = api.Record{Key: key[:1+rng.IntN(len(key))], Revision: rng.Uint64N(math.MaxUint64),
				Value: make([]byte, rng.IntN(wire.TransportMaxValue(payload)/4))}
		}
		items[0].Value = make([]byte, rng.IntN(wire.TransportMaxValue(payload)+1))
		n := pageFit(wire.NewPageBudget(payload), items)
		if n < 1 || n > len(items) {
			t.Fatalf("a page of %d items took %d", len(items), n)
		}
		size := func(k int) int {
			h, body := wire.EncodeScanReply(api.ScanResult{Items: items[:k], Next: items[k-1].Key, Token: limitToken}, nil)
			wire.SetServedBy(h, api.ServedBy{Replica: strings.Repeat("r", 64), Applied: math.MaxUint64, Waited: time.Duration(math.MaxInt64), StreamLast: math.MaxUint64})
			return wireSize(h, body)
		}
		if got := size(n); got > payload {
			t.Fatalf("a page cut to %d of %d items is %d bytes, over %d", n, len(items), got, payload)
		}
		if n < len(items) && size(n+1) <= payload-api.MaxKeyLen*6-2 {
			t.Fatalf("a page cut to %d of %d items leaves room for the next: %d bytes with it", n, len(items), size(n+1))
		}
	}
	if got := pageFit(wire.NewPageBudget(0), make([]api.Record, 5)); got != 5 {
		t.Fatalf("a page with no max_payload took %d, want all 5", got)
	}
}

// FuzzTransportMaxValue checks, for any valid key, that the messages
// carrying a value of the limit fit max_payload.
func FuzzTransportMaxValue(f *testing.F) {
	for _, k := range limitKeys {
		f.Add(k, uint16(0))
	}
	f.Fuzz(func(t *testing.T, key string, extra uint16) {
		if api.ValidateKey(key) != nil {
			return
		}
		payload := int64(16<<10) + int64(extra)
		limit := wire.TransportMaxValue(payload)
		if put, get, scan := largest(key, limit); int64(max(put, get, scan)) > payload {
			t.Fatalf("max_payload %d, key %q, value %d: put %d, get %d, scan %d", payload, key, limit, put, get, scan)
		}
	})
}
