package api

import (
	"time"
	"unicode/utf8"
)

// WriteRequest is a put or a delete as a writer receives it.
type WriteRequest struct {
	// Op is OpPut or OpDelete.
	Op Op
	// Key is the key to write.
	Key string
	// Value is the value of a put.
	Value []byte
	// Token is the session's token, if any.
	Token Token
	// WriteID identifies the write for deduplication of retries; the writer
	// makes one up when it is empty.
	WriteID string
	// IfRevision, when not zero, makes the write happen only if the key's
	// current revision is IfRevision.
	IfRevision uint64
	// IfAbsent makes the write happen only if the key does not exist.
	IfAbsent bool
	// Session and SessionSeq, when set, order the write within its
	// session: a write whose SessionSeq is not above the highest one
	// already stored for Session is never applied (monotonic writes).
	Session    string
	SessionSeq uint64
	// TTL, when not zero, makes a put's key expire TTL after the put in
	// stream time (MinTTL to MaxTTL); a delete carries none.
	TTL time.Duration
}

// Validate checks everything about a write that needs no server: its key,
// op, write id, condition, session and TTL. The value's size is the
// writer's to check, against its limit.
func (w WriteRequest) Validate() error {
	if err := ValidateKey(w.Key); err != nil {
		return err
	}
	switch w.Op {
	case OpPut:
	case OpDelete:
		if len(w.Value) != 0 {
			return Errorf(ErrInvalidRequest, "delete with a value")
		}
		if w.IfAbsent {
			return Errorf(ErrInvalidRequest, "If-None-Match on a delete: a delete cannot require the key to be absent")
		}
	default:
		return Errorf(ErrInvalidRequest, "unknown op %q: want %s or %s", w.Op, OpPut, OpDelete)
	}
	return w.checkHeaders()
}

// checkHeaders checks the parts of a write that its headers carry.
func (w WriteRequest) checkHeaders() error {
	if len(w.WriteID) > MaxWriteIDLen {
		return Errorf(ErrInvalidRequest, "write id longer than %d bytes", MaxWriteIDLen)
	}
	for i := 0; i < len(w.WriteID); i++ {
		if c := w.WriteID[i]; c < 0x20 || c == 0x7f {
			return Errorf(ErrInvalidRequest, "write id contains a control character")
		}
	}
	if w.IfAbsent && w.IfRevision != 0 {
		return Errorf(ErrInvalidRequest, "If-Match and If-None-Match together")
	}
	if w.TTL != 0 {
		if w.Op == OpDelete {
			return Errorf(ErrInvalidRequest, "TTL on a delete: only a put has a time to live")
		}
		if err := checkTTL(w.TTL); err != nil {
			return err
		}
	}
	return checkSession(w.Session, w.SessionSeq)
}

// WriteResult is the outcome of a write.
type WriteResult struct {
	// Key is the key written.
	Key string
	// Revision is the write's stream sequence.
	Revision uint64
	// Token is the session's new token.
	Token Token
}

// ReadSpec is what every read says besides what it reads: the session's
// token, how long to wait for it, the consistency level and the routing.
// GetRequest and ScanRequest embed it.
type ReadSpec struct {
	// Token is the session's token; the read reflects at least this position.
	Token Token
	// Wait bounds how long the read may wait for the token; 0 means the
	// server's default.
	Wait time.Duration
	// Consistency is the read's level; "" is Session.
	Consistency Consistency
	// Replica, when set, sends the read to that replica only; it is routing
	// information, carried by the subject, not by the request.
	Replica string
	// Forward, when the chosen replica cannot reach the token in time,
	// tries the freshest other replica before failing (routing only).
	Forward bool
}

// GetRequest is a point read.
type GetRequest struct {
	// Key is the key to read.
	Key string
	ReadSpec
}

// SplitForward splits the wait of a read with Forward between the first
// replica and the one it is forwarded to: the last quarter is kept for the
// second.
func SplitForward(wait time.Duration) (first, rest time.Duration) {
	rest = wait / 4
	return wait - rest, rest
}

// ServedBy is what every read reports of how it was served. GetResult and
// ScanResult embed it.
type ServedBy struct {
	// Replica is the id of the replica that served the read.
	Replica string
	// Applied is the replica's applied sequence at the read.
	Applied uint64
	// Waited is how long the read waited for the token.
	Waited time.Duration
	// StreamLast is the stream's last sequence as the replica knew it.
	StreamLast uint64
}

// GetResult is the outcome of a point read. On ErrNotFound it still carries
// the token and, for a deleted key, the delete's revision.
type GetResult struct {
	// Record is the key's state; Revision is the delete's for a deleted key.
	Record Record
	// Token is the session's new token, max(request token, applied).
	Token Token
	ServedBy
}

// ScanRequest is a prefix scan.
type ScanRequest struct {
	// Prefix selects the keys; empty selects all.
	Prefix string
	// After starts the page after this key.
	After string
	// Limit is the most keys a page holds; 0 means DefaultScanLimit. A page
	// holds fewer when their values would not fit one reply (PageBudget), and
	// then has a Next: only an empty Next ends a scan.
	Limit int
	ReadSpec
}

// Scan limits: the default and largest count of keys in a page. Pages are
// bounded by bytes too (PageBudget).
const (
	DefaultScanLimit = 100
	MaxScanLimit     = 1000
)

// Validate checks a scan request's prefix, cursor and limit, and sets the
// default limit.
func (s *ScanRequest) Validate() error {
	if len(s.Prefix) > MaxKeyLen || !utf8.ValidString(s.Prefix) {
		return Errorf(ErrInvalidKey, "invalid prefix: want up to %d bytes of UTF-8", MaxKeyLen)
	}
	if s.After != "" {
		if err := ValidateKey(s.After); err != nil {
			return Errorf(ErrInvalidRequest, "invalid after: %v", err)
		}
	}
	switch {
	case s.Limit == 0:
		s.Limit = DefaultScanLimit
	case s.Limit < 0 || s.Limit > MaxScanLimit:
		return Errorf(ErrInvalidRequest, "invalid limit %d: want 1 to %d", s.Limit, MaxScanLimit)
	}
	return nil
}

// ScanResult is a page of a prefix scan.
type ScanResult struct {
	// Items are the live keys of the page, in key order.
	Items []Record
	// Next is the After of the next page, or "" on the last page; a page
	// cut short by bytes has one however few items it holds.
	Next string
	// Token is the session's new token.
	Token Token
	ServedBy
}

// Op is the kind of a write.
type Op string

// The write operations carried by stream messages.
const (
	OpPut    Op = "put"
	OpDelete Op = "del"
)

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
