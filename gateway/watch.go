package gateway

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	_ "embed"
	"encoding/json"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// watchPath is the watch endpoint (Server-Sent Events); watchPagePath is
// the example page of a live list on it.
const (
	watchPath     = "/v1/watch"
	watchPagePath = "/examples/watch"
)

//go:embed watch.html
var watchPage []byte

// serveWatchPage serves the example page: a live list under a prefix with a
// form that puts to it.
func serveWatchPage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, api.ErrorBodyOf(api.Errorf(api.ErrInvalidRequest, "method %s not allowed", r.Method)))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(watchPage)
}

// HeaderLastEventID is the header an EventSource reconnects with.
const HeaderLastEventID = "Last-Event-ID"

// Watcher serves watches from replicas. The NATS client transport
// satisfies it; it resumes on another replica on its own.
type Watcher interface {
	Watch(ctx context.Context, req api.WatchRequest) iter.Seq2[api.Event, error]
}

// watcher is the configured Watcher, or the Reader when it is one.
func (g *Gateway) watcher() Watcher {
	if g.cfg.Watcher != nil {
		return g.cfg.Watcher
	}
	w, _ := g.cfg.Reader.(Watcher)
	return w
}

// watch serves GET /v1/watch?prefix=P[&after=R] as Server-Sent Events (see
// DESIGN, "Watch"). A request refused before any event (a bad request, a
// token, a resume point the replicas no longer hold: 410) is answered with
// the JSON error and its status; a failure later is an error event, and
// the stream ends.
func (g *Gateway) watch(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	status := http.StatusOK
	defer func() { g.metrics.observe("watch", status, time.Since(start)) }()
	fail := func(tok api.Token, fromCookie bool, err error) {
		g.respondToken(w, tok, api.Token{}, fromCookie, err)
		status = g.writeError(w, err)
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		status = http.StatusMethodNotAllowed
		writeJSON(w, status, api.ErrorBodyOf(api.Errorf(api.ErrInvalidRequest, "method %s not allowed", r.Method)))
		return
	}
	tok, fromCookie, err := g.requestToken(r)
	if err != nil {
		fail(api.Token{}, fromCookie, err)
		return
	}
	req, err := g.watchRequest(r, tok)
	if err != nil {
		fail(tok, fromCookie, err)
		return
	}
	src := g.watcher()
	if src == nil {
		fail(tok, fromCookie, api.Errorf(api.ErrUnavailable, "this gateway serves no watches"))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(g.closing, cancel)() // the gateway shuts down: end the stream
	next, stop := iter.Pull2(src.Watch(ctx, req))
	defer stop()

	ev, err, ok := next()
	if !ok {
		err = api.Errorf(api.ErrUnavailable, "the watch ended before it started")
	}
	if err != nil {
		fail(tok, fromCookie, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	g.setToken(w, ev.Token, tok)
	rc := http.NewResponseController(w)
	// The server's read timeout is for reading requests: a stream lives
	// longer, and its connection's read deadline would end it.
	_ = rc.SetReadDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	var buf []byte
	buf = append(buf, "retry: 1000\n\n"...)
	for {
		if err != nil {
			if ctx.Err() == nil {
				buf = appendSSE(buf, api.Event{Type: api.EventError}, api.ErrorBodyOf(err))
				_, _ = w.Write(buf)
				_ = rc.Flush()
			}
			return
		}
		buf = appendSSE(buf, ev, wire.EventJSONOf(ev, g.cfg.Signer.Format(ev.Token)))
		if _, werr := w.Write(buf); werr != nil {
			return
		}
		buf = buf[:0]
		if werr := rc.Flush(); werr != nil {
			return
		}
		if ev, err, ok = next(); !ok {
			return
		}
	}
}

// appendSSE appends one event with data v to b.
func appendSSE(b []byte, ev api.Event, v any) []byte {
	switch ev.Type {
	case api.EventSynced, api.EventProgress:
		b = strconv.AppendUint(append(b, "id: "...), ev.ID, 10)
		b = append(b, '\n')
	case api.EventPut, api.EventDelete:
		// Only the last change of a revision names it: a reconnect in
		// the middle of a revision's changes gets all of them again.
		if ev.ID != 0 && !ev.More {
			b = strconv.AppendUint(append(b, "id: "...), ev.ID, 10)
			b = append(b, '\n')
		}
	}
	b = append(append(append(b, "event: "...), ev.Type...), '\n')
	data, _ := json.Marshal(v)
	b = append(append(append(b, "data: "...), data...), "\n\n"...)
	return b
}

// watchRequest parses a watch request with the session's token tok: the
// prefix, the resume point (Last-Event-ID, else after=), Tidemark-Wait and
// Tidemark-Replica.
func (g *Gateway) watchRequest(r *http.Request, tok api.Token) (api.WatchRequest, error) {
	q := r.URL.Query()
	req := api.WatchRequest{Prefix: q.Get("prefix"), Token: tok, Progress: g.cfg.WatchProgress}
	after := q.Get("after")
	if id := strings.TrimSpace(r.Header.Get(HeaderLastEventID)); id != "" {
		after = id
	}
	if after != "" {
		n, err := strconv.ParseUint(after, 10, 64)
		if err != nil {
			return req, api.Errorf(api.ErrInvalidRequest, "invalid resume point %q: want a revision", after)
		}
		req.Resume, req.After = true, n
	}
	d, err := api.ParseWait(r.Header.Get(api.HeaderWait))
	if err != nil {
		return req, err
	}
	if d == 0 {
		d = g.cfg.DefaultWait
	}
	req.Wait = min(d, g.cfg.MaxWait)
	req.Replica = r.Header.Get(api.HeaderReplica)
	return req, req.Validate()
}
