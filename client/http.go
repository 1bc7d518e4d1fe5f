package client

import (
	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/wire"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of HTTP.
const (
	// DefaultHTTPReadMargin is added to a read's wait, for the reply to
	// travel, when the context has no deadline. It is longer than the
	// gateway's own margin, so that the gateway's token_wait_timeout
	// arrives before the client gives up.
	DefaultHTTPReadMargin = 3 * time.Second
	// DefaultMaxResponseBytes bounds the body of a reply.
	DefaultMaxResponseBytes = 64 << 20
	// maxSigned bounds the signed tokens an HTTP transport remembers.
	maxSigned = 4096
)

// HTTP is the HTTP transport: it calls a gateway's API v1 (PUT, GET and
// DELETE /v1/kv/{key}, GET /v1/kv?prefix=...). Errors of the gateway come
// back as the stream sentinels, rebuilt from the JSON error body; a gateway
// that cannot be reached, or does not answer in time, fails with
// api.ErrUnavailable. It is safe for concurrent use.
//
// A gateway that signs its tokens (gateway.token_keys) accepts only the
// signed form back; HTTP remembers the signed form of the tokens it
// receives and sends that. A token it did not receive itself (one resumed
// from another process) is sent unsigned, and such a gateway refuses it.
type HTTP struct {
	// Client sends the requests. It should have no cookie jar: a Session
	// carries the token.
	Client *http.Client
	// WriteTimeout bounds a write whose context has no deadline; 0 leaves
	// it unbounded.
	WriteTimeout time.Duration
	// ReadWait is the wait assumed for a read that does not set one, and
	// ReadMargin is added to a read's wait; together they bound a read whose
	// context has no deadline.
	ReadWait, ReadMargin time.Duration
	// MaxResponseBytes bounds the body of a reply.
	MaxResponseBytes int64

	base string // without a trailing slash
	err  error  // a bad base URL, reported by every call

	sigMu  sync.Mutex
	signed map[api.Token]string // signed forms, as a signing gateway handed them out
}

// NewHTTP returns a transport for the gateway at baseURL, such as
// "http://localhost:8080". A malformed URL fails every call with
// api.ErrInvalidRequest.
func NewHTTP(baseURL string) *HTTP {
	h := &HTTP{
		Client:           &http.Client{},
		WriteTimeout:     DefaultWriteTimeout,
		ReadWait:         api.DefaultWait,
		ReadMargin:       DefaultHTTPReadMargin,
		MaxResponseBytes: DefaultMaxResponseBytes,
		base:             strings.TrimRight(baseURL, "/"),
	}
	u, err := url.Parse(h.base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		h.err = api.Errorf(api.ErrInvalidRequest, "gateway URL %q: want http://host:port or https://host:port, with an optional path", baseURL)
	}
	return h
}

// Write sends a put (PUT /v1/kv/{key}) or a delete (DELETE /v1/kv/{key}).
func (h *HTTP) Write(ctx context.Context, req api.WriteRequest) (api.WriteResult, error) {
	failed := api.WriteResult{Key: req.Key, Token: req.Token}
	if h.err != nil {
		return failed, h.err
	}
	var method string
	var body io.Reader
	switch req.Op {
	case api.OpPut:
		method, body = http.MethodPut, bytes.NewReader(req.Value)
	case api.OpDelete:
		method = http.MethodDelete
	default:
		return failed, api.Errorf(api.ErrInvalidRequest, "unknown op %q: want %s or %s", req.Op, api.OpPut, api.OpDelete)
	}
	ctx, cancel := withDefaultTimeout(ctx, h.WriteTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, method, h.keyURL(req.Key), body)
	if err != nil {
		return failed, api.Errorf(api.ErrInvalidRequest, "write %q: %w", req.Key, err)
	}
	setToken(hr.Header, h.formatToken(req.Token))
	if req.WriteID != "" {
		hr.Header.Set(api.HeaderWriteID, req.WriteID)
	}
	if req.IfRevision != 0 {
		hr.Header.Set(api.HeaderIfMatch, `"`+strconv.FormatUint(req.IfRevision, 10)+`"`)
	}
	if req.IfAbsent {
		hr.Header.Set(api.HeaderIfNoneMatch, "*")
	}
	if req.Session != "" {
		hr.Header.Set(api.HeaderSession, req.Session)
		hr.Header.Set(api.HeaderSessionSeq, strconv.FormatUint(req.SessionSeq, 10))
	}
	if req.TTL != 0 {
		hr.Header.Set(api.HeaderTTL, req.TTL.String())
	}
	resp, data, err := h.do(hr)
	if err != nil {
		return failed, err
	}
	res, err := decodeHTTPWrite(resp.StatusCode, resp.Header, data, h.parseToken)
	if res.Key == "" {
		res.Key = req.Key
	}
	if res.Token.IsZero() && !errors.Is(err, api.ErrTokenStreamMismatch) && !errors.Is(err, api.ErrTokenFromFuture) {
		res.Token = req.Token
	}
	return res, err
}

// Get sends a point read (GET /v1/kv/{key}); the gateway picks the replica,
// or req.Replica when set. On api.ErrNotFound the result still carries
// the token and, for a deleted key, the delete's revision.
func (h *HTTP) Get(ctx context.Context, req api.GetRequest) (api.GetResult, error) {
	resp, data, err := h.read(ctx, req.ReadSpec, h.keyURL(req.Key), func() string { return fmt.Sprintf("get %q", req.Key) })
	if err != nil {
		return api.GetResult{Record: api.Record{Key: req.Key}, Token: req.Token}, err
	}
	return decodeHTTPGet(req.Key, resp.StatusCode, resp.Header, data, h.parseToken)
}

// Scan sends a prefix scan (GET /v1/kv?prefix=P&limit=N&after=K).
func (h *HTTP) Scan(ctx context.Context, req api.ScanRequest) (api.ScanResult, error) {
	q := url.Values{"prefix": {req.Prefix}}
	if req.After != "" {
		q.Set("after", req.After)
	}
	if req.Limit != 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	resp, data, err := h.read(ctx, req.ReadSpec, h.base+"/v1/kv?"+q.Encode(), func() string { return "scan" })
	if err != nil {
		return api.ScanResult{Token: req.Token}, err
	}
	return decodeHTTPScan(resp.StatusCode, resp.Header, data, h.parseToken)
}

// read sends a read of spec to u and returns the reply and its body; what
// names the read in the error of a request that cannot be built.
func (h *HTTP) read(ctx context.Context, spec api.ReadSpec, u string, what func() string) (*http.Response, []byte, error) {
	if h.err != nil {
		return nil, nil, h.err
	}
	ctx, cancel := withDefaultTimeout(ctx, h.readTimeout(spec.Wait))
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, api.Errorf(api.ErrInvalidRequest, "%s: %w", what(), err)
	}
	h.setReadSpec(hr.Header, spec)
	return h.do(hr)
}

// keyURL is the URL of key: path-escaped, so that "/" and "%" in a key
// survive, with the dot segments "." and ".." escaped too, so that nothing
// between client and gateway resolves them.
func (h *HTTP) keyURL(key string) string {
	esc := url.PathEscape(key)
	if key == "." || key == ".." {
		esc = strings.ReplaceAll(key, ".", "%2E")
	}
	return h.base + "/v1/kv/" + esc
}

// readTimeout bounds a read of wait whose context has no deadline.
func (h *HTTP) readTimeout(wait time.Duration) time.Duration {
	if wait <= 0 {
		wait = h.ReadWait
	}
	return wait + h.ReadMargin
}

// do sends hr and reads the reply's body, mapping transport failures to
// stream errors.
func (h *HTTP) do(hr *http.Request) (*http.Response, []byte, error) {
	start := time.Now()
	resp, err := h.Client.Do(hr)
	if err != nil {
		return nil, nil, h.transportError(hr, start, err)
	}
	defer resp.Body.Close()
	limit := h.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, h.transportError(hr, start, err)
	}
	if int64(len(data)) > limit {
		return nil, nil, api.Errorf(api.ErrInternal, "%s %s: reply over %d bytes", hr.Method, hr.URL.Redacted(), limit)
	}
	return resp, data, nil
}

func (h *HTTP) transportError(hr *http.Request, start time.Time, err error) error {
	ctx := hr.Context()
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return ctx.Err()
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return api.Errorf(api.ErrUnavailable, "no reply from the gateway to %s %s in time (waited %v)",
			hr.Method, hr.URL.Redacted(), time.Since(start).Round(time.Millisecond))
	default:
		return api.Errorf(api.ErrUnavailable, "%s %s: %w", hr.Method, hr.URL.Redacted(), unwrapURLError(err))
	}
}

// unwrapURLError drops the method and URL that *url.Error repeats.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseToken parses a token of a reply; a signed one ("<token>.<sig>") is
// remembered, so that formatToken sends it back signed.
func (h *HTTP) parseToken(s string) (api.Token, error) {
	tok, err := api.ParseToken(s) // takes a signed token too, without its signature
	if err != nil || tok.IsZero() || strings.Count(s, ".") != 3 {
		return tok, err
	}
	h.sigMu.Lock()
	defer h.sigMu.Unlock()
	if h.signed == nil || len(h.signed) >= maxSigned {
		h.signed = make(map[api.Token]string)
	}
	h.signed[tok] = s
	return tok, nil
}

// formatToken is tok as the gateway wants it back: signed, if it was.
func (h *HTTP) formatToken(tok api.Token) string {
	h.sigMu.Lock()
	defer h.sigMu.Unlock()
	if s, ok := h.signed[tok]; ok {
		return s
	}
	return tok.String()
}

func setToken(h http.Header, tok string) {
	if tok != "" {
		h.Set(api.HeaderToken, tok)
	}
}

// setReadSpec writes the headers of a read's spec: its token (signed, if
// it was), wait, consistency and replica.
func (h *HTTP) setReadSpec(hdr http.Header, spec api.ReadSpec) {
	setToken(hdr, h.formatToken(spec.Token))
	if spec.Wait > 0 {
		hdr.Set(api.HeaderWait, spec.Wait.String())
	}
	if c := spec.Consistency; c != "" && c != api.Session {
		hdr.Set(api.HeaderConsistency, string(c))
	}
	if spec.Replica != "" {
		hdr.Set(api.HeaderReplica, spec.Replica)
	}
}

// --- decoding the gateway's replies --------------------------------------

// tokenParser parses the tokens of replies.
type tokenParser func(string) (api.Token, error)

// decodeHTTPWrite decodes the reply to a write.
func decodeHTTPWrite(status int, h http.Header, body []byte, parse tokenParser) (api.WriteResult, error) {
	tok, rev, err := replyTokenRevision(h, parse)
	res := api.WriteResult{Token: tok, Revision: rev}
	if err != nil {
		return res, err
	}
	if status != http.StatusOK {
		return res, decodeHTTPError(status, body)
	}
	var w api.WriteJSON
	if err := json.Unmarshal(body, &w); err != nil {
		return res, api.Errorf(api.ErrInternal, "bad write reply: %w", err)
	}
	if w.Revision == 0 {
		return res, api.Errorf(api.ErrInternal, "bad write reply: no revision")
	}
	res.Key, res.Revision = w.Key, w.Revision
	if res.Token.IsZero() {
		if res.Token, err = parse(w.Token); err != nil {
			return res, api.Errorf(api.ErrInternal, "bad token in write reply: %w", err)
		}
	}
	return res, nil
}

// decodeHTTPGet decodes the reply to a point read of key.
func decodeHTTPGet(key string, status int, h http.Header, body []byte, parse tokenParser) (api.GetResult, error) {
	tok, rev, served, err := readReplyHeader(h, parse)
	res := api.GetResult{Record: api.Record{Key: key, Revision: rev}, Token: tok, ServedBy: served}
	if err != nil {
		return res, err
	}
	if status != http.StatusOK {
		err := decodeHTTPError(status, body)
		if errors.Is(err, api.ErrNotFound) {
			res.Record.Deleted = rev != 0
		} else {
			res.Record.Revision = 0
		}
		return res, err
	}
	if rev == 0 {
		return res, api.Errorf(api.ErrInternal, "bad get reply: no %s", api.HeaderRevision)
	}
	res.Record.Value = body
	if res.Record.Value == nil {
		res.Record.Value = []byte{}
	}
	return res, nil
}

// decodeHTTPScan decodes the reply to a scan.
func decodeHTTPScan(status int, h http.Header, body []byte, parse tokenParser) (api.ScanResult, error) {
	tok, _, served, err := readReplyHeader(h, parse)
	res := api.ScanResult{Token: tok, ServedBy: served}
	if err != nil {
		return res, err
	}
	if status != http.StatusOK {
		return res, decodeHTTPError(status, body)
	}
	var page api.ScanJSON
	if err := json.Unmarshal(body, &page); err != nil {
		return res, api.Errorf(api.ErrInternal, "bad scan reply: %w", err)
	}
	if res.Token.IsZero() {
		if res.Token, err = parse(page.Token); err != nil {
			return res, api.Errorf(api.ErrInternal, "bad token in scan reply: %w", err)
		}
	}
	res.Next = page.Next
	res.Items = make([]api.Record, len(page.Items))
	for i, it := range page.Items {
		if it.Value == nil {
			it.Value = []byte{}
		}
		res.Items[i] = api.Record{Key: it.Key, Value: it.Value, Revision: it.Revision}
	}
	return res, nil
}

// decodeHTTPError rebuilds the error of a reply that is not 200 from its
// JSON body; a reply without one (a proxy's) is mapped by its status.
func decodeHTTPError(status int, body []byte) error {
	var e api.ErrorJSON
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		err := api.FromCode(e.Error.Code, e.Error.Message)
		if e.Error.Op != nil && *e.Error.Op >= 0 {
			err = &api.OpError{Op: *e.Error.Op, Err: err}
		}
		return err
	}
	text := fmt.Sprintf("gateway answered %d %s without an error body", status, http.StatusText(status))
	switch {
	case status == http.StatusRequestEntityTooLarge:
		return api.Errorf(api.ErrValueTooLarge, "%s", text)
	case status == http.StatusTooManyRequests, status == http.StatusBadGateway,
		status == http.StatusServiceUnavailable, status == http.StatusGatewayTimeout:
		return api.Errorf(api.ErrUnavailable, "%s", text)
	case status >= 400 && status < 500:
		return api.Errorf(api.ErrInvalidRequest, "%s (is the URL a Tidemark gateway?)", text)
	default:
		return api.Errorf(api.ErrInternal, "%s", text)
	}
}

// replyTokenRevision reads the token and revision headers of a reply.
func replyTokenRevision(h http.Header, parse tokenParser) (api.Token, uint64, error) {
	tok, err := parse(h.Get(api.HeaderToken))
	if err != nil {
		return api.Token{}, 0, api.Errorf(api.ErrInternal, "bad token in reply: %w", err)
	}
	var rev uint64
	if s := h.Get(api.HeaderRevision); s != "" {
		if rev, err = strconv.ParseUint(s, 10, 64); err != nil {
			return tok, 0, api.Errorf(api.ErrInternal, "bad revision in reply %q", s)
		}
	}
	return tok, rev, nil
}

// readReplyHeader reads the headers of a read's reply: its token, its
// revision and who served the read (wire.ServedByOf). A malformed token or
// revision fails with api.ErrInternal and reports no served-by.
func readReplyHeader(h http.Header, parse tokenParser) (api.Token, uint64, api.ServedBy, error) {
	tok, rev, err := replyTokenRevision(h, parse)
	if err != nil {
		return tok, rev, api.ServedBy{}, err
	}
	return tok, rev, wire.ServedByOf(h), nil
}
