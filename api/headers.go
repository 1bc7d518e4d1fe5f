package api

import (
	"strconv"
	"time"
)

// Headers of the service protocol, on NATS requests and replies. The HTTP
// gateway uses the same names where they make sense.
const (
	HeaderToken       = "Tidemark-Token"
	HeaderKey         = "Tidemark-Key"
	HeaderWait        = "Tidemark-Wait"
	HeaderRevision    = "Tidemark-Revision"
	HeaderWriteID     = "Tidemark-Write-Id"
	HeaderReplica     = "Tidemark-Replica"
	HeaderApplied     = "Tidemark-Applied"
	HeaderWaited      = "Tidemark-Waited"
	HeaderConsistency = "Tidemark-Consistency"
	HeaderOnTimeout   = "Tidemark-On-Timeout"
	HeaderStreamLast  = "Tidemark-Stream-Last"
	HeaderSession     = "Tidemark-Session"
	HeaderSessionSeq  = "Tidemark-Session-Seq"
	// HeaderOp carries the Op of a stream message.
	HeaderOp          = "Tidemark-Op"
	HeaderIfMatch     = "If-Match"
	HeaderIfNoneMatch = "If-None-Match"
	// HeaderTTL gives a put a time to live, as a Go duration ("30s"); an
	// HTTP request may spell it in its canonical form, Tidemark-Ttl.
	HeaderTTL = "Tidemark-TTL"
)

// Bounds of a put's time to live (HeaderTTL).
const (
	MinTTL = time.Second
	// MaxTTL keeps a key's expiry time (the put's stream time plus its
	// TTL) far inside the range of Unix nanoseconds.
	MaxTTL = 100 * 365 * 24 * time.Hour
)

// ParseTTL parses a put's time to live: "" is none, otherwise a Go
// duration from MinTTL to MaxTTL.
func ParseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, Errorf(ErrInvalidRequest, "invalid TTL %q: want a duration like 30s or 1h", s)
	}
	if err := checkTTL(d); err != nil {
		return 0, err
	}
	return d, nil
}

// checkTTL checks a TTL that is set (not 0).
func checkTTL(d time.Duration) error {
	if d < MinTTL || d > MaxTTL {
		return Errorf(ErrInvalidRequest, "invalid TTL %v: want %v to %v", d, MinTTL, MaxTTL)
	}
	return nil
}

// MaxWriteIDLen bounds a client-chosen write id.
const MaxWriteIDLen = 128

// ParseSession parses a write's session id and sequence: both absent, or
// a valid id (ValidID) with a positive sequence.
func ParseSession(id, seq string) (string, uint64, error) {
	if id == "" && seq == "" {
		return "", 0, nil
	}
	if !ValidID(id) {
		return "", 0, invalidSession(id)
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || n == 0 {
		return "", 0, Errorf(ErrInvalidRequest, "invalid session sequence %q: want a positive integer", seq)
	}
	return id, n, nil
}

// checkSession checks a write's session id and number: both absent, or a
// valid id with a positive number.
func checkSession(id string, n uint64) error {
	switch {
	case id == "" && n == 0:
		return nil
	case !ValidID(id):
		return invalidSession(id)
	case n == 0:
		return Errorf(ErrInvalidRequest, "invalid session sequence 0: want a positive integer")
	}
	return nil
}

func invalidSession(id string) error {
	return Errorf(ErrInvalidRequest, "invalid session %q: want 1 to %d letters, digits, '-' or '_'", id, MaxIDLen)
}

// ParseWriteHeaders reads what a write says in its headers, the same over
// HTTP and NATS: its write id, its condition (If-Match: a revision, or
// If-None-Match: *), its session's number and a put's time to live
// (HeaderTTL). It checks them as Validate does, and leaves the key, op and
// value to the caller.
func ParseWriteHeaders(h map[string][]string, req *WriteRequest) error {
	req.WriteID = headerValue(h, HeaderWriteID)
	if s := headerValue(h, HeaderIfMatch); s != "" {
		rev, err := ParseRevision(s)
		if err != nil {
			return err
		}
		req.IfRevision = rev
	}
	switch s := headerValue(h, HeaderIfNoneMatch); s {
	case "":
	case "*":
		req.IfAbsent = true
	default:
		return Errorf(ErrInvalidRequest, "If-None-Match on a write supports only *")
	}
	var err error
	if req.Session, req.SessionSeq, err = ParseSession(headerValue(h, HeaderSession), headerValue(h, HeaderSessionSeq)); err != nil {
		return err
	}
	ttl := headerValue(h, HeaderTTL)
	if ttl == "" {
		ttl = headerValue(h, headerTTLCanonical)
	}
	if req.TTL, err = ParseTTL(ttl); err != nil {
		return err
	}
	return req.checkHeaders()
}

// headerTTLCanonical is HeaderTTL as an HTTP server hands it over.
const headerTTLCanonical = "Tidemark-Ttl"

// headerValue is the first value of header name in h, an HTTP or a NATS
// header, whose names Tidemark writes in their canonical form.
func headerValue(h map[string][]string, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// ParseWait parses a wait bound ("250ms", "2s"); "" is 0 (the default).
func ParseWait(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, Errorf(ErrInvalidRequest, "invalid wait %q: want a duration like 2s or 250ms", s)
	}
	return d, nil
}

// ParseRevision parses an entity tag or revision header value: N or "N".
func ParseRevision(s string) (uint64, error) {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, Errorf(ErrInvalidRequest, "invalid revision %q: want a positive integer", s)
	}
	return n, nil
}

// SetSession writes a write's session ordering headers on h.
func SetSession(h map[string][]string, session string, seq uint64) {
	if session != "" {
		h[HeaderSession] = []string{session}
		h[HeaderSessionSeq] = []string{strconv.FormatUint(seq, 10)}
	}
}
