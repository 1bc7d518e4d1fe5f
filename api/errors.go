package api

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors shared by every role. Each maps to one error code of the
// API; Code and FromCode convert between the two so that an error crosses a
// NATS hop and still matches with errors.Is.
var (
	// ErrInvalidToken means a session token could not be parsed.
	ErrInvalidToken = errors.New("invalid token")
	// ErrTokenStreamMismatch means a token belongs to another (or a recreated) stream.
	ErrTokenStreamMismatch = errors.New("token belongs to another stream")
	// ErrTokenFromFuture means a token is ahead of the stream's last sequence.
	ErrTokenFromFuture = errors.New("token is ahead of the stream")
	// ErrInvalidKey means a key is empty, too long or not UTF-8.
	ErrInvalidKey = errors.New("invalid key")
	// ErrInvalidRequest means a request is malformed in some other way.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrNotFound means the key does not exist (or was deleted).
	ErrNotFound = errors.New("not found")
	// ErrRevisionMismatch means a conditional write lost.
	ErrRevisionMismatch = errors.New("revision mismatch")
	// ErrValueTooLarge means a value is over the configured limit.
	ErrValueTooLarge = errors.New("value too large")
	// ErrUnavailable means NATS, the stream or every replica is unreachable.
	ErrUnavailable = errors.New("unavailable")
	// ErrTokenWaitTimeout means no replica reached the token in time.
	ErrTokenWaitTimeout = errors.New("token wait timeout")
	// ErrOutOfOrder means a session's write arrived after a later write of
	// the same session had been stored; it is not applied.
	ErrOutOfOrder = errors.New("write out of session order")
	// ErrWriteIDReused means a write id already names a different write
	// (another key, op, value, condition or session number).
	ErrWriteIDReused = errors.New("write id reused")
	// ErrUnknownReplica means a read named a replica that no one serves.
	ErrUnknownReplica = errors.New("unknown replica")
	// ErrResumePointCompacted means a watch asked to resume from a
	// revision the replicas no longer hold; the client lists again.
	ErrResumePointCompacted = errors.New("resume point compacted")
	// ErrInternal is an unexpected failure.
	ErrInternal = errors.New("internal error")
)

// Error codes, as they appear in HTTP error bodies and NATS error headers.
const (
	CodeInvalidToken         = "invalid_token"
	CodeInvalidKey           = "invalid_key"
	CodeInvalidRequest       = "invalid_request"
	CodeTokenStreamMismatch  = "token_stream_mismatch"
	CodeTokenFromFuture      = "token_from_future"
	CodeNotFound             = "not_found"
	CodeRevisionMismatch     = "revision_mismatch"
	CodeValueTooLarge        = "value_too_large"
	CodeUnavailable          = "unavailable"
	CodeTokenWaitTimeout     = "token_wait_timeout"
	CodeOutOfOrder           = "write_out_of_order"
	CodeWriteIDReused        = "write_id_reused"
	CodeUnknownReplica       = "unknown_replica"
	CodeResumePointCompacted = "resume_point_compacted"
	CodeInternal             = "internal"
)

var codes = []struct {
	err  error
	code string
}{
	{ErrInvalidToken, CodeInvalidToken},
	{ErrTokenStreamMismatch, CodeTokenStreamMismatch},
	{ErrTokenFromFuture, CodeTokenFromFuture},
	{ErrInvalidKey, CodeInvalidKey},
	{ErrInvalidRequest, CodeInvalidRequest},
	{ErrNotFound, CodeNotFound},
	{ErrRevisionMismatch, CodeRevisionMismatch},
	{ErrValueTooLarge, CodeValueTooLarge},
	{ErrUnavailable, CodeUnavailable},
	{ErrTokenWaitTimeout, CodeTokenWaitTimeout},
	{ErrOutOfOrder, CodeOutOfOrder},
	{ErrWriteIDReused, CodeWriteIDReused},
	{ErrUnknownReplica, CodeUnknownReplica},
	{ErrResumePointCompacted, CodeResumePointCompacted},
	{ErrInternal, CodeInternal},
}

// Code returns the API error code of err, or CodeInternal when err wraps none
// of the sentinels.
func Code(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return CodeInternal
}

// FromCode rebuilds an error from a code and message received over the wire,
// wrapping the matching sentinel so that errors.Is works on the far side.
func FromCode(code, message string) error {
	for _, c := range codes {
		if c.code == code {
			if message == "" || message == c.err.Error() {
				return c.err
			}
			return &codedError{sentinel: c.err, msg: message}
		}
	}
	return fmt.Errorf("%w: %s: %s", ErrInternal, code, message)
}

// Errorf returns an error that wraps sentinel with a formatted message. The
// message is what clients see, so it should say what was wrong. A %w verb
// keeps its operand as the error's cause: errors.Is and errors.As reach it
// (replicator.ErrGap behind ErrUnavailable, say), except for the sentinels
// of this package, so the error has one code, sentinel's, however it came
// about.
func Errorf(sentinel error, format string, args ...any) error {
	if !strings.Contains(format, "%w") {
		return &codedError{sentinel: sentinel, msg: fmt.Sprintf(format, args...)}
	}
	w := fmt.Errorf(format, args...)
	return &causedError{codedError{sentinel: sentinel, msg: w.Error()}, []error{sentinel, cause{w}}}
}

// codedError carries a client-facing message for a sentinel.
type codedError struct {
	sentinel error
	msg      string
}

func (e *codedError) Error() string { return e.msg }
func (e *codedError) Unwrap() error { return e.sentinel }

// causedError is a codedError made from a cause (Errorf with %w).
type causedError struct {
	codedError
	wraps []error // the sentinel and the cause
}

func (e *causedError) Unwrap() []error { return e.wraps }

// cause is the cause of a causedError as errors.Is and errors.As see it:
// everything it wraps but the sentinels of this package, so that an error
// has one code, its own sentinel's (Code).
type cause struct{ err error }

func (c cause) Error() string { return c.err.Error() }

func (c cause) Is(target error) bool {
	for _, s := range codes {
		if target == s.err {
			return false
		}
	}
	return errors.Is(c.err, target)
}

func (c cause) As(target any) bool { return errors.As(c.err, target) }

// Refused reports whether a failed write with error code code was certainly
// not stored: the writer refused it before or instead of publishing it.
// Any other failure (the writer or the transport gave up waiting, something
// unexpected) may have stored it, and a retry must reuse its write id.
func Refused(code string) bool {
	switch code {
	case CodeInvalidToken, CodeInvalidKey, CodeInvalidRequest,
		CodeTokenStreamMismatch, CodeTokenFromFuture, CodeRevisionMismatch,
		CodeValueTooLarge, CodeOutOfOrder, CodeWriteIDReused, CodeNotFound:
		return true
	}
	return false
}
