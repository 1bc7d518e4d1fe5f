package gateway

import (
	"github.com/tidemark/tidemark/internal/deadline"
	"github.com/tidemark/tidemark/internal/health"
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
		case path == health.HealthzPath:
			health.Healthz(w, r)
		case path == health.ReadyzPath:
			health.Readyz(g.cfg.Ready)(w, r)
		case path == "/metrics":
			g.metrics.handler.ServeHTTP(w, r)
		case path == statusJSONPath || path == statusPagePath:
			g.serveStatus(w, r) // status.go
		case path == watchPath:
			g.watch(w, r) // watch.go
		case path == watchPagePath:
			serveWatchPage(w, r)
		case path == kvPath:
			g.instrument("scan", w, r, g.scan, http.MethodGet)
		case path == txnPath:
			g.instrument("txn", w, r, g.txn, http.MethodPost) // txn.go
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

// reply is what a handler produced: the session's new token and, on
// success, the body to write with 200 OK. A handler sets any other
// headers of its response itself, and writes neither its body nor its
// status: instrument does.
type reply struct {
	// token is the session's new token; zero leaves the request's.
	token api.Token
	// json, when set, makes the JSON body of a success, given the token
	// as the client sees it ("" when there is none).
	json func(token string) any
	// value is the body of a success without json (a get's value, as it
	// is); a HEAD request's response carries none.
	value []byte
}

// handlerFunc handles one API request with the session's token and returns
// what it produced, or the error to report (with the session's new token,
// if any, in the reply).
type handlerFunc func(w http.ResponseWriter, r *http.Request, tok api.Token) (reply, error)

// instrument parses the session token, runs h, and writes the response:
// the token header and cookie (respondToken), then the error, or h's body.
// Every response carries the session's token.
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
	var out reply
	if err == nil {
		out, err = h(w, r, tok)
	}
	shown := g.respondToken(w, tok, out.token, fromCookie, err)
	if err != nil {
		status = g.writeError(w, err)
		if status >= 500 {
			g.log.Warn().Err(err).Str("op", op).Int("status", status).Msg("request failed")
		}
		return
	}
	if out.json != nil {
		writeJSON(w, status, out.json(shown))
		return
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(out.value)
	}
}

// respondToken sets the token header and cookie of a response, a success's
// or a failure's: the session's new token out when known, else the
// request's in. A failure that refuses the request's token itself sets
// none and, when the cookie is to blame, drops the cookie, so that the
// next request works: a garbage cookie (a token that does not parse is
// api.ErrInvalidToken), a stale token of a recreated stream, or one from
// the future. A refused header token sets no cookie. It returns the token
// as the client sees it.
func (g *Gateway) respondToken(w http.ResponseWriter, in, out api.Token, fromCookie bool, err error) string {
	switch {
	case err == nil || !rejectsToken(err):
		return g.setToken(w, out, in)
	case fromCookie:
		clearTokenCookie(w)
	}
	return ""
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

// readOptions are what a read's request headers say.
type readOptions struct {
	spec   api.ReadSpec // the read's token, wait, consistency and routing
	sticky bool         // affinity applies to this read
	pinned string       // the replica the affinity cookie named
}

// pin sets the affinity cookie to the replica that served a sticky read.
func (g *Gateway) pin(w http.ResponseWriter, o readOptions, served string) {
	if !o.sticky || served == "" || served == o.pinned {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieReplica, Value: served, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// read serves a read of spec (a part of the request do sends) with the
// options o: when the replica a sticky read was pinned to is gone, once
// more to any other. It pins the session to the replica that served the
// read and reports who served it in the response's headers.
func (g *Gateway) read(w http.ResponseWriter, o readOptions, spec *api.ReadSpec, do func() (api.ServedBy, error)) error {
	served, err := do()
	if o.sticky && pinnedGone(err) {
		spec.Replica = "" // the pinned replica is gone: any other
		served, err = do()
	}
	g.pin(w, o, served.Replica)
	wire.SetServedBy(w.Header(), served)
	g.metrics.waited(served.Waited)
	return err
}

// pinnedGone reports whether err says the replica a sticky read was pinned
// to no longer serves, so that the read goes to any other.
func pinnedGone(err error) bool {
	return errors.Is(err, api.ErrUnavailable) || errors.Is(err, api.ErrUnknownReplica)
}

// readHeaders parses the options of a read with the session's token tok:
// its Tidemark-Wait (defaulted and capped), Tidemark-Consistency,
// Tidemark-Replica and Tidemark-On-Timeout.
func (g *Gateway) readHeaders(r *http.Request, tok api.Token) (readOptions, error) {
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
	o := readOptions{spec: api.ReadSpec{Token: tok, Wait: min(d, g.cfg.MaxWait), Consistency: c, Replica: r.Header.Get(api.HeaderReplica)}}
	if o.spec.Replica != "" && !api.ValidID(o.spec.Replica) {
		return readOptions{}, api.Errorf(api.ErrInvalidRequest, "invalid %s %q", api.HeaderReplica, o.spec.Replica)
	}
	if g.cfg.Affinity && o.spec.Replica == "" {
		o.sticky = true
		if c, err := r.Cookie(CookieReplica); err == nil && api.ValidID(c.Value) {
			o.spec.Replica, o.pinned = c.Value, c.Value
		}
	}
	switch s := r.Header.Get(api.HeaderOnTimeout); s {
	case "", "fail":
	case "forward":
		o.spec.Forward = true
	default:
		return readOptions{}, api.Errorf(api.ErrInvalidRequest, "invalid %s %q: want fail or forward", api.HeaderOnTimeout, s)
	}
	return o, nil
}

func (g *Gateway) put(w http.ResponseWriter, r *http.Request, tok api.Token) (reply, error) {
	key, err := requestKey(r)
	if err != nil {
		return reply{}, err
	}
	limit := g.valueLimit()
	if err := limit.Check(r.ContentLength); err != nil {
		return reply{}, err
	}
	value, err := readValue(r, limit.Bytes)
	if err != nil {
		return reply{}, api.Errorf(api.ErrInvalidRequest, "reading body: %w", err)
	}
	if len(value) > limit.Bytes {
		return reply{}, limit.TooLarge("more than " + strconv.Itoa(limit.Bytes) + " bytes")
	}
	return g.write(w, r, api.WriteRequest{Op: api.OpPut, Key: key, Value: value, Token: tok})
}

// maxPreallocValue bounds the buffer readValue makes before the body comes,
// so that a request cannot make the gateway hold much memory it never sends.
const maxPreallocValue = 64 << 10

// readValue reads the body of a put, up to limit+1 bytes: into a buffer of
// its length when the request gives one up to maxPreallocValue, rather than
// into one grown as it is read.
func readValue(r *http.Request, limit int) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= int64(min(limit, maxPreallocValue)) {
		value := make([]byte, n)
		if _, err := io.ReadFull(r.Body, value); err != nil {
			return nil, err
		}
		return value, nil
	}
	return io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
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

func (g *Gateway) del(w http.ResponseWriter, r *http.Request, tok api.Token) (reply, error) {
	key, err := requestKey(r)
	if err != nil {
		return reply{}, err
	}
	return g.write(w, r, api.WriteRequest{Op: api.OpDelete, Key: key, Token: tok})
}

func (g *Gateway) write(w http.ResponseWriter, r *http.Request, req api.WriteRequest) (reply, error) {
	if err := api.ParseWriteHeaders(r.Header, &req); err != nil {
		return reply{}, err
	}
	if req.WriteID == "" {
		req.WriteID = r.Header.Get(HeaderIdempotencyKey)
		if err := req.Validate(); err != nil {
			return reply{}, err
		}
	}
	// A writer in this process bounds its requests itself: the write's
	// timeout then costs no timer of its own (deadline.Within).
	ctx, cancel := deadline.WithTimeout(r.Context(), DefaultWriteTimeout)
	defer cancel()
	res, err := g.cfg.Writer.Write(ctx, req)
	if err != nil {
		if res.Revision != 0 {
			w.Header().Set(api.HeaderRevision, strconv.FormatUint(res.Revision, 10))
		}
		return reply{token: res.Token}, err
	}
	w.Header().Set(api.HeaderRevision, strconv.FormatUint(res.Revision, 10))
	w.Header().Set("ETag", etag(res.Revision))
	return reply{token: res.Token, json: func(tok string) any {
		return api.WriteJSON{Key: req.Key, Revision: res.Revision, Token: tok}
	}}, nil
}

func etag(rev uint64) string { return `"` + strconv.FormatUint(rev, 10) + `"` }

// readContext bounds a read by its wait plus the reply margin.
func readContext(r *http.Request, wait time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), wait+DefaultReplyMargin)
}

func (g *Gateway) get(w http.ResponseWriter, r *http.Request, tok api.Token) (reply, error) {
	key, err := requestKey(r)
	if err != nil {
		return reply{}, err
	}
	o, err := g.readHeaders(r, tok)
	if err != nil {
		return reply{}, err
	}
	ctx, cancel := readContext(r, o.spec.Wait)
	defer cancel()
	req := api.GetRequest{Key: key, ReadSpec: o.spec}
	var res api.GetResult
	err = g.read(w, o, &req.ReadSpec, func() (api.ServedBy, error) {
		var err error
		res, err = g.cfg.Reader.Get(ctx, req)
		return res.ServedBy, err
	})
	h := w.Header()
	if err != nil {
		if res.Record.Revision != 0 {
			h.Set(api.HeaderRevision, strconv.FormatUint(res.Record.Revision, 10))
		}
		return reply{token: res.Token}, err
	}
	h.Set(api.HeaderRevision, strconv.FormatUint(res.Record.Revision, 10))
	h.Set("ETag", etag(res.Record.Revision))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(res.Record.Value)))
	h.Set("Cache-Control", "no-store")
	return reply{token: res.Token, value: res.Record.Value}, nil
}

func (g *Gateway) scan(w http.ResponseWriter, r *http.Request, tok api.Token) (reply, error) {
	q := r.URL.Query()
	o, err := g.readHeaders(r, tok)
	if err != nil {
		return reply{}, err
	}
	req := api.ScanRequest{Prefix: q.Get("prefix"), After: q.Get("after"), ReadSpec: o.spec}
	if s := q.Get("limit"); s != "" {
		// An explicit limit must be a count of keys: 0 is not "the default".
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > api.MaxScanLimit {
			return reply{}, api.Errorf(api.ErrInvalidRequest, "invalid limit %q: want 1 to %d (leave it out for %d)", s, api.MaxScanLimit, api.DefaultScanLimit)
		}
		req.Limit = n
	}
	if err := req.Validate(); err != nil {
		return reply{}, err
	}
	ctx, cancel := readContext(r, o.spec.Wait)
	defer cancel()
	var res api.ScanResult
	err = g.read(w, o, &req.ReadSpec, func() (api.ServedBy, error) {
		var err error
		res, err = g.cfg.Reader.Scan(ctx, req)
		return res.ServedBy, err
	})
	if err != nil {
		return reply{token: res.Token}, err
	}
	w.Header().Set("Cache-Control", "no-store")
	body := res.ToScanJSON()
	return reply{token: res.Token, json: func(tok string) any {
		body.Token = tok
		return body
	}}, nil
}
