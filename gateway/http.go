package gateway

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HTTP names of the API, besides the stream's shared header names.
const (
	// CookieToken is the cookie that carries the session token for browsers.
	CookieToken = "tidemark_token"
	// CookieReplica pins a session's reads to one replica under Affinity.
	CookieReplica = "tidemark_replica"
	// HeaderIdempotencyKey is accepted as a write id, as many HTTP APIs do.
	HeaderIdempotencyKey = "Idempotency-Key"
	kvPath               = "/v1/kv"
)

func (g *Gateway) routes() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Routed by hand, on the escaped path: http.ServeMux cleans paths
		// and would redirect keys such as "a/../b" to another key.
		path := r.URL.EscapedPath()
		switch {
		case path == "/healthz":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "ok\n")
		case path == "/readyz":
			g.readyz(w)
		case path == "/metrics":
			g.metrics.handler.ServeHTTP(w, r)
		case path == statusJSONPath || path == statusPagePath:
			g.serveStatus(w, r) // status.go
		case path == kvPath:
			g.instrument("scan", w, r, g.scan, http.MethodGet)
		case strings.HasPrefix(path, kvPath+"/"):
			switch r.Method {
			case http.MethodGet, http.MethodHead:
				g.instrument("get", w, r, g.get, r.Method)
			case http.MethodPut:
				g.instrument("put", w, r, g.put, r.Method)
			case http.MethodDelete:
				g.instrument("delete", w, r, g.del, r.Method)
			default:
				w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
				writeJSON(w, http.StatusMethodNotAllowed, api.ErrorBodyOf(
					api.Errorf(api.ErrInvalidRequest, "method %s not allowed", r.Method)))
			}
		default:
			writeJSON(w, http.StatusNotFound, api.ErrorJSON{Error: api.ErrorBody{
				Code: api.CodeInvalidRequest, Message: "no such endpoint: " + path}})
		}
	})
}

func (g *Gateway) readyz(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain")
	if err := g.cfg.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "not ready: "+err.Error()+"\n")
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

// handlerFunc handles one API request with the session's token and returns
// the session's new token and the error to report, if any.
type handlerFunc func(w http.ResponseWriter, r *http.Request, tok api.Token) (api.Token, error)

// instrument parses the session token, runs h, and writes the token and any
// error into the response: every response carries the session's token.
func (g *Gateway) instrument(op string, w http.ResponseWriter, r *http.Request, h handlerFunc, methods ...string) {
	start := time.Now()
	status := http.StatusOK
	defer func() { g.metrics.observe(op, status, time.Since(start)) }()
	if !slices.Contains(methods, r.Method) {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		status = http.StatusMethodNotAllowed
		writeJSON(w, status, api.ErrorBodyOf(api.Errorf(api.ErrInvalidRequest, "method %s not allowed", r.Method)))
		return
	}
	tok, fromCookie, err := g.requestToken(r)
	if err != nil {
		if fromCookie {
			clearTokenCookie(w) // a garbage cookie: drop it, so the next request works
		}
		status = g.writeError(w, err)
		return
	}
	out, err := h(w, r, tok)
	if err != nil {
		switch {
		case !rejectsToken(err):
			g.setToken(w, out, tok)
		case fromCookie:
			// The cookie's token is the one refused (a stale token of a
			// recreated stream, or one from the future): drop it, so the
			// next request works. A refused header token sets no cookie.
			clearTokenCookie(w)
		}
		status = g.writeError(w, err)
		if status >= 500 {
			g.log.Warn().Err(err).Str("op", op).Int("status", status).Msg("request failed")
		}
	}
}

// requestToken reads the session token from the Tidemark-Token header and
// the tidemark_token cookie; with both, the later one. Tokens of two
// different streams: the header wins (the cookie may be stale). fromCookie
// reports that the cookie is to blame if the token is refused: the token
// is the cookie's, or the cookie holds no valid token.
func (g *Gateway) requestToken(r *http.Request) (tok api.Token, fromCookie bool, err error) {
	hdr, err := g.cfg.Signer.Parse(r.Header.Get(api.HeaderToken))
	if err != nil {
		return api.Token{}, false, err
	}
	c, err := r.Cookie(CookieToken)
	if err != nil || c.Value == "" {
		return hdr, false, nil
	}
	ck, err := g.cfg.Signer.Parse(c.Value)
	if err != nil {
		if !hdr.IsZero() {
			return hdr, true, nil
		}
		return api.Token{}, true, err
	}
	merged, err := hdr.Merge(ck)
	if err != nil {
		return hdr, false, nil
	}
	return merged, merged == ck, nil
}

// rejectsToken reports whether err refuses the request's token itself.
func rejectsToken(err error) bool {
	return errors.Is(err, api.ErrTokenStreamMismatch) || errors.Is(err, api.ErrTokenFromFuture) ||
		errors.Is(err, api.ErrInvalidToken)
}

// setToken sets the response token header and cookie: out when known, else
// the request's token. It returns the token as the client sees it.
func (g *Gateway) setToken(w http.ResponseWriter, out, in api.Token) string {
	if m, err := in.Merge(out); err == nil {
		out = m
	} else if out.IsZero() {
		out = in
	}
	if out.IsZero() {
		return ""
	}
	s := g.cfg.Signer.Format(out)
	w.Header().Set(api.HeaderToken, s)
	http.SetCookie(w, &http.Cookie{Name: CookieToken, Value: s, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return s
}

func clearTokenCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieToken, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// requestKey returns the key of a /v1/kv/{key} request, path-unescaped.
func requestKey(r *http.Request) (string, error) {
	return api.DecodeKey(strings.TrimPrefix(r.URL.EscapedPath(), kvPath+"/"))
}

// readOptions are the request headers every read takes.
type readOptions struct {
	wait        time.Duration
	consistency api.Consistency
	replica     string
	forward     bool
	sticky      bool   // affinity applies to this read
	pinned      string // the replica the affinity cookie named
}

// pin sets the affinity cookie to the replica that served a sticky read.
func (g *Gateway) pin(w http.ResponseWriter, o readOptions, served string) {
	if !o.sticky || served == "" || served == o.pinned {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieReplica, Value: served, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// pinnedGone reports whether err says the replica a sticky read was pinned
// to no longer serves, so that the read goes to any other.
func pinnedGone(err error) bool {
	return errors.Is(err, api.ErrUnavailable) || errors.Is(err, api.ErrUnknownReplica)
}

// readHeaders parses a read's Tidemark-Wait (defaulted and capped),
// Tidemark-Consistency, Tidemark-Replica and Tidemark-On-Timeout.
func (g *Gateway) readHeaders(r *http.Request) (readOptions, error) {
	d, err := api.ParseWait(r.Header.Get(api.HeaderWait))
	if err != nil {
		return readOptions{}, err
	}
	if d == 0 {
		d = g.cfg.DefaultWait
	}
	c, err := api.ParseConsistency(r.Header.Get(api.HeaderConsistency))
	if err != nil {
		return readOptions{}, err
	}
	o := readOptions{wait: min(d, g.cfg.MaxWait), consistency: c, replica: r.Header.Get(api.HeaderReplica)}
	if o.replica != "" && !api.ValidID(o.replica) {
		return readOptions{}, api.Errorf(api.ErrInvalidRequest, "invalid %s %q", api.HeaderReplica, o.replica)
	}
	if g.cfg.Affinity && o.replica == "" {
		o.sticky = true
		if c, err := r.Cookie(CookieReplica); err == nil && api.ValidID(c.Value) {
			o.replica, o.pinned = c.Value, c.Value
		}
	}
	switch s := r.Header.Get(api.HeaderOnTimeout); s {
	case "", "fail":
	case "forward":
		o.forward = true
	default:
		return readOptions{}, api.Errorf(api.ErrInvalidRequest, "invalid %s %q: want fail or forward", api.HeaderOnTimeout, s)
	}
	return o, nil
}

func (g *Gateway) put(w http.ResponseWriter, r *http.Request, tok api.Token) (api.Token, error) {
	key, err := requestKey(r)
	if err != nil {
		return api.Token{}, err
	}
	limit := g.valueLimit()
	if err := limit.Check(r.ContentLength); err != nil {
		return api.Token{}, err
	}
	value, err := io.ReadAll(io.LimitReader(r.Body, int64(limit.Bytes)+1))
	if err != nil {
		return api.Token{}, api.Errorf(api.ErrInvalidRequest, "reading body: %w", err)
	}
	if len(value) > limit.Bytes {
		return api.Token{}, limit.TooLarge("more than " + strconv.Itoa(limit.Bytes) + " bytes")
	}
	return g.write(w, r, api.WriteRequest{Op: api.OpPut, Key: key, Value: value, Token: tok})
}

// valueLimiter is a Writer that knows the largest value it can take: the
// writer, and the NATS client transport (what the server's max_payload
// leaves).
type valueLimiter interface {
	ValueLimit() wire.ValueLimit
}

// valueLimit is the largest value a put may carry: the configured limit, or
// less where the writer says so, so that a value no reply could carry is
// refused before its body is read.
func (g *Gateway) valueLimit() wire.ValueLimit {
	vl, ok := g.cfg.Writer.(valueLimiter)
	if !ok {
		return wire.NewValueLimit(g.cfg.MaxValueBytes, 0)
	}
	wl := vl.ValueLimit()
	configured := g.cfg.MaxValueBytes
	if wl.Configured > 0 {
		configured = min(configured, wl.Configured)
	}
	return wire.NewValueLimit(configured, wl.MaxPayload)
}

func (g *Gateway) del(w http.ResponseWriter, r *http.Request, tok api.Token) (api.Token, error) {
	key, err := requestKey(r)
	if err != nil {
		return api.Token{}, err
	}
	return g.write(w, r, api.WriteRequest{Op: api.OpDelete, Key: key, Token: tok})
}

func (g *Gateway) write(w http.ResponseWriter, r *http.Request, req api.WriteRequest) (api.Token, error) {
	if err := api.ParseWriteHeaders(r.Header, &req); err != nil {
		return api.Token{}, err
	}
	if req.WriteID == "" {
		req.WriteID = r.Header.Get(HeaderIdempotencyKey)
		if err := req.Validate(); err != nil {
			return api.Token{}, err
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), DefaultWriteTimeout)
	defer cancel()
	res, err := g.cfg.Writer.Write(ctx, req)
	if err != nil {
		if res.Revision != 0 {
			w.Header().Set(api.HeaderRevision, strconv.FormatUint(res.Revision, 10))
		}
		return res.Token, err
	}
	tok := g.setToken(w, res.Token, req.Token)
	w.Header().Set(api.HeaderRevision, strconv.FormatUint(res.Revision, 10))
	w.Header().Set("ETag", etag(res.Revision))
	writeJSON(w, http.StatusOK, api.WriteJSON{Key: req.Key, Revision: res.Revision, Token: tok})
	return res.Token, nil
}

func etag(rev uint64) string { return `"` + strconv.FormatUint(rev, 10) + `"` }

// readContext bounds a read by its wait plus the reply margin.
func readContext(r *http.Request, wait time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), wait+DefaultReplyMargin)
}

func (g *Gateway) get(w http.ResponseWriter, r *http.Request, tok api.Token) (api.Token, error) {
	key, err := requestKey(r)
	if err != nil {
		return api.Token{}, err
	}
	o, err := g.readHeaders(r)
	if err != nil {
		return api.Token{}, err
	}
	ctx, cancel := readContext(r, o.wait)
	defer cancel()
	req := api.GetRequest{Key: key, ReadSpec: api.ReadSpec{Token: tok, Wait: o.wait, Consistency: o.consistency, Replica: o.replica, Forward: o.forward}}
	res, err := g.cfg.Reader.Get(ctx, req)
	if o.sticky && pinnedGone(err) {
		req.Replica = "" // the pinned replica is gone: any other
		res, err = g.cfg.Reader.Get(ctx, req)
	}
	g.pin(w, o, res.Replica)
	wire.SetServedBy(w.Header(), res.ServedBy)
	g.metrics.waited(res.Waited)
	if err != nil {
		if res.Record.Revision != 0 {
			w.Header().Set(api.HeaderRevision, strconv.FormatUint(res.Record.Revision, 10))
		}
		return res.Token, err
	}
	g.setToken(w, res.Token, tok)
	h := w.Header()
	h.Set(api.HeaderRevision, strconv.FormatUint(res.Record.Revision, 10))
	h.Set("ETag", etag(res.Record.Revision))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(res.Record.Value)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(res.Record.Value)
	}
	return res.Token, nil
}

func (g *Gateway) scan(w http.ResponseWriter, r *http.Request, tok api.Token) (api.Token, error) {
	q := r.URL.Query()
	o, err := g.readHeaders(r)
	if err != nil {
		return api.Token{}, err
	}
	req := api.ScanRequest{
		Prefix:   q.Get("prefix"),
		After:    q.Get("after"),
		ReadSpec: api.ReadSpec{Token: tok, Wait: o.wait, Consistency: o.consistency, Replica: o.replica, Forward: o.forward},
	}
	if s := q.Get("limit"); s != "" {
		// An explicit limit must be a count of keys: 0 is not "the default".
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > api.MaxScanLimit {
			return api.Token{}, api.Errorf(api.ErrInvalidRequest, "invalid limit %q: want 1 to %d (leave it out for %d)", s, api.MaxScanLimit, api.DefaultScanLimit)
		}
		req.Limit = n
	}
	if err := req.Validate(); err != nil {
		return api.Token{}, err
	}
	ctx, cancel := readContext(r, o.wait)
	defer cancel()
	res, err := g.cfg.Reader.Scan(ctx, req)
	if o.sticky && pinnedGone(err) {
		req.Replica = ""
		res, err = g.cfg.Reader.Scan(ctx, req)
	}
	g.pin(w, o, res.Replica)
	wire.SetServedBy(w.Header(), res.ServedBy)
	g.metrics.waited(res.Waited)
	if err != nil {
		return res.Token, err
	}
	body := res.ToScanJSON()
	body.Token = g.setToken(w, res.Token, tok)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
	return res.Token, nil
}
