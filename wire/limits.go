package wire

import (
	"github.com/tidemark/tidemark/api"

	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Every reply fits the transport: a NATS client refuses to publish a
// message whose headers and data exceed the server's max_payload
// (nats.Conn.MaxPayload), so a reply over it is never delivered and the
// caller only sees a timeout. The limits below are worked out from the
// protocol's own encoders (api.go) with every field at its largest (a key of
// MaxKeyLen bytes that escapes to the longest header and JSON string, the
// longest token, replica id, write id, session and numbers), so that a
// value under ValueLimit fits every message that carries it whole, and a
// scan page that PageBudget cut fits its reply.

// overheads are the protocol's worst-case bytes around values.
type overheads struct {
	// whole is the largest header of a message that carries a value as its
	// whole body: a put request, the stream message, a get reply.
	whole int
	// page is the largest scan reply with no items: headers and body, with
	// the longest next and token.
	page int
	// item is one scan item without its key, revision and value, plus the
	// comma between items.
	item int
	// largestItem is the largest item with an empty value: item plus the
	// longest key and revision.
	largestItem int
}

var protocolOverheads = sync.OnceValue(computeOverheads)

func computeOverheads() overheads {
	key := strings.Repeat("<", api.MaxKeyLen) // 3 bytes percent-encoded, 6 in JSON: the most of any key
	tok := api.NewToken(strings.Repeat("z", 32), math.MaxUint64)
	replica := strings.Repeat("r", 64)
	maxWait := time.Duration(math.MaxInt64)

	put := api.WriteRequest{Op: api.OpPut, Key: key, Token: tok, WriteID: strings.Repeat("w", api.MaxWriteIDLen),
		IfRevision: math.MaxUint64, Session: strings.Repeat("s", api.MaxIDLen), SessionSeq: math.MaxUint64,
		TTL: api.MaxTTL - 1} // the longest duration text a TTL has
	whole := headerSize(WriteMsg("put", put).Header)

	// The stream message a writer publishes: its op, session and the
	// JetStream headers of deduplication and conditional writes.
	sm := nats.Header{}
	sm.Set(api.HeaderOp, string(api.OpPut))
	api.SetSession(sm, put.Session, put.SessionSeq)
	sm.Set(jetstream.MsgIDHeader, put.WriteID)
	sm.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(math.MaxUint64, 10))
	// A put's time to live in nanoseconds, under the stream's name of it
	// (stream.HeaderTTL, as long as api.HeaderTTL).
	sm.Set(api.HeaderTTL, strconv.FormatInt(int64(api.MaxTTL), 10))
	whole = max(whole, headerSize(sm))

	served := api.ServedBy{Replica: replica, Applied: math.MaxUint64, Waited: maxWait, StreamLast: math.MaxUint64}
	get, _ := EncodeGetReply(api.GetResult{Record: api.Record{Key: key, Revision: math.MaxUint64}, Token: tok, ServedBy: served}, nil)
	whole = max(whole, headerSize(get))

	h, body := EncodeScanReply(api.ScanResult{Items: []api.Record{}, Next: key, Token: tok, ServedBy: served}, nil)
	o := overheads{whole: whole, page: headerSize(h) + len(body)}
	empty, _ := json.Marshal(api.ItemJSON{Value: []byte{}})
	o.item = len(empty) - len(`""`) - len("0") + len(",")
	o.largestItem = o.item + jsonStringLen(key) + len(strconv.FormatUint(math.MaxUint64, 10))
	return o
}

// headerSize is how many bytes h adds to a NATS message, as the client
// encodes it.
func headerSize(h nats.Header) int {
	m := &nats.Msg{Header: h}
	return m.Size()
}

func jsonStringLen(s string) int {
	b, _ := json.Marshal(s)
	return len(b)
}

// ValueLimit is the largest value a put may carry and why.
type ValueLimit struct {
	// Bytes is the largest value, never negative; math.MaxInt32 when
	// nothing limits it.
	Bytes int
	// Configured is the configured limit; 0 is none.
	Configured int
	// MaxPayload is the NATS server's max_payload the limit was worked out
	// for; 0 is no transport limit.
	MaxPayload int64
}

// NewValueLimit returns the limit of values: configured (0 for none), or
// less when the largest message that carries a value whole would not fit
// maxPayload (0 for no transport). A scan reply is the largest: it carries
// a value in base64, with its key and the page's headers.
func NewValueLimit(configured int, maxPayload int64) ValueLimit {
	l := ValueLimit{Bytes: configured, Configured: configured, MaxPayload: maxPayload}
	if maxPayload <= 0 {
		if l.Bytes <= 0 {
			l.Bytes = math.MaxInt32
		}
		return l
	}
	t := TransportMaxValue(maxPayload)
	if l.Bytes <= 0 || t < l.Bytes {
		l.Bytes = t
	}
	return l
}

// TransportMaxValue is the largest value that every message carrying it
// whole fits in a server's max_payload: a put request, the stream message,
// a get reply and a scan page of that one value.
func TransportMaxValue(maxPayload int64) int {
	o := protocolOverheads()
	whole := maxPayload - int64(o.whole)
	// A page of one item: base64 makes 4 bytes of every 3 (rounded up).
	page := (maxPayload - int64(o.page) - int64(o.largestItem)) / 4 * 3
	return int(max(0, min(whole, page, math.MaxInt32)))
}

// TransportLimited reports whether the transport, not the configuration,
// sets the limit.
func (l ValueLimit) TransportLimited() bool {
	return l.MaxPayload > 0 && (l.Configured <= 0 || l.Bytes < l.Configured)
}

// Check returns ErrValueTooLarge, with a message naming the limit and why,
// when a value of n bytes is over it.
func (l ValueLimit) Check(n int64) error {
	if n <= int64(l.Bytes) {
		return nil
	}
	return l.TooLarge(strconv.FormatInt(n, 10) + " bytes")
}

// TooLarge returns ErrValueTooLarge for a value of size (such as "2000
// bytes"), naming the limit and why.
func (l ValueLimit) TooLarge(size string) error {
	if l.TransportLimited() {
		return api.Errorf(api.ErrValueTooLarge, "value is %s, over the limit of %d bytes: the NATS server's max_payload is %d bytes, "+
			"and a reply carries the value with its key and headers, in base64 in a scan page", size, l.Bytes, l.MaxPayload)
	}
	return api.Errorf(api.ErrValueTooLarge, "value is %s, over the configured limit of %d bytes", size, l.Bytes)
}

// String describes the limit, for logs.
func (l ValueLimit) String() string {
	if l.TransportLimited() {
		return fmt.Sprintf("%d bytes (set by the NATS server's max_payload of %d bytes)", l.Bytes, l.MaxPayload)
	}
	return fmt.Sprintf("%d bytes", l.Bytes)
}

// PageBudget counts the bytes of a scan reply as items join its page, so
// that a page stops before its reply would exceed the max_payload. A page
// cut short is continued after its last item's key. A value under
// ValueLimit always fits on a page of its own. The nil *PageBudget has no
// limit.
type PageBudget struct {
	room int64
	n    int
}

// NewPageBudget returns the budget of one page whose reply must fit
// maxPayload; nil (no limit) when maxPayload <= 0.
func NewPageBudget(maxPayload int64) *PageBudget {
	if maxPayload <= 0 {
		return nil
	}
	return &PageBudget{room: maxPayload - int64(protocolOverheads().page)}
}

// Add reports whether it fits the page after the items added before it,
// and if so counts it. The first item always fits, so that a scan always
// moves on.
func (b *PageBudget) Add(it api.Record) bool {
	if b == nil {
		return true
	}
	size := int64(itemSize(protocolOverheads(), it))
	if b.n > 0 && size > b.room {
		return false
	}
	b.room -= size
	b.n++
	return true
}

// itemSize is the bytes it adds to a scan reply's body, comma included.
func itemSize(o overheads, it api.Record) int {
	return o.item + jsonStringLen(it.Key) + len(strconv.FormatUint(it.Revision, 10)) + base64.StdEncoding.EncodedLen(len(it.Value))
}

// ReplyFits returns ErrValueTooLarge when a reply of headers h and body
// would exceed maxPayload (0 for no limit), so that a reply the client
// would never get is refused with a reason instead. what names the reply
// in the error; it is called only then.
func ReplyFits(maxPayload int64, h nats.Header, body []byte, what func() string) error {
	if maxPayload <= 0 || int64(len(body)) <= maxPayload-int64(protocolOverheads().whole) {
		return nil // no get or scan reply has larger headers than that
	}
	if n := int64(headerSize(h) + len(body)); n > maxPayload {
		return api.Errorf(api.ErrValueTooLarge, "%s is %d bytes, over the NATS server's max_payload of %d bytes", what(), n, maxPayload)
	}
	return nil
}
