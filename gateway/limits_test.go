package gateway_test

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
)

// testMaxPayload is a small NATS max_payload, so that values at the limit
// stay small.
const testMaxPayload = 64 << 10

// worstKey is the key that takes the most room in a header (percent-encoded)
// and in JSON (escaped).
var worstKey = strings.Repeat("<", api.MaxKeyLen)

func limitsContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestValueAtTheLimitRoundTrips puts a value of exactly the largest allowed
// size, under the longest key and a short one, and reads it back over NATS
// (the reader service), over HTTP and in a scan page. Before values were
// bounded by the NATS server's max_payload, the gateway accepted values
// whose replies never reached the caller.
func TestValueAtTheLimitRoundTrips(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1, MaxPayload: testMaxPayload})
	ctx := limitsContext(t)
	limit := s.Writer.MaxValueBytes()
	if limit >= testMaxPayload {
		t.Fatalf("MaxValueBytes()=%d, want less than the max_payload %d", limit, testMaxPayload)
	}
	for _, key := range []string{worstKey, "k"} {
		value := bytes.Repeat([]byte{0xff}, limit)
		r := do(t, "PUT", s.URL+"/v1/kv/"+url.PathEscape(key), string(value))
		if r.Status != 200 {
			t.Fatalf("PUT of %d bytes (key of %d bytes): status=%d body=%s", limit, len(key), r.Status, r.Body)
		}
		var w api.WriteJSON
		if err := json.Unmarshal([]byte(r.Body), &w); err != nil {
			t.Fatal(err)
		}
		tok, err := api.ParseToken(w.Token)
		if err != nil {
			t.Fatal(err)
		}

		got, err := s.Transport.Get(ctx, api.GetRequest{Key: key, ReadSpec: api.ReadSpec{Token: tok, Wait: 2 * time.Second}})
		if err != nil {
			t.Fatalf("NATS get of %d bytes: %v", limit, err)
		}
		if !bytes.Equal(got.Record.Value, value) {
			t.Fatalf("NATS get: %d bytes, want the %d put", len(got.Record.Value), limit)
		}
		r = do(t, "GET", s.URL+"/v1/kv/"+url.PathEscape(key), "", api.HeaderToken, w.Token, api.HeaderWait, "2s")
		if r.Status != 200 || r.Body != string(value) {
			t.Fatalf("HTTP get: status=%d, %d bytes, want 200 and %d", r.Status, len(r.Body), limit)
		}
		page, err := s.Transport.Scan(ctx, api.ScanRequest{Prefix: key, ReadSpec: api.ReadSpec{Token: tok, Wait: 2 * time.Second}})
		if err != nil {
			t.Fatalf("NATS scan of one value of %d bytes: %v", limit, err)
		}
		if len(page.Items) != 1 || !bytes.Equal(page.Items[0].Value, value) {
			t.Fatalf("NATS scan: %d items, want the one put", len(page.Items))
		}
	}
}

// TestValueOverTheLimitIsRefused sends a value one byte over the limit to
// the gateway, the writer service and the writer itself: each refuses it
// with value_too_large, naming the limit, and the stream holds nothing.
func TestValueOverTheLimitIsRefused(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1, MaxPayload: testMaxPayload})
	ctx := limitsContext(t)
	limit := s.Writer.MaxValueBytes()
	value := strings.Repeat("v", limit+1)
	before := lastSeq(ctx, t, s)

	r := do(t, "PUT", s.URL+"/v1/kv/k", value)
	if r.Status != 413 || errorCode(t, r) != api.CodeValueTooLarge {
		t.Fatalf("HTTP PUT of limit+1: status=%d body=%s, want 413 value_too_large", r.Status, r.Body)
	}
	if want := fmt.Sprintf("limit of %d bytes", limit); !strings.Contains(r.Body, want) || !strings.Contains(r.Body, "max_payload") {
		t.Fatalf("HTTP PUT of limit+1: %s, want it to name the %s and max_payload", r.Body, want)
	}
	req := api.WriteRequest{Op: api.OpPut, Key: "k", Value: []byte(value)}
	if _, err := s.Transport.Write(ctx, req); !errors.Is(err, api.ErrValueTooLarge) {
		t.Fatalf("writer service, limit+1: %v, want ErrValueTooLarge", err)
	}
	if _, err := s.Writer.Write(ctx, req); !errors.Is(err, api.ErrValueTooLarge) {
		t.Fatalf("writer, limit+1: %v, want ErrValueTooLarge", err)
	}
	if got := lastSeq(ctx, t, s); got != before {
		t.Fatalf("stream last sequence=%d after refused puts, want %d", got, before)
	}
	if r := do(t, "GET", s.URL+"/v1/kv/k", ""); r.Status != 404 {
		t.Fatalf("GET after refused puts: status=%d, want 404", r.Status)
	}
}

func lastSeq(ctx context.Context, t *testing.T, s *stacktest.Stack) uint64 {
	t.Helper()
	info, err := s.Stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestScanPagesFitTheTransport stores values whose sum is many times the
// max_payload and scans them over NATS, in-process and over HTTP: every
// page's reply fits the max_payload, pages cut short carry a next cursor,
// and the pages together list every key exactly once, in order.
func TestScanPagesFitTheTransport(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1, MaxPayload: testMaxPayload})
	ctx := limitsContext(t)
	const n = 60
	var want []string
	var tok api.Token
	for i := range n {
		key := fmt.Sprintf("scan/%03d", i)
		size := 10 << 10
		if i%7 == 0 {
			size = s.Writer.MaxValueBytes() // a page of one item
		}
		res, err := s.Writer.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: key, Value: bytes.Repeat([]byte{byte(i)}, size)})
		if err != nil {
			t.Fatal(err)
		}
		tok = res.Token
		want = append(want, key)
	}

	fits := func(how string, page api.ScanResult) {
		t.Helper()
		h, body := wire.EncodeScanReply(page, nil)
		m := wire.ScanMsg("x", api.ScanRequest{})
		m.Header, m.Data = h, body
		if size := m.Size() - len(m.Subject); size > testMaxPayload {
			t.Fatalf("%s: a page of %d items is a reply of %d bytes, over the max_payload %d", how, len(page.Items), size, testMaxPayload)
		}
		if page.Next == "" && len(page.Items) == api.MaxScanLimit {
			t.Fatalf("%s: a full page without next", how)
		}
	}
	collect := func(how string, scan func(after string) (api.ScanResult, error)) {
		t.Helper()
		var got []string
		after, pages := "", 0
		for {
			page, err := scan(after)
			if err != nil {
				t.Fatalf("%s: page %d after %q: %v", how, pages+1, after, err)
			}
			pages++
			fits(how, page)
			for _, it := range page.Items {
				if v := it.Value; len(v) == 0 || v[0] != byte(len(got)) {
					t.Fatalf("%s: item %s has the wrong value", how, it.Key)
				}
				got = append(got, it.Key)
			}
			if page.Next == "" {
				break
			}
			after = page.Next
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("%s: the pages listed %d keys %v, want the %d put, each once, in order", how, len(got), got, n)
		}
		if pages < 2 {
			t.Fatalf("%s: %d page, want the values spread over several", how, pages)
		}
	}
	req := func(after string) api.ScanRequest {
		return api.ScanRequest{Prefix: "scan/", After: after, Limit: api.MaxScanLimit, ReadSpec: api.ReadSpec{Token: tok, Wait: 2 * time.Second}}
	}
	collect("reader service", func(after string) (api.ScanResult, error) { return s.Transport.Scan(ctx, req(after)) })
	collect("in-process replica", func(after string) (api.ScanResult, error) { return s.Replicas[0].Scan(ctx, req(after)) })
	collect("gateway", func(after string) (api.ScanResult, error) {
		return client.NewHTTP(s.URL).Scan(ctx, req(after))
	})

	// The client follows next.
	c := client.New(client.NewHTTP(s.URL))
	var got []string
	for rec, err := range c.ScanAll(client.WithToken(ctx, tok), "scan/", client.WithLimit(api.MaxScanLimit)) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec.Key)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("ScanAll listed %d keys, want %d", len(got), n)
	}
}

// TestAcceptedValuesCanBeRead puts values of sizes around the max_payload:
// each one the gateway accepts is then served by a get over NATS and HTTP
// and by a scan page; the rest are refused with value_too_large. Before the
// limit came from the max_payload, values a little under it were accepted
// and every read of them timed out.
func TestAcceptedValuesCanBeRead(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1, MaxPayload: testMaxPayload})
	accepted := 0
	for _, size := range []int{testMaxPayload - 64, testMaxPayload - 128, testMaxPayload - 256, testMaxPayload - 1024,
		testMaxPayload * 3 / 4, testMaxPayload / 2} {
		key := fmt.Sprintf("size-%d", size)
		value := strings.Repeat("v", size)
		r := do(t, "PUT", s.URL+"/v1/kv/"+key, value)
		if r.Status == 413 {
			continue
		}
		accepted++
		if r.Status != 200 {
			t.Fatalf("PUT of %d bytes: status=%d body=%s", size, r.Status, r.Body)
		}
		tok := r.Header.Get(api.HeaderToken)
		if g := do(t, "GET", s.URL+"/v1/kv/"+key, "", api.HeaderToken, tok, api.HeaderWait, "1s"); g.Status != 200 || g.Body != value {
			t.Fatalf("PUT of %d bytes accepted, but HTTP GET: status=%d body=%.200s", size, g.Status, g.Body)
		}
		ptok, err := api.ParseToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := s.Transport.Get(ctx, api.GetRequest{Key: key, ReadSpec: api.ReadSpec{Token: ptok, Wait: time.Second}}); err != nil {
			t.Fatalf("PUT of %d bytes accepted, but NATS get: %v", size, err)
		}
		if _, err := s.Transport.Scan(ctx, api.ScanRequest{Prefix: key, ReadSpec: api.ReadSpec{Token: ptok, Wait: time.Second}}); err != nil {
			t.Fatalf("PUT of %d bytes accepted, but NATS scan: %v", size, err)
		}
	}
	if accepted == 0 {
		t.Fatalf("no size was accepted, not even half the max_payload")
	}
}

// TestStoredValueTooLargeForTheReplyIsRefused publishes, past the writer, a
// value that the stream takes but no reply can carry (as one stored under a
// larger limit would be): a get and a scan of it fail at once with
// value_too_large instead of leaving the caller waiting for a reply that
// is never sent.
func TestStoredValueTooLargeForTheReplyIsRefused(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1, MaxPayload: testMaxPayload})
	m := nats.NewMsg(s.Stream.KeySubject("big"))
	m.Header.Set(api.HeaderOp, string(api.OpPut))
	m.Data = bytes.Repeat([]byte{'v'}, testMaxPayload-100)
	ack, err := s.JS.PublishMsg(limitsContext(t), m)
	if err != nil {
		t.Fatal(err)
	}
	tok := s.Stream.Token(ack.Sequence)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Transport.Get(ctx, api.GetRequest{Key: "big", ReadSpec: api.ReadSpec{Token: tok, Wait: time.Second}}); !errors.Is(err, api.ErrValueTooLarge) {
		t.Fatalf("get of a value no reply can carry: %v, want ErrValueTooLarge", err)
	}
	if _, err := s.Transport.Scan(ctx, api.ScanRequest{Prefix: "big", ReadSpec: api.ReadSpec{Token: tok, Wait: time.Second}}); !errors.Is(err, api.ErrValueTooLarge) {
		t.Fatalf("scan of a value no reply can carry: %v, want ErrValueTooLarge", err)
	}
}
