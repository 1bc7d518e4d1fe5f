package client

import (
	"github.com/tidemark/tidemark/internal/backoff"
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

var _ Watcher = (*HTTP)(nil)

// Watch streams the events of req from the gateway's GET /v1/watch
// (Server-Sent Events), as Client.Watch describes: it reconnects on its
// own with Last-Event-ID after the stream ends or stays silent for three
// progress intervals, holds the initial state back until synced, and ends
// with api.ErrResumePointCompacted (410) when the resume point is gone.
func (h *HTTP) Watch(ctx context.Context, req api.WatchRequest) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		if h.err != nil {
			yield(Event{}, h.err)
			return
		}
		if err := req.Validate(); err != nil {
			yield(Event{}, err)
			return
		}
		w := &watchState{req: req, yield: yield, begun: time.Now()}
		wait := req.Wait
		if wait <= 0 {
			wait = h.ReadWait
		}
		b := backoff.Backoff{Max: watchRetryMax}
		for ctx.Err() == nil {
			err := h.watchOnce(ctx, w)
			var resume errResume
			switch {
			case err == nil, errors.As(err, &resume), retryable(err):
				if err != nil && w.giveUp(wait) {
					yield(Event{}, err)
					return
				}
				if b.Wait(ctx) != nil {
					return
				}
			case errors.Is(err, errYieldStopped) || ctx.Err() != nil:
				return
			default:
				yield(Event{}, err)
				return
			}
		}
	}
}

// watchOnce runs one connection of w; nil when the stream ended.
func (h *HTTP) watchOnce(ctx context.Context, w *watchState) error {
	w.resuming()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := url.Values{}
	q.Set("prefix", w.req.Prefix)
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/v1/watch?"+q.Encode(), nil)
	if err != nil {
		return api.Errorf(api.ErrInvalidRequest, "watch %q: %w", w.req.Prefix, err)
	}
	setToken(hr.Header, h.formatToken(w.req.Token))
	if w.req.Wait > 0 {
		hr.Header.Set(api.HeaderWait, w.req.Wait.String())
	}
	if w.req.Replica != "" {
		hr.Header.Set(api.HeaderReplica, w.req.Replica)
	}
	if w.req.Resume {
		hr.Header.Set("Last-Event-ID", strconv.FormatUint(w.req.After, 10))
	}
	resp, err := h.Client.Do(hr)
	if err != nil {
		return api.Errorf(api.ErrUnavailable, "watch: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return decodeHTTPError(resp.StatusCode, body)
	}
	w.started = true
	// Nothing for three progress intervals: the gateway or its replica
	// is gone.
	liveness := watchLiveness*max(w.req.Progress, api.DefaultWatchProgress) + h.ReadMargin
	silent := time.AfterFunc(liveness, cancel)
	defer silent.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 4*int(min(h.MaxResponseBytes, 1<<30)))
	m := nats.NewMsg("sse")
	var n uint64
	for sc.Scan() {
		silent.Reset(liveness)
		line := sc.Text()
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "":
			if m.Header.Get(wire.HeaderEvent) == "" {
				continue
			}
			n++
			m.Header.Set(wire.HeaderEventSeq, strconv.FormatUint(n, 10))
			if w.req.Resume {
				sseChangeID(m)
			}
			ev, err := h.decodeSSE(m)
			if err != nil {
				return errResume{err}
			}
			if err := w.handle(ev); err != nil {
				return err
			}
			m = nats.NewMsg("sse")
		case name == "id":
			m.Header.Set(wire.HeaderEventID, value)
		case name == "event":
			m.Header.Set(wire.HeaderEvent, value)
		case name == "data":
			m.Data = []byte(value)
		}
	}
	if ctx.Err() != nil && w.req.Resume {
		return errResume{api.Errorf(api.ErrUnavailable, "the watch sent nothing for %v", liveness)}
	}
	return nil
}

// sseChangeID gives a change event of the stream that names no id (more
// changes of its revision or transaction follow it) its revision as id and
// More, as over NATS; DecodeEvent then checks it as any other.
func sseChangeID(m *nats.Msg) {
	t := api.EventType(m.Header.Get(wire.HeaderEvent))
	if m.Header.Get(wire.HeaderEventID) != "" || (t != api.EventPut && t != api.EventDelete) {
		return
	}
	var c struct {
		Revision uint64 `json:"revision"`
	}
	if json.Unmarshal(m.Data, &c) == nil && c.Revision != 0 {
		m.Header.Set(wire.HeaderEventID, strconv.FormatUint(c.Revision, 10))
		m.Header.Set(wire.HeaderEventMore, "1")
	}
}

// decodeSSE decodes one event as the NATS protocol's (the same fields),
// remembering the signed form of its token.
func (h *HTTP) decodeSSE(m *nats.Msg) (Event, error) {
	_, ev, err := wire.DecodeEvent(m)
	if err != nil {
		return ev, err
	}
	var body struct {
		Token string `json:"token"`
	}
	if json.Unmarshal(m.Data, &body) == nil && body.Token != "" {
		if tok, err := h.parseToken(body.Token); err == nil {
			ev.Token = tok
		}
	}
	return ev, nil
}
