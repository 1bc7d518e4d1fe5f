package stream

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// MaxKeyLen is the longest key, in bytes.
const MaxKeyLen = 1024

// Op is the kind of a write.
type Op string

// The write operations carried by stream messages.
const (
	OpPut    Op = "put"
	OpDelete Op = "del"
	// OpSession marks a session order marker: the stream message by which
	// a writer claims a session's write number before it publishes the
	// write (SessionSubject). It changes no key.
	OpSession Op = "session"
)

// Message headers of the envelope, on stream messages.
const (
	// HeaderOp carries the Op of a stream message.
	HeaderOp = "Tidemark-Op"
	// HeaderMsgID is JetStream's deduplication header; Tidemark puts the write id in it.
	HeaderMsgID = "Nats-Msg-Id"
)

// Entry is one decoded stream message: a put or a delete of a key, or a
// session order marker (OpSession, no key).
type Entry struct {
	// Op is OpPut or OpDelete.
	Op Op
	// Key is the key written.
	Key string
	// Value is the value of a put; nil for a delete.
	Value []byte
	// Session and SessionSeq order the write within its session (both
	// empty when the write has no session); see SessionWindow.
	Session    string
	SessionSeq uint64
}

// SessionWindow is how long, in stream time, a session's highest write
// sequence is remembered. Every replica applies the same rule to the same
// stream: a write whose session sequence is not above the highest one
// stored for its session within the window is not applied. Measuring the
// window in the stream's own message timestamps keeps the rule the same on
// every replica, however late each applies the message.
const SessionWindow = 24 * time.Hour

// Record is the state of one key as a replica holds it.
type Record struct {
	// Key is the key.
	Key string
	// Value is the current value; nil for a deleted key.
	Value []byte
	// Revision is the stream sequence of the write that produced this state.
	Revision uint64
	// Deleted reports that the last write of the key was a delete.
	Deleted bool
}

// ValidateKey checks that key is 1 to MaxKeyLen bytes of valid UTF-8.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return Errorf(ErrInvalidKey, "invalid key: empty")
	case len(key) > MaxKeyLen:
		return Errorf(ErrInvalidKey, "invalid key: %d bytes, the limit is %d", len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return Errorf(ErrInvalidKey, "invalid key: not valid UTF-8")
	}
	return nil
}

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

// DecodeEntry decodes a stream message from its subject, its Op header and
// its data. It fails with ErrInvalidRequest on anything a writer would not
// have produced.
func DecodeEntry(prefix, subject, op string, data []byte) (Entry, error) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return Entry{}, Errorf(ErrInvalidRequest, "message subject %q is outside %s.>", subject, prefix)
	}
	if session, ok := strings.CutPrefix(rest, sessionToken+"."); ok {
		switch {
		case !ValidReplicaID(session):
			return Entry{}, Errorf(ErrInvalidRequest, "message subject %q: bad session id", subject)
		case Op(op) != OpSession:
			return Entry{}, Errorf(ErrInvalidRequest, "session marker with op %q", op)
		case len(data) != 0:
			return Entry{}, Errorf(ErrInvalidRequest, "session marker with a body")
		}
		return Entry{Op: OpSession, Session: session}, nil
	}
	k, err := keyEncoding.DecodeString(rest)
	if err != nil {
		return Entry{}, Errorf(ErrInvalidRequest, "message subject %q: bad key encoding", subject)
	}
	key := string(k)
	if err := ValidateKey(key); err != nil {
		return Entry{}, err
	}
	switch Op(op) {
	case OpPut:
		if data == nil {
			data = []byte{}
		}
		return Entry{Op: OpPut, Key: key, Value: data}, nil
	case OpDelete:
		if len(data) != 0 {
			return Entry{}, Errorf(ErrInvalidRequest, "delete message with a body")
		}
		return Entry{Op: OpDelete, Key: key}, nil
	default:
		return Entry{}, Errorf(ErrInvalidRequest, "message op %q is neither put nor del", op)
	}
}

// DecodeMessage decodes a stream message from its subject, headers and data:
// the entry of DecodeEntry plus its session ordering headers.
func DecodeMessage(prefix, subject string, h nats.Header, data []byte) (Entry, error) {
	e, err := DecodeEntry(prefix, subject, header(h, HeaderOp), data)
	if err != nil {
		return Entry{}, err
	}
	session := e.Session
	if e.Session, e.SessionSeq, err = ParseSession(header(h, HeaderSession), header(h, HeaderSessionSeq)); err != nil {
		return Entry{}, err
	}
	if e.Op == OpSession && e.Session != session {
		return Entry{}, Errorf(ErrInvalidRequest, "session marker of %q on the subject of %q", e.Session, session)
	}
	return e, nil
}

// SetSession writes a write's session ordering headers on h.
func SetSession(h nats.Header, session string, seq uint64) {
	if session != "" {
		h.Set(HeaderSession, session)
		h.Set(HeaderSessionSeq, strconv.FormatUint(seq, 10))
	}
}

func validUTF8(s string) bool { return utf8.ValidString(s) }

// ValidReplicaID reports whether id can name a replica: 1 to 64 letters,
// digits, '-' or '_' (it becomes a subject token).
func ValidReplicaID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
