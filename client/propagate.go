package client

import (
	"github.com/tidemark/tidemark/api"

	"net/http"
)

// CookieToken is the cookie that carries the session token for browsers, as
// the gateway sets it.
const CookieToken = "tidemark_token"

// Middleware propagates the session token through an HTTP service, as trace
// context is propagated: it reads the token of the incoming request (the
// Tidemark-Token header or the tidemark_token cookie; with both, the later
// one) into a new session in the request's context, and writes the
// session's token, with every token merged into it while the request was
// handled, into the response's Tidemark-Token header (and refreshes the
// cookie when the request carried it). A Client's calls with the request's
// context run in that session; RoundTripper and RequestNATS pass it on.
//
// A malformed token is ignored: the request is handled without it.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, cookie := requestToken(r)
		ctx := r.Context()
		s := SessionFrom(ctx)
		if s == nil {
			s = newSession(nil, tok)
			ctx = WithSession(ctx, s)
		} else {
			s.observe(tok)
		}
		tw := &tokenWriter{ResponseWriter: w, s: s, cookie: cookie}
		next.ServeHTTP(tw, r.WithContext(ctx))
		if !tw.wrote {
			tw.setToken() // the server writes the header when the handler returns
		}
	})
}

// requestToken reads the token of a request from its header and its cookie,
// and whether it had the cookie. Tokens of two streams: the header wins.
func requestToken(r *http.Request) (api.Token, bool) {
	hdr := parseToken(r.Header.Get(api.HeaderToken))
	c, err := r.Cookie(CookieToken)
	if err != nil {
		return hdr, false
	}
	merged, err := hdr.Merge(parseToken(c.Value))
	if err != nil {
		return hdr, true
	}
	return merged, true
}

// parseToken parses a token that came from outside; a malformed one is the
// zero token.
func parseToken(s string) api.Token {
	tok, err := api.ParseToken(s)
	if err != nil {
		return api.Token{}
	}
	return tok
}

// mergeInto returns the token to put in a header that holds have: tok merged
// with it, or have as it is when it is a valid token of another stream.
func mergeInto(have string, tok api.Token) (api.Token, bool) {
	h, err := api.ParseToken(have)
	if err != nil {
		return tok, true // not a token: replace it
	}
	m, err := h.Merge(tok)
	if err != nil {
		return h, false
	}
	return m, true
}

// tokenWriter sets the session's token on the response just before the
// header is written.
type tokenWriter struct {
	http.ResponseWriter
	s      *Session
	cookie bool
	wrote  bool
}

func (w *tokenWriter) setToken() {
	tok := w.s.Token()
	if tok.IsZero() {
		return
	}
	h := w.Header()
	tok, ok := mergeInto(h.Get(api.HeaderToken), tok)
	if !ok {
		return // the handler set a token of its own
	}
	h.Set(api.HeaderToken, tok.String())
	if w.cookie {
		http.SetCookie(w.ResponseWriter, &http.Cookie{Name: CookieToken, Value: tok.String(), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
}

// WriteHeader sets the token, then writes the header.
func (w *tokenWriter) WriteHeader(code int) {
	if !w.wrote && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.wrote = true
		w.setToken()
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write sets the token if the header has not been written, then writes b.
func (w *tokenWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.wrote = true
		w.setToken()
	}
	return w.ResponseWriter.Write(b)
}

// Flush sets the token if the header has not been written, then flushes.
func (w *tokenWriter) Flush() {
	if !w.wrote {
		w.wrote = true
		w.setToken()
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *tokenWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// RoundTripper wraps base (http.DefaultTransport when nil) so that a
// request whose context carries a session takes the session's token along
// in its Tidemark-Token header, and the token of the response is merged
// back into the session. Use it on the clients that call your own services:
// it sends the token to whatever host a request goes to.
func RoundTripper(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &roundTripper{base: base}
}

type roundTripper struct{ base http.RoundTripper }

// RoundTrip sends req with the session's token and merges the response's.
func (t *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	s := SessionFrom(req.Context())
	if s == nil {
		return t.base.RoundTrip(req)
	}
	if tok := s.Token(); !tok.IsZero() {
		if tok, ok := mergeInto(req.Header.Get(api.HeaderToken), tok); ok {
			req = req.Clone(req.Context()) // a RoundTripper must not change the caller's request
			req.Header.Set(api.HeaderToken, tok.String())
		}
	}
	resp, err := t.base.RoundTrip(req)
	if err == nil {
		s.observe(parseToken(resp.Header.Get(api.HeaderToken)))
	}
	return resp, err
}
