package wire

import (
	"github.com/tidemark/tidemark/api"

	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Headers of the watch protocol's events.
const (
	// HeaderEvent is an event's type: put, delete, synced, progress, error.
	HeaderEvent = "Tidemark-Event"
	// HeaderEventID is an event's id (absent for the initial state's records).
	HeaderEventID = "Tidemark-Event-Id"
	// HeaderEventSeq numbers the events of one watch from 1, so that a lost
	// message shows.
	HeaderEventSeq = "Tidemark-Event-Seq"
	// HeaderEventMore, "1", marks a change that more changes of its
	// revision follow.
	HeaderEventMore = "Tidemark-Event-More"
)

// Bounds of a watch request's progress interval.
const (
	MinWatchProgress = 10 * time.Millisecond
	MaxWatchProgress = time.Minute
)

// WatchRequestJSON is the body of a watch request over NATS.
type WatchRequestJSON struct {
	// Prefix selects the keys.
	Prefix string `json:"prefix"`
	// After, when present, resumes after that revision instead of sending
	// the initial state.
	After *uint64 `json:"after,omitempty"`
	// Deliver is the subject the replica publishes the events to.
	Deliver string `json:"deliver"`
	// Progress is how often an idle watch gets a progress event, e.g. "5s".
	Progress string `json:"progress,omitempty"`
}

// WatchReplyJSON is the body of the reply that starts a watch.
type WatchReplyJSON struct {
	// Control is where the watcher sends its acknowledgements.
	Control string `json:"control"`
	// Replica is the replica that serves the watch.
	Replica string `json:"replica"`
}

// WatchControlJSON is what a watcher sends to the control subject: how
// many events it has received, or that it stops.
type WatchControlJSON struct {
	Received uint64 `json:"received"`
	Stop     bool   `json:"stop,omitempty"`
}

// WatchMsg builds the NATS request that starts w on subject, with events to
// deliver.
func WatchMsg(subject string, w api.WatchRequest, deliver string) *nats.Msg {
	m := nats.NewMsg(subject)
	setReadSpec(m.Header, api.ReadSpec{Token: w.Token, Wait: w.Wait})
	body := WatchRequestJSON{Prefix: w.Prefix, Deliver: deliver}
	if w.Resume {
		after := w.After
		body.After = &after
	}
	if w.Progress > 0 {
		body.Progress = w.Progress.String()
	}
	m.Data, _ = json.Marshal(body)
	return m
}

// DecodeWatchRequest decodes a watch request: the request and its deliver
// subject.
func DecodeWatchRequest(h nats.Header, data []byte) (api.WatchRequest, string, error) {
	spec, err := readSpec(h)
	if err != nil {
		return api.WatchRequest{}, "", err
	}
	if spec.Consistency != "" && spec.Consistency != api.Session {
		return api.WatchRequest{}, "", api.Errorf(api.ErrInvalidRequest, "a watch has session consistency only")
	}
	var body WatchRequestJSON
	if err := decodeStrict(data, &body); err != nil {
		return api.WatchRequest{}, "", api.Errorf(api.ErrInvalidRequest, "invalid watch request: %w", err)
	}
	if !validSubject(body.Deliver) {
		return api.WatchRequest{}, "", api.Errorf(api.ErrInvalidRequest, "invalid deliver subject %q", body.Deliver)
	}
	w := api.WatchRequest{Prefix: body.Prefix, Token: spec.Token, Wait: spec.Wait}
	if body.After != nil {
		w.Resume, w.After = true, *body.After
	}
	if body.Progress != "" {
		d, err := time.ParseDuration(body.Progress)
		if err != nil || d < MinWatchProgress || d > MaxWatchProgress {
			return api.WatchRequest{}, "", api.Errorf(api.ErrInvalidRequest, "invalid progress %q: want %v to %v", body.Progress, MinWatchProgress, MaxWatchProgress)
		}
		w.Progress = d
	}
	if err := w.Validate(); err != nil {
		return api.WatchRequest{}, "", err
	}
	return w, body.Deliver, nil
}

// EncodeWatchReply encodes the reply that starts a watch, or refuses it.
func EncodeWatchReply(replica, control string, tok api.Token, err error) (nats.Header, []byte) {
	h := nats.Header{}
	setTokenRev(h, tok, 0)
	if replica != "" {
		h.Set(api.HeaderReplica, replica)
	}
	if err != nil {
		return errorReply(h, err)
	}
	body, _ := json.Marshal(WatchReplyJSON{Control: control, Replica: replica})
	return h, body
}

// DecodeWatchReply decodes the reply to a watch request: the control subject
// and the replica that serves it.
func DecodeWatchReply(m *nats.Msg) (control, replica string, err error) {
	if err := replyError(m); err != nil {
		return "", m.Header.Get(api.HeaderReplica), err
	}
	var body WatchReplyJSON
	if err := decodeStrict(m.Data, &body); err != nil || !validSubject(body.Control) || !api.ValidID(body.Replica) {
		return "", "", api.Errorf(api.ErrInternal, "bad watch reply %q", m.Data)
	}
	return body.Control, body.Replica, nil
}

// EventMsg builds the message of the n-th event of a watch, to subject.
func EventMsg(subject string, n uint64, ev api.Event) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(HeaderEvent, string(ev.Type))
	m.Header.Set(HeaderEventSeq, strconv.FormatUint(n, 10))
	if ev.ID != 0 {
		m.Header.Set(HeaderEventID, strconv.FormatUint(ev.ID, 10))
	}
	if ev.More {
		m.Header.Set(HeaderEventMore, "1")
	}
	if ev.Type == api.EventError {
		m.Data, _ = json.Marshal(api.ErrorBodyOf(ev.Err))
		return m
	}
	m.Data, _ = json.Marshal(EventJSONOf(ev, ev.Token.String()))
	return m
}

// EventJSONOf is the data of ev, with the token as the client sees it.
func EventJSONOf(ev api.Event, token string) api.EventJSON {
	body := api.EventJSON{Token: token}
	if ev.Type == api.EventPut || ev.Type == api.EventDelete {
		body.Key, body.Revision = ev.Key, ev.Revision
		if ev.Type == api.EventPut {
			body.Value = ev.Value
			if body.Value == nil {
				body.Value = []byte{}
			}
		}
		if !ev.Txn.IsZero() {
			body.Txn = &api.EventTxnJSON{Revision: ev.Txn.Revision, Ops: ev.Txn.Ops}
		}
	}
	return body
}

// DecodeEvent decodes an event message: its number in the watch and the event.
func DecodeEvent(m *nats.Msg) (uint64, api.Event, error) {
	bad := func(format string, args ...any) (uint64, api.Event, error) {
		return 0, api.Event{}, api.Errorf(api.ErrInternal, "bad watch event: "+format, args...)
	}
	n, err := strconv.ParseUint(m.Header.Get(HeaderEventSeq), 10, 64)
	if err != nil || n == 0 {
		return bad("%s %q", HeaderEventSeq, m.Header.Get(HeaderEventSeq))
	}
	ev := api.Event{Type: api.EventType(m.Header.Get(HeaderEvent))}
	if !api.ValidEventType(ev.Type) {
		return bad("%s %q", HeaderEvent, ev.Type)
	}
	if s := m.Header.Get(HeaderEventID); s != "" {
		if ev.ID, err = strconv.ParseUint(s, 10, 64); err != nil {
			return bad("%s %q", HeaderEventID, s)
		}
	}
	switch more := m.Header.Get(HeaderEventMore); {
	case more == "1" && (ev.Type == api.EventPut || ev.Type == api.EventDelete) && ev.ID != 0:
		ev.More = true
	case more != "":
		return bad("%s %q on a %s event", HeaderEventMore, more, ev.Type)
	}
	if ev.Type == api.EventError {
		var body api.ErrorJSON
		if err := decodeStrict(m.Data, &body); err != nil || body.Error.Code == "" {
			return bad("error %q", m.Data)
		}
		ev.Err = api.FromCode(body.Error.Code, body.Error.Message)
		return n, ev, nil
	}
	var body api.EventJSON
	if err := decodeStrict(m.Data, &body); err != nil {
		return bad("%v", err)
	}
	if ev.Token, err = api.ParseToken(body.Token); err != nil {
		return bad("token: %v", err)
	}
	switch ev.Type {
	case api.EventPut, api.EventDelete:
		if err := api.ValidateKey(body.Key); err != nil || body.Revision == 0 {
			return bad("change of key %q at revision %d", body.Key, body.Revision)
		}
		if ev.ID != 0 && ev.ID != body.Revision {
			return bad("id %d of a change at revision %d", ev.ID, body.Revision)
		}
		if ev.Type == api.EventDelete && body.Value != nil {
			return bad("a delete with a value")
		}
		if t := body.Txn; t != nil {
			// Only changes of the stream belong to a transaction, at
			// or before its revision, which is its last op's.
			if ev.ID == 0 || t.Ops < 1 || t.Revision < body.Revision {
				return bad("transaction %+v of a change at revision %d with id %d", *t, body.Revision, ev.ID)
			}
			ev.Txn = api.TxnMark{Revision: t.Revision, Ops: t.Ops}
		}
		ev.Key, ev.Revision, ev.Value = body.Key, body.Revision, body.Value
		if ev.Type == api.EventPut && ev.Value == nil {
			ev.Value = []byte{}
		}
	default: // synced, progress
		if body.Key != "" || body.Revision != 0 || body.Value != nil || body.Txn != nil {
			return bad("%s event %q", ev.Type, m.Data)
		}
	}
	return n, ev, nil
}

// WatchControlMsg is the body of an acknowledgement (or a stop).
func WatchControlMsg(received uint64, stop bool) []byte {
	b, _ := json.Marshal(WatchControlJSON{Received: received, Stop: stop})
	return b
}

// DecodeWatchControl decodes what a watcher sent to the control subject.
func DecodeWatchControl(data []byte) (WatchControlJSON, error) {
	var c WatchControlJSON
	if err := decodeStrict(data, &c); err != nil {
		return c, api.Errorf(api.ErrInvalidRequest, "invalid watch control message: %w", err)
	}
	return c, nil
}

// decodeStrict decodes exactly one JSON object of known fields.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON object")
	}
	return nil
}

// validSubject reports whether s can be published to: non-empty tokens
// without wildcards or white space.
func validSubject(s string) bool {
	if s == "" || len(s) > 512 || strings.ContainsAny(s, " \t\r\n*>") {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return false
		}
	}
	return true
}
