package stream

import (
	"encoding/json"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultAPIPrefix is the subject prefix of the service endpoints.
const DefaultAPIPrefix = "tidemark"

// Headers of the service protocol, on NATS requests and replies. The HTTP
// gateway uses the same names where they make sense.
const (
	HeaderToken       = "Tidemark-Token"
	HeaderKey         = "Tidemark-Key"
	HeaderWait        = "Tidemark-Wait"
	HeaderRevision    = "Tidemark-Revision"
	HeaderWriteID     = "Tidemark-Write-Id"
	HeaderReplica     = "Tidemark-Replica"
	HeaderApplied     = "Tidemark-Applied"
	HeaderWaited      = "Tidemark-Waited"
	HeaderConsistency = "Tidemark-Consistency"
	HeaderOnTimeout   = "Tidemark-On-Timeout"
	HeaderStreamLast  = "Tidemark-Stream-Last"
	HeaderSession     = "Tidemark-Session"
	HeaderSessionSeq  = "Tidemark-Session-Seq"
	HeaderIfMatch     = "If-Match"
	HeaderIfNoneMatch = "If-None-Match"
	// HeaderErrorCode and HeaderError are the micro service error headers.
	HeaderErrorCode = "Nats-Service-Error-Code"
	HeaderError     = "Nats-Service-Error"
)

// MaxWriteIDLen bounds a client-chosen write id.
const MaxWriteIDLen = 128

// Subjects names the service endpoints under an API prefix.
type Subjects struct {
	// Prefix is the API prefix, DefaultAPIPrefix when empty.
	Prefix string
}

func (s Subjects) base() string {
	if s.Prefix == "" {
		return DefaultAPIPrefix + ".v1"
	}
	return s.Prefix + ".v1"
}

// Put is the writer's put endpoint.
func (s Subjects) Put() string { return s.base() + ".put" }

// Delete is the writer's delete endpoint.
func (s Subjects) Delete() string { return s.base() + ".delete" }

// Get is the replicas' point read endpoint, served by any one replica.
func (s Subjects) Get() string { return s.base() + ".get" }

// Scan is the replicas' prefix scan endpoint, served by any one replica.
func (s Subjects) Scan() string { return s.base() + ".scan" }

// ReplicaGet is the point read endpoint of one replica.
func (s Subjects) ReplicaGet(id string) string { return s.base() + ".replica." + id + ".get" }

// ReplicaScan is the prefix scan endpoint of one replica.
func (s Subjects) ReplicaScan(id string) string { return s.base() + ".replica." + id + ".scan" }

// Snapshot is where a bootstrapping replica asks any one ready replica for
// a snapshot of its state.
func (s Subjects) Snapshot() string { return s.base() + ".snapshot" }

// Consistency is a read's consistency level.
type Consistency string

// The consistency levels of a read.
const (
	// Session (the default) waits until the replica has applied the
	// request's token: read-your-writes and monotonic reads.
	Session Consistency = "session"
	// Strong waits until the replica has applied the stream's last
	// sequence as of the request, so it also sees every other session's
	// acknowledged writes.
	Strong Consistency = "strong"
	// Eventual never waits; the reply says how far the replica had applied
	// and the stream's last sequence as the replica knew it.
	Eventual Consistency = "eventual"
)

// ParseConsistency parses a consistency level; "" is Session.
func ParseConsistency(s string) (Consistency, error) {
	switch c := Consistency(s); c {
	case "", Session:
		return Session, nil
	case Strong, Eventual:
		return c, nil
	}
	return "", Errorf(ErrInvalidRequest, "invalid consistency %q: want session, strong or eventual", s)
}

// WriteRequest is a put or a delete as a writer receives it.
type WriteRequest struct {
	// Op is OpPut or OpDelete.
	Op Op
	// Key is the key to write.
	Key string
	// Value is the value of a put.
	Value []byte
	// Token is the session's token, if any.
	Token Token
	// WriteID identifies the write for deduplication of retries; the writer
	// makes one up when it is empty.
	WriteID string
	// IfRevision, when not zero, makes the write happen only if the key's
	// current revision is IfRevision.
	IfRevision uint64
	// IfAbsent makes the write happen only if the key does not exist.
	IfAbsent bool
	// Session and SessionSeq, when set, order the write within its
	// session: a write whose SessionSeq is not above the highest one
	// already stored for Session is never applied (monotonic writes).
	Session    string
	SessionSeq uint64
}

// WriteResult is the outcome of a write.
type WriteResult struct {
	// Key is the key written.
	Key string
	// Revision is the write's stream sequence.
	Revision uint64
	// Token is the session's new token.
	Token Token
}

// GetRequest is a point read.
type GetRequest struct {
	// Key is the key to read.
	Key string
	// Token is the session's token; the read reflects at least this position.
	Token Token
	// Wait bounds how long the read may wait for the token; 0 means the
	// server's default.
	Wait time.Duration
	// Consistency is the read's level; "" is Session.
	Consistency Consistency
	// Replica, when set, sends the read to that replica only; it is routing
	// information, carried by the subject, not by the request.
	Replica string
	// Forward, when the chosen replica cannot reach the token in time,
	// tries the freshest other replica before failing (routing only).
	Forward bool
}

// SplitForward splits the wait of a read with Forward between the first
// replica and the one it is forwarded to: the last quarter is kept for the
// second.
func SplitForward(wait time.Duration) (first, rest time.Duration) {
	rest = wait / 4
	return wait - rest, rest
}

// GetResult is the outcome of a point read. On ErrNotFound it still carries
// the token and, for a deleted key, the delete's revision.
type GetResult struct {
	// Record is the key's state; Revision is the delete's for a deleted key.
	Record Record
	// Token is the session's new token, max(request token, applied).
	Token Token
	// Replica is the id of the replica that served the read.
	Replica string
	// Applied is the replica's applied sequence at the read.
	Applied uint64
	// Waited is how long the read waited for the token.
	Waited time.Duration
	// StreamLast is the stream's last sequence as the replica knew it.
	StreamLast uint64
}

// ScanRequest is a prefix scan.
type ScanRequest struct {
	// Prefix selects the keys; empty selects all.
	Prefix string
	// After starts the page after this key.
	After string
	// Limit is the most keys a page holds; 0 means DefaultScanLimit. A page
	// holds fewer when their values would not fit one reply (PageBudget), and
	// then has a Next: only an empty Next ends a scan.
	Limit int
	// Token is the session's token.
	Token Token
	// Wait bounds how long the scan may wait for the token.
	Wait time.Duration
	// Consistency is the scan's level; "" is Session.
	Consistency Consistency
	// Replica, when set, sends the scan to that replica only.
	Replica string
	// Forward is as in GetRequest.
	Forward bool
}

// Scan limits: the default and largest count of keys in a page. Pages are
// bounded by bytes too (PageBudget).
const (
	DefaultScanLimit = 100
	MaxScanLimit     = 1000
)

// ScanResult is a page of a prefix scan.
type ScanResult struct {
	// Items are the live keys of the page, in key order.
	Items []Record
	// Next is the After of the next page, or "" on the last page; a page
	// cut short by bytes has one however few items it holds.
	Next string
	// Token is the session's new token.
	Token Token
	// Replica, Applied, Waited and StreamLast are as in GetResult.
	Replica    string
	Applied    uint64
	Waited     time.Duration
	StreamLast uint64
}

// WriteJSON is the JSON body of a successful write, over HTTP and NATS.
type WriteJSON struct {
	Key      string `json:"key"`
	Revision uint64 `json:"revision"`
	Token    string `json:"token"`
}

// ItemJSON is one key of a scan page.
type ItemJSON struct {
	Key      string `json:"key"`
	Value    []byte `json:"value"`
	Revision uint64 `json:"revision"`
}

// ScanJSON is the JSON body of a scan page, over HTTP and NATS.
type ScanJSON struct {
	Items []ItemJSON `json:"items"`
	Next  string     `json:"next"`
	Token string     `json:"token"`
}

// ScanRequestJSON is the JSON body of a scan request over NATS.
type ScanRequestJSON struct {
	Prefix string `json:"prefix"`
	After  string `json:"after,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

// ErrorJSON is the JSON body of every error, over HTTP and NATS.
type ErrorJSON struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is the code and message of an error.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ToScanJSON converts a scan page to its JSON form.
func (r ScanResult) ToScanJSON() ScanJSON {
	out := ScanJSON{Items: make([]ItemJSON, len(r.Items)), Next: r.Next, Token: r.Token.String()}
	for i, it := range r.Items {
		out.Items[i] = ItemJSON{Key: it.Key, Value: it.Value, Revision: it.Revision}
	}
	return out
}

// ErrorBodyOf returns the JSON error body for err.
func ErrorBodyOf(err error) ErrorJSON {
	return ErrorJSON{Error: ErrorBody{Code: Code(err), Message: err.Error()}}
}

// EncodeKey writes a key into a header value: percent-encoded, so that any
// UTF-8 key survives a header.
func EncodeKey(key string) string { return url.PathEscape(key) }

// DecodeKey reads a key from a header value (percent-decoding it) and
// validates it.
func DecodeKey(s string) (string, error) {
	key, err := url.PathUnescape(s)
	if err != nil {
		return "", Errorf(ErrInvalidKey, "invalid key: bad percent-encoding")
	}
	return key, ValidateKey(key)
}

// MaxSessionLen bounds a session id.
const MaxSessionLen = 64

// ParseSession parses a write's session id and sequence: both absent, or
// an id of 1 to 64 letters, digits, '-' or '_' with a positive sequence.
func ParseSession(id, seq string) (string, uint64, error) {
	if id == "" && seq == "" {
		return "", 0, nil
	}
	if !ValidReplicaID(id) {
		return "", 0, Errorf(ErrInvalidRequest, "invalid session %q: want 1 to %d letters, digits, '-' or '_'", id, MaxSessionLen)
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || n == 0 {
		return "", 0, Errorf(ErrInvalidRequest, "invalid session sequence %q: want a positive integer", seq)
	}
	return id, n, nil
}

// ParseWait parses a wait bound ("250ms", "2s"); "" is 0 (the default).
func ParseWait(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, Errorf(ErrInvalidRequest, "invalid wait %q: want a duration like 2s or 250ms", s)
	}
	return d, nil
}

// ParseRevision parses an entity tag or revision header value: N or "N".
func ParseRevision(s string) (uint64, error) {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, Errorf(ErrInvalidRequest, "invalid revision %q: want a positive integer", s)
	}
	return n, nil
}

// --- NATS encoding -------------------------------------------------------

func header(h nats.Header, name string) string {
	if h == nil {
		return ""
	}
	return h.Get(name)
}

// Msg builds the NATS request for w on subject.
func (w WriteRequest) Msg(subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(HeaderKey, EncodeKey(w.Key))
	if !w.Token.IsZero() {
		m.Header.Set(HeaderToken, w.Token.String())
	}
	if w.WriteID != "" {
		m.Header.Set(HeaderWriteID, w.WriteID)
	}
	if w.IfRevision != 0 {
		m.Header.Set(HeaderIfMatch, strconv.FormatUint(w.IfRevision, 10))
	}
	if w.IfAbsent {
		m.Header.Set(HeaderIfNoneMatch, "*")
	}
	SetSession(m.Header, w.Session, w.SessionSeq)
	if w.Op == OpPut {
		m.Data = w.Value
	}
	return m
}

// DecodeWriteRequest decodes a write request of op from NATS headers and data.
func DecodeWriteRequest(op Op, h nats.Header, data []byte) (WriteRequest, error) {
	key, err := DecodeKey(header(h, HeaderKey))
	if err != nil {
		return WriteRequest{}, err
	}
	tok, err := ParseToken(header(h, HeaderToken))
	if err != nil {
		return WriteRequest{}, err
	}
	w := WriteRequest{Op: op, Key: key, Token: tok, WriteID: header(h, HeaderWriteID)}
	if len(w.WriteID) > MaxWriteIDLen {
		return WriteRequest{}, Errorf(ErrInvalidRequest, "write id longer than %d bytes", MaxWriteIDLen)
	}
	if s := header(h, HeaderIfMatch); s != "" {
		if w.IfRevision, err = ParseRevision(s); err != nil {
			return WriteRequest{}, err
		}
	}
	switch s := header(h, HeaderIfNoneMatch); s {
	case "":
	case "*":
		w.IfAbsent = true
	default:
		return WriteRequest{}, Errorf(ErrInvalidRequest, "If-None-Match supports only *")
	}
	if w.IfAbsent && w.IfRevision != 0 {
		return WriteRequest{}, Errorf(ErrInvalidRequest, "If-Match and If-None-Match together")
	}
	if w.Session, w.SessionSeq, err = ParseSession(header(h, HeaderSession), header(h, HeaderSessionSeq)); err != nil {
		return WriteRequest{}, err
	}
	switch op {
	case OpPut:
		if data == nil {
			data = []byte{}
		}
		w.Value = data
	case OpDelete:
		if len(data) != 0 {
			return WriteRequest{}, Errorf(ErrInvalidRequest, "delete with a body")
		}
	default:
		return WriteRequest{}, Errorf(ErrInvalidRequest, "unknown op %q", op)
	}
	return w, nil
}

// EncodeWriteReply encodes the reply to a write: headers and body.
func EncodeWriteReply(res WriteResult, err error) (nats.Header, []byte) {
	h := nats.Header{}
	setTokenRev(h, res.Token, res.Revision)
	if err != nil {
		return errorReply(h, err)
	}
	body, _ := json.Marshal(WriteJSON{Key: res.Key, Revision: res.Revision, Token: res.Token.String()})
	return h, body
}

// DecodeWriteReply decodes a writer's reply.
func DecodeWriteReply(m *nats.Msg) (WriteResult, error) {
	tok, rev, err := replyTokenRev(m)
	res := WriteResult{Token: tok, Revision: rev}
	if err != nil {
		return res, err
	}
	if err := replyError(m); err != nil {
		return res, err
	}
	var body WriteJSON
	if err := json.Unmarshal(m.Data, &body); err != nil {
		return res, Errorf(ErrInternal, "bad write reply: %v", err)
	}
	res.Key = body.Key
	return res, nil
}

// Msg builds the NATS request for g on subject.
func (g GetRequest) Msg(subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(HeaderKey, EncodeKey(g.Key))
	setReadHeaders(m.Header, g.Token, g.Wait, g.Consistency)
	return m
}

// DecodeGetRequest decodes a point read from NATS headers.
func DecodeGetRequest(h nats.Header) (GetRequest, error) {
	key, err := DecodeKey(header(h, HeaderKey))
	if err != nil {
		return GetRequest{}, err
	}
	tok, wait, c, err := readHeaders(h)
	if err != nil {
		return GetRequest{}, err
	}
	return GetRequest{Key: key, Token: tok, Wait: wait, Consistency: c}, nil
}

// EncodeGetReply encodes the reply to a point read: headers and body (the value).
func EncodeGetReply(res GetResult, err error) (nats.Header, []byte) {
	h := nats.Header{}
	setTokenRev(h, res.Token, res.Record.Revision)
	SetServedBy(h, res.Replica, res.Applied, res.Waited, res.StreamLast)
	if err != nil {
		return errorReply(h, err)
	}
	return h, res.Record.Value
}

// DecodeGetReply decodes a replica's reply to a point read for key.
func DecodeGetReply(key string, m *nats.Msg) (GetResult, error) {
	tok, rev, err := replyTokenRev(m)
	res := GetResult{Record: Record{Key: key, Revision: rev}, Token: tok}
	if err != nil {
		return res, err
	}
	res.Replica, res.Applied, res.Waited, res.StreamLast = servedBy(m.Header)
	if err := replyError(m); err != nil {
		res.Record.Deleted = res.Record.Revision != 0
		return res, err
	}
	res.Record.Value = m.Data
	if res.Record.Value == nil {
		res.Record.Value = []byte{}
	}
	return res, nil
}

// Msg builds the NATS request for s on subject.
func (s ScanRequest) Msg(subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	setReadHeaders(m.Header, s.Token, s.Wait, s.Consistency)
	m.Data, _ = json.Marshal(ScanRequestJSON{Prefix: s.Prefix, After: s.After, Limit: s.Limit})
	return m
}

// DecodeScanRequest decodes a prefix scan from NATS headers and data.
func DecodeScanRequest(h nats.Header, data []byte) (ScanRequest, error) {
	tok, wait, c, err := readHeaders(h)
	if err != nil {
		return ScanRequest{}, err
	}
	var body ScanRequestJSON
	if len(data) > 0 {
		if err := json.Unmarshal(data, &body); err != nil {
			return ScanRequest{}, Errorf(ErrInvalidRequest, "invalid scan request: %v", err)
		}
	}
	s := ScanRequest{Prefix: body.Prefix, After: body.After, Limit: body.Limit, Token: tok, Wait: wait, Consistency: c}
	return s, s.Validate()
}

// Validate checks a scan request's prefix, cursor and limit, and sets the
// default limit.
func (s *ScanRequest) Validate() error {
	if len(s.Prefix) > MaxKeyLen || !validUTF8(s.Prefix) {
		return Errorf(ErrInvalidKey, "invalid prefix: want up to %d bytes of UTF-8", MaxKeyLen)
	}
	if s.After != "" {
		if err := ValidateKey(s.After); err != nil {
			return Errorf(ErrInvalidRequest, "invalid after: %v", err)
		}
	}
	switch {
	case s.Limit == 0:
		s.Limit = DefaultScanLimit
	case s.Limit < 0 || s.Limit > MaxScanLimit:
		return Errorf(ErrInvalidRequest, "invalid limit %d: want 1 to %d", s.Limit, MaxScanLimit)
	}
	return nil
}

// EncodeScanReply encodes the reply to a scan.
func EncodeScanReply(res ScanResult, err error) (nats.Header, []byte) {
	h := nats.Header{}
	setTokenRev(h, res.Token, 0)
	SetServedBy(h, res.Replica, res.Applied, res.Waited, res.StreamLast)
	if err != nil {
		return errorReply(h, err)
	}
	body, _ := json.Marshal(res.ToScanJSON())
	return h, body
}

// DecodeScanReply decodes a replica's reply to a scan.
func DecodeScanReply(m *nats.Msg) (ScanResult, error) {
	tok, _, err := replyTokenRev(m)
	res := ScanResult{Token: tok}
	if err != nil {
		return res, err
	}
	res.Replica, res.Applied, res.Waited, res.StreamLast = servedBy(m.Header)
	if err := replyError(m); err != nil {
		return res, err
	}
	var body ScanJSON
	if err := json.Unmarshal(m.Data, &body); err != nil {
		return res, Errorf(ErrInternal, "bad scan reply: %v", err)
	}
	res.Next = body.Next
	res.Items = make([]Record, len(body.Items))
	for i, it := range body.Items {
		res.Items[i] = Record{Key: it.Key, Value: it.Value, Revision: it.Revision}
	}
	return res, nil
}

func setReadHeaders(h nats.Header, tok Token, wait time.Duration, c Consistency) {
	if !tok.IsZero() {
		h.Set(HeaderToken, tok.String())
	}
	if wait > 0 {
		h.Set(HeaderWait, wait.String())
	}
	if c != "" && c != Session {
		h.Set(HeaderConsistency, string(c))
	}
}

func readHeaders(h nats.Header) (Token, time.Duration, Consistency, error) {
	tok, err := ParseToken(header(h, HeaderToken))
	if err != nil {
		return Token{}, 0, "", err
	}
	wait, err := ParseWait(header(h, HeaderWait))
	if err != nil {
		return Token{}, 0, "", err
	}
	c, err := ParseConsistency(header(h, HeaderConsistency))
	if err != nil {
		return Token{}, 0, "", err
	}
	return tok, wait, c, nil
}

func setTokenRev(h nats.Header, tok Token, rev uint64) {
	if !tok.IsZero() {
		h.Set(HeaderToken, tok.String())
	}
	if rev != 0 {
		h.Set(HeaderRevision, strconv.FormatUint(rev, 10))
	}
}

// SetServedBy writes the headers that say which replica served a read, how
// far it had applied, how long the read waited and the stream's last
// sequence as the replica knew it. HTTP and NATS replies share it.
func SetServedBy(h map[string][]string, replica string, applied uint64, waited time.Duration, streamLast uint64) {
	if replica == "" {
		return
	}
	hh := nats.Header(h)
	hh.Set(HeaderReplica, replica)
	hh.Set(HeaderApplied, strconv.FormatUint(applied, 10))
	hh.Set(HeaderWaited, waited.String())
	if streamLast != 0 {
		hh.Set(HeaderStreamLast, strconv.FormatUint(streamLast, 10))
	}
}

func servedBy(h nats.Header) (string, uint64, time.Duration, uint64) {
	applied, _ := strconv.ParseUint(header(h, HeaderApplied), 10, 64)
	waited, _ := time.ParseDuration(header(h, HeaderWaited))
	last, _ := strconv.ParseUint(header(h, HeaderStreamLast), 10, 64)
	return header(h, HeaderReplica), applied, waited, last
}

func replyTokenRev(m *nats.Msg) (Token, uint64, error) {
	tok, err := ParseToken(header(m.Header, HeaderToken))
	if err != nil {
		return Token{}, 0, Errorf(ErrInternal, "bad token in reply: %v", err)
	}
	var rev uint64
	if s := header(m.Header, HeaderRevision); s != "" {
		if rev, err = strconv.ParseUint(s, 10, 64); err != nil {
			return tok, 0, Errorf(ErrInternal, "bad revision in reply %q", s)
		}
	}
	return tok, rev, nil
}

func errorReply(h nats.Header, err error) (nats.Header, []byte) {
	body := ErrorBodyOf(err)
	h.Set(HeaderErrorCode, body.Error.Code)
	h.Set(HeaderError, body.Error.Message)
	b, _ := json.Marshal(body)
	return h, b
}

func replyError(m *nats.Msg) error {
	if code := header(m.Header, HeaderErrorCode); code != "" {
		return FromCode(code, header(m.Header, HeaderError))
	}
	if m.Header != nil && m.Header.Get("Status") == "503" {
		return Errorf(ErrUnavailable, "no service is listening")
	}
	return nil
}

// Status is where a replica advertises its progress.
func (s Subjects) Status(id string) string { return s.base() + ".status." + id }

// StatusAll matches every replica's status subject.
func (s Subjects) StatusAll() string { return s.base() + ".status.*" }

// ReplicaStatus is what a replica advertises on its status subject, often
// and cheaply, so that readers can be routed to a replica that has already
// reached their token.
type ReplicaStatus struct {
	// Replica is the replica's id; Stream its stream's identity.
	Replica string `json:"replica"`
	Stream  string `json:"stream"`
	// Applied is the last applied stream sequence.
	Applied uint64 `json:"applied"`
	// Rate is the recent apply rate, in messages per second.
	Rate float64 `json:"rate"`
	// Ready reports whether the replica has caught up and serves shared reads.
	Ready bool `json:"ready"`
	// State and Reason, when set, say what the replica is doing (one of the
	// ReplicaState values) and why it does not serve; older replicas omit them.
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// DecodeStatus decodes a replica status advertisement.
func DecodeStatus(data []byte) (ReplicaStatus, error) {
	var st ReplicaStatus
	if err := json.Unmarshal(data, &st); err != nil {
		return ReplicaStatus{}, Errorf(ErrInvalidRequest, "invalid replica status: %v", err)
	}
	if !ValidReplicaID(st.Replica) || !ValidStreamID(st.Stream) || st.Rate < 0 || st.Rate != st.Rate {
		return ReplicaStatus{}, Errorf(ErrInvalidRequest, "invalid replica status: bad replica, stream or rate")
	}
	if err := checkReplicaState(st.State, st.Reason); err != nil {
		return ReplicaStatus{}, err
	}
	return st, nil
}
