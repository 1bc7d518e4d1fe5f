package gateway

import (
	"github.com/tidemark/tidemark/api"

	"net/http"
	"time"
)

// accessLog wraps next so that every request it serves logs one line at
// info level, message "request": method, path, status, bytes (of the
// response body), duration (a Go duration string such as "1.5ms"), the
// replica that served it (Tidemark-Replica) and the sequence of the token
// the response carries (token_seq), when there is one.
func (g *Gateway) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &accessRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		ev := g.log.Info().
			Str("method", r.Method).
			Str("path", r.URL.EscapedPath()).
			Int("status", rec.status).
			Int64("bytes", rec.bytes).
			Str("duration", time.Since(start).String())
		if id := w.Header().Get(api.HeaderReplica); id != "" {
			ev = ev.Str("replica", id)
		}
		if tok, err := g.cfg.Signer.Parse(w.Header().Get(api.HeaderToken)); err == nil && !tok.IsZero() {
			ev = ev.Uint64("token_seq", tok.Seq)
		}
		ev.Msg("request")
	})
}

// accessRecorder is a ResponseWriter that remembers the status and counts the
// body's bytes, for the access log.
type accessRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *accessRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *accessRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *accessRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
