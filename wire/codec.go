package wire

import (
	"github.com/tidemark/tidemark/api"

	"encoding/json"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// HeaderErrorCode and HeaderError are the micro service error headers.
const (
	HeaderErrorCode = "Nats-Service-Error-Code"
	HeaderError     = "Nats-Service-Error"
)

// WriteMsg builds the NATS request for w on subject.
func WriteMsg(subject string, w api.WriteRequest) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(api.HeaderKey, api.EncodeKey(w.Key))
	if !w.Token.IsZero() {
		m.Header.Set(api.HeaderToken, w.Token.String())
	}
	if w.WriteID != "" {
		m.Header.Set(api.HeaderWriteID, w.WriteID)
	}
	if w.IfRevision != 0 {
		m.Header.Set(api.HeaderIfMatch, strconv.FormatUint(w.IfRevision, 10))
	}
	if w.IfAbsent {
		m.Header.Set(api.HeaderIfNoneMatch, "*")
	}
	api.SetSession(m.Header, w.Session, w.SessionSeq)
	if w.TTL != 0 {
		m.Header.Set(api.HeaderTTL, w.TTL.String())
	}
	if w.Op == api.OpPut {
		m.Data = w.Value
	}
	return m
}

// DecodeWriteRequest decodes a write request of op from NATS headers and data.
func DecodeWriteRequest(op api.Op, h nats.Header, data []byte) (api.WriteRequest, error) {
	key, err := api.DecodeKey(h.Get(api.HeaderKey))
	if err != nil {
		return api.WriteRequest{}, err
	}
	tok, err := api.ParseToken(h.Get(api.HeaderToken))
	if err != nil {
		return api.WriteRequest{}, err
	}
	w := api.WriteRequest{Op: op, Key: key, Token: tok}
	if err := api.ParseWriteHeaders(h, &w); err != nil {
		return api.WriteRequest{}, err
	}
	switch op {
	case api.OpPut:
		if data == nil {
			data = []byte{}
		}
		w.Value = data
	case api.OpDelete:
		if len(data) != 0 {
			return api.WriteRequest{}, api.Errorf(api.ErrInvalidRequest, "delete with a body")
		}
	default:
		return api.WriteRequest{}, api.Errorf(api.ErrInvalidRequest, "unknown op %q", op)
	}
	return w, nil
}

// EncodeWriteReply encodes the reply to a write: headers and body.
func EncodeWriteReply(res api.WriteResult, err error) (nats.Header, []byte) {
	h := nats.Header{}
	setTokenRev(h, res.Token, res.Revision)
	if err != nil {
		return errorReply(h, err)
	}
	body, _ := json.Marshal(api.WriteJSON{Key: res.Key, Revision: res.Revision, Token: res.Token.String()})
	return h, body
}

// DecodeWriteReply decodes a writer's reply.
func DecodeWriteReply(m *nats.Msg) (api.WriteResult, error) {
	tok, rev, err := replyTokenRev(m)
	res := api.WriteResult{Token: tok, Revision: rev}
	if err != nil {
		return res, err
	}
	if err := replyError(m); err != nil {
		return res, err
	}
	var body api.WriteJSON
	if err := json.Unmarshal(m.Data, &body); err != nil {
		return res, api.Errorf(api.ErrInternal, "bad write reply: %w", err)
	}
	res.Key = body.Key
	return res, nil
}

// GetMsg builds the NATS request for g on subject.
func GetMsg(subject string, g api.GetRequest) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(api.HeaderKey, api.EncodeKey(g.Key))
	setReadSpec(m.Header, g.ReadSpec)
	return m
}

// DecodeGetRequest decodes a point read from NATS headers.
func DecodeGetRequest(h nats.Header) (api.GetRequest, error) {
	key, err := api.DecodeKey(h.Get(api.HeaderKey))
	if err != nil {
		return api.GetRequest{}, err
	}
	spec, err := readSpec(h)
	if err != nil {
		return api.GetRequest{}, err
	}
	return api.GetRequest{Key: key, ReadSpec: spec}, nil
}

// EncodeGetReply encodes the reply to a point read: headers and body (the value).
func EncodeGetReply(res api.GetResult, err error) (nats.Header, []byte) {
	h := readReplyHeader(res.Token, res.Record.Revision, res.ServedBy)
	if err != nil {
		return errorReply(h, err)
	}
	return h, res.Record.Value
}

// DecodeGetReply decodes a replica's reply to a point read for key.
func DecodeGetReply(key string, m *nats.Msg) (api.GetResult, error) {
	res := api.GetResult{Record: api.Record{Key: key}}
	var err error
	res.Token, res.Record.Revision, res.ServedBy, err = decodeReadReply(m)
	if err != nil {
		res.Record.Deleted = res.Record.Revision != 0
		return res, err
	}
	res.Record.Value = m.Data
	if res.Record.Value == nil {
		res.Record.Value = []byte{}
	}
	return res, nil
}

// ScanMsg builds the NATS request for s on subject.
func ScanMsg(subject string, s api.ScanRequest) *nats.Msg {
	m := nats.NewMsg(subject)
	setReadSpec(m.Header, s.ReadSpec)
	m.Data, _ = json.Marshal(api.ScanRequestJSON{Prefix: s.Prefix, After: s.After, Limit: s.Limit})
	return m
}

// DecodeScanRequest decodes a prefix scan from NATS headers and data.
func DecodeScanRequest(h nats.Header, data []byte) (api.ScanRequest, error) {
	spec, err := readSpec(h)
	if err != nil {
		return api.ScanRequest{}, err
	}
	var body api.ScanRequestJSON
	if len(data) > 0 {
		if err := json.Unmarshal(data, &body); err != nil {
			return api.ScanRequest{}, api.Errorf(api.ErrInvalidRequest, "invalid scan request: %w", err)
		}
	}
	s := api.ScanRequest{Prefix: body.Prefix, After: body.After, Limit: body.Limit, ReadSpec: spec}
	return s, s.Validate()
}

// EncodeScanReply encodes the reply to a scan.
func EncodeScanReply(res api.ScanResult, err error) (nats.Header, []byte) {
	h := readReplyHeader(res.Token, 0, res.ServedBy)
	if err != nil {
		return errorReply(h, err)
	}
	body, _ := json.Marshal(res.ToScanJSON())
	return h, body
}

// DecodeScanReply decodes a replica's reply to a scan.
func DecodeScanReply(m *nats.Msg) (api.ScanResult, error) {
	var res api.ScanResult
	var err error
	if res.Token, _, res.ServedBy, err = decodeReadReply(m); err != nil {
		return res, err
	}
	var body api.ScanJSON
	if err := json.Unmarshal(m.Data, &body); err != nil {
		return res, api.Errorf(api.ErrInternal, "bad scan reply: %w", err)
	}
	res.Next = body.Next
	res.Items = make([]api.Record, len(body.Items))
	for i, it := range body.Items {
		res.Items[i] = api.Record{Key: it.Key, Value: it.Value, Revision: it.Revision}
	}
	return res, nil
}

// setReadSpec writes the headers of a read's spec; the replica and the
// forwarding are routing, carried by the subject, not by headers.
func setReadSpec(h nats.Header, spec api.ReadSpec) {
	if !spec.Token.IsZero() {
		h.Set(api.HeaderToken, spec.Token.String())
	}
	if spec.Wait > 0 {
		h.Set(api.HeaderWait, spec.Wait.String())
	}
	if c := spec.Consistency; c != "" && c != api.Session {
		h.Set(api.HeaderConsistency, string(c))
	}
}

// readSpec reads the headers setReadSpec writes.
func readSpec(h nats.Header) (api.ReadSpec, error) {
	tok, err := api.ParseToken(h.Get(api.HeaderToken))
	if err != nil {
		return api.ReadSpec{}, err
	}
	wait, err := api.ParseWait(h.Get(api.HeaderWait))
	if err != nil {
		return api.ReadSpec{}, err
	}
	c, err := api.ParseConsistency(h.Get(api.HeaderConsistency))
	if err != nil {
		return api.ReadSpec{}, err
	}
	return api.ReadSpec{Token: tok, Wait: wait, Consistency: c}, nil
}

// readReplyHeader is the header every read reply carries: the token, the
// revision (0: none) and who served the read.
func readReplyHeader(tok api.Token, rev uint64, served api.ServedBy) nats.Header {
	h := nats.Header{}
	setTokenRev(h, tok, rev)
	SetServedBy(h, served)
	return h
}

// decodeReadReply reads what readReplyHeader wrote, and the reply's error.
// A reply whose token or revision is malformed fails with api.ErrInternal
// and reports no served-by.
func decodeReadReply(m *nats.Msg) (api.Token, uint64, api.ServedBy, error) {
	tok, rev, err := replyTokenRev(m)
	if err != nil {
		return tok, rev, api.ServedBy{}, err
	}
	served := ServedByOf(m.Header)
	return tok, rev, served, replyError(m)
}

func setTokenRev(h nats.Header, tok api.Token, rev uint64) {
	if !tok.IsZero() {
		h.Set(api.HeaderToken, tok.String())
	}
	if rev != 0 {
		h.Set(api.HeaderRevision, strconv.FormatUint(rev, 10))
	}
}

// SetServedBy writes the headers that say which replica served a read, how
// far it had applied, how long the read waited and the stream's last
// sequence as the replica knew it; nothing when no replica is named. HTTP
// and NATS replies share it.
func SetServedBy(h map[string][]string, s api.ServedBy) {
	if s.Replica == "" {
		return
	}
	hh := nats.Header(h)
	hh.Set(api.HeaderReplica, s.Replica)
	hh.Set(api.HeaderApplied, strconv.FormatUint(s.Applied, 10))
	hh.Set(api.HeaderWaited, s.Waited.String())
	if s.StreamLast != 0 {
		hh.Set(api.HeaderStreamLast, strconv.FormatUint(s.StreamLast, 10))
	}
}

// ServedByOf reads the headers SetServedBy writes, of an HTTP or a NATS
// reply. They are informative, so malformed values read as zero.
func ServedByOf(h map[string][]string) api.ServedBy {
	hh := nats.Header(h)
	applied, _ := strconv.ParseUint(hh.Get(api.HeaderApplied), 10, 64)
	waited, _ := time.ParseDuration(hh.Get(api.HeaderWaited))
	last, _ := strconv.ParseUint(hh.Get(api.HeaderStreamLast), 10, 64)
	return api.ServedBy{Replica: hh.Get(api.HeaderReplica), Applied: applied, Waited: waited, StreamLast: last}
}

func replyTokenRev(m *nats.Msg) (api.Token, uint64, error) {
	tok, err := api.ParseToken(m.Header.Get(api.HeaderToken))
	if err != nil {
		return api.Token{}, 0, api.Errorf(api.ErrInternal, "bad token in reply: %w", err)
	}
	var rev uint64
	if s := m.Header.Get(api.HeaderRevision); s != "" {
		if rev, err = strconv.ParseUint(s, 10, 64); err != nil {
			return tok, 0, api.Errorf(api.ErrInternal, "bad revision in reply %q", s)
		}
	}
	return tok, rev, nil
}

func errorReply(h nats.Header, err error) (nats.Header, []byte) {
	body := api.ErrorBodyOf(err)
	h.Set(HeaderErrorCode, body.Error.Code)
	h.Set(HeaderError, body.Error.Message)
	b, _ := json.Marshal(body)
	return h, b
}

func replyError(m *nats.Msg) error {
	if code := m.Header.Get(HeaderErrorCode); code != "" {
		return api.FromCode(code, m.Header.Get(HeaderError))
	}
	if m.Header != nil && m.Header.Get("Status") == "503" {
		return api.Errorf(api.ErrUnavailable, "no service is listening")
	}
	return nil
}
