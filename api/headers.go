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
)

// MaxWriteIDLen bounds a client-chosen write id.
const MaxWriteIDLen = 128

// MaxSessionLen bounds a session id.
const MaxSessionLen = 64

// ParseSession parses a write's session id and sequence: both absent, or
// an id of 1 to 64 letters, digits, '-' or '_' with a positive sequence.
func ParseSession(id, seq string) (string, uint64, error) {
	if id == "" && seq == "" {
		return "", 0, nil
	}
	if !ValidReplicaID(id) {
		return "", 0, Errorf(ErrInvalidRequest, "invalid session %q: want 1 to %d letters, digits, '-' or '_'", id, MaxSessionLen)
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || n == 0 {
		return "", 0, Errorf(ErrInvalidRequest, "invalid session sequence %q: want a positive integer", seq)
	}
	return id, n, nil
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
