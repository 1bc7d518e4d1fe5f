package stream

import (
	"github.com/tidemark/tidemark/api"

	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// OpSession marks a session order marker: the stream message by which a
// writer claims a session's write number before it publishes the write
// (SessionSubject). It changes no key.
const OpSession api.Op = "session"

// OpTick marks a clock tick: an empty message on TickSubject that a
// replica publishes to move stream time forward on an idle stream, so that
// a key whose time to live has run out expires. It changes no key.
const OpTick api.Op = "tick"

// Message headers of the envelope, on stream messages.
const (
	// HeaderMsgID is JetStream's deduplication header; Tidemark puts the write id in it.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderTTL carries a put's time to live, in whole nanoseconds: the key
	// expires at the message's stream timestamp plus it.
	HeaderTTL = "Tidemark-TTL"
)

// Entry is one decoded stream message: a put or a delete of a key, a
// session order marker (OpSession, no key) or a clock tick (OpTick, no key).
type Entry struct {
	// Op is OpPut, OpDelete, OpSession or OpTick.
	Op api.Op
	// Key is the key written.
	Key string
	// Value is the value of a put; nil for a delete.
	Value []byte
	// Session and SessionSeq order the write within its session (both
	// empty when the write has no session); see SessionWindow.
	Session    string
	SessionSeq uint64
	// TTL is a put's time to live (0: none); see HeaderTTL.
	TTL time.Duration
	// TxnIndex and TxnSize place the message in a transaction of TxnSize
	// ops (HeaderTxn): 0 on its marker (OpTxn), 1 to TxnSize on its ops;
	// both 0 outside a transaction.
	TxnIndex, TxnSize int
}

// SessionWindow is how long, in stream time, a session's highest write
// sequence is remembered. Every replica applies the same rule to the same
// stream: a write whose session sequence is not above the highest one
// stored for its session within the window is not applied. Measuring the
// window in the stream's own message timestamps keeps the rule the same on
// every replica, however late each applies the message.
const SessionWindow = 24 * time.Hour

// keyEncoding turns any key into a single NATS subject token.
var keyEncoding = base64.RawURLEncoding.Strict()

// KeySubject returns the stream subject of key under the stream subject
// prefix: one subject per key, so that JetStream's per-subject sequence
// checks make conditional writes atomic.
func KeySubject(prefix, key string) string {
	return prefix + "." + keyEncoding.EncodeToString([]byte(key))
}

// sessionToken is the subject token between the prefix and a session id in
// SessionSubject. Key subjects have one token after the prefix and session
// subjects two, so the two never meet.
const sessionToken = "session"

// SessionSubject returns the subject of session's order markers under the
// stream subject prefix. Each marker claims the next write number of the
// session, and a session's write is published only while its marker is
// the last message of this subject, so the stream itself keeps a session's
// writes in order across every writer (see package writer).
func SessionSubject(prefix, session string) string {
	return prefix + "." + sessionToken + "." + session
}

// Message encodes the stream message of a put or a delete under the
// stream subject prefix: the key's subject, the op header, the session's
// ordering headers, a put's time to live and its value. DecodeMessage
// reads it back.
func Message(prefix string, req api.WriteRequest) *nats.Msg {
	m := nats.NewMsg(KeySubject(prefix, req.Key))
	m.Header.Set(api.HeaderOp, string(req.Op))
	api.SetSession(m.Header, req.Session, req.SessionSeq)
	if req.Op == api.OpPut {
		m.Data = req.Value
		if req.TTL != 0 {
			m.Header.Set(HeaderTTL, strconv.FormatInt(int64(req.TTL), 10))
		}
	}
	return m
}

// tickSubject is the subject of clock ticks after the prefix: two tokens,
// neither a key subject (one token) nor a session subject (sessionToken
// first).
const tickSubject = "clock.tick"

// TickSubject returns the subject of clock ticks under the stream subject
// prefix.
func TickSubject(prefix string) string { return prefix + "." + tickSubject }

// TickMsg encodes the clock tick that moves the stream's time towards at
// (Unix nanoseconds), the expiry it is published for, on a stream whose
// last sequence is last: it expects that last sequence, so it lands only
// on a stream still idle there, and its message id names at and last, so
// that the ticks of several publishers at one position are stored once.
// DecodeMessage reads it back.
func TickMsg(prefix string, at int64, last uint64) *nats.Msg {
	m := nats.NewMsg(TickSubject(prefix))
	m.Header.Set(api.HeaderOp, string(OpTick))
	m.Header.Set(HeaderMsgID, "tick:"+strconv.FormatInt(at, 10)+":"+strconv.FormatUint(last, 10))
	m.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(last, 10))
	return m
}

// MarkerMsg encodes the order marker by which a write claims number seq of
// session (OpSession, on SessionSubject). DecodeMessage reads it back.
func MarkerMsg(prefix, session string, seq uint64) *nats.Msg {
	m := nats.NewMsg(SessionSubject(prefix, session))
	m.Header.Set(api.HeaderOp, string(OpSession))
	api.SetSession(m.Header, session, seq)
	return m
}

// DecodeEntry decodes a stream message from its subject, its Op header and
// its data. It fails with ErrInvalidRequest on anything a writer would not
// have produced.
func DecodeEntry(prefix, subject, op string, data []byte) (Entry, error) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return Entry{}, api.Errorf(api.ErrInvalidRequest, "message subject %q is outside %s.>", subject, prefix)
	}
	if rest == tickSubject {
		switch {
		case api.Op(op) != OpTick:
			return Entry{}, api.Errorf(api.ErrInvalidRequest, "clock tick with op %q", op)
		case len(data) != 0:
			return Entry{}, api.Errorf(api.ErrInvalidRequest, "clock tick with a body")
		}
		return Entry{Op: OpTick}, nil
	}
	if session, ok := strings.CutPrefix(rest, sessionToken+"."); ok {
		switch {
		case !api.ValidID(session):
			return Entry{}, api.Errorf(api.ErrInvalidRequest, "message subject %q: bad session id", subject)
		case api.Op(op) != OpSession:
			return Entry{}, api.Errorf(api.ErrInvalidRequest, "session marker with op %q", op)
		case len(data) != 0:
			return Entry{}, api.Errorf(api.ErrInvalidRequest, "session marker with a body")
		}
		return Entry{Op: OpSession, Session: session}, nil
	}
	if id, ok := strings.CutPrefix(rest, txnToken+"."); ok {
		switch raw, err := keyEncoding.DecodeString(id); {
		case err != nil || len(raw) == 0 || len(raw) > api.MaxWriteIDLen:
			return Entry{}, api.Errorf(api.ErrInvalidRequest, "message subject %q: bad transaction id", subject)
		case api.Op(op) != OpTxn:
			return Entry{}, api.Errorf(api.ErrInvalidRequest, "transaction marker with op %q", op)
		case len(data) != 0:
			return Entry{}, api.Errorf(api.ErrInvalidRequest, "transaction marker with a body")
		}
		return Entry{Op: OpTxn}, nil
	}
	k, err := keyEncoding.DecodeString(rest)
	if err != nil {
		return Entry{}, api.Errorf(api.ErrInvalidRequest, "message subject %q: bad key encoding", subject)
	}
	key := string(k)
	if err := api.ValidateKey(key); err != nil {
		return Entry{}, err
	}
	switch api.Op(op) {
	case api.OpPut:
		if data == nil {
			data = []byte{}
		}
		return Entry{Op: api.OpPut, Key: key, Value: data}, nil
	case api.OpDelete:
		if len(data) != 0 {
			return Entry{}, api.Errorf(api.ErrInvalidRequest, "delete message with a body")
		}
		return Entry{Op: api.OpDelete, Key: key}, nil
	default:
		return Entry{}, api.Errorf(api.ErrInvalidRequest, "message op %q is neither put nor del", op)
	}
}

// DecodeMessage decodes a stream message from its subject, headers and data:
// the entry of DecodeEntry plus its session ordering headers and a put's
// time to live.
func DecodeMessage(prefix, subject string, h nats.Header, data []byte) (Entry, error) {
	e, err := DecodeEntry(prefix, subject, h.Get(api.HeaderOp), data)
	if err != nil {
		return Entry{}, err
	}
	if vs, ok := h[HeaderTTL]; ok {
		if e.Op != api.OpPut || len(vs) != 1 {
			return Entry{}, api.Errorf(api.ErrInvalidRequest, "%s header on a %s message", HeaderTTL, e.Op)
		}
		if e.TTL, err = parseTTL(vs[0]); err != nil {
			return Entry{}, err
		}
	}
	if e.Op == OpTick && (h.Get(api.HeaderSession) != "" || h.Get(api.HeaderSessionSeq) != "") {
		return Entry{}, api.Errorf(api.ErrInvalidRequest, "clock tick with a session")
	}
	session := e.Session
	if e.Session, e.SessionSeq, err = api.ParseSession(h.Get(api.HeaderSession), h.Get(api.HeaderSessionSeq)); err != nil {
		return Entry{}, err
	}
	if e.Op == OpSession && e.Session != session {
		return Entry{}, api.Errorf(api.ErrInvalidRequest, "session marker of %q on the subject of %q", e.Session, session)
	}
	if err := decodeTxn(&e, h); err != nil {
		return Entry{}, err
	}
	if e.TxnIndex > 0 && e.Session != "" {
		return Entry{}, api.Errorf(api.ErrInvalidRequest, "transaction op with session headers: its marker carries the session")
	}
	return e, nil
}

// parseTTL decodes HeaderTTL strictly: the canonical decimal form of a
// number of nanoseconds from api.MinTTL to api.MaxTTL, as Message writes it.
func parseTTL(s string) (time.Duration, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != s || n < int64(api.MinTTL) || n > int64(api.MaxTTL) {
		return 0, api.Errorf(api.ErrInvalidRequest, "bad %s header %q: want nanoseconds from %d to %d", HeaderTTL, s, int64(api.MinTTL), int64(api.MaxTTL))
	}
	return time.Duration(n), nil
}
