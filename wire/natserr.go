package wire

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What NATS and JetStream errors mean to Tidemark, in one place: the
// writer, the replicas, the client and the connection code all ask these.

// Transient reports whether a failed request to NATS or JetStream may
// succeed if repeated: nobody answered (a stream leader is being elected,
// the server is restarting), the answer did not come in time, the
// connection is reconnecting, or JetStream said it is temporarily
// unavailable.
func Transient(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, nats.ErrDisconnected):
		return true
	case errors.As(err, &apiErr):
		return apiErr.Code == 503
	}
	return false
}

// Closed reports whether err says the NATS connection is gone for good.
func Closed(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionDraining) ||
		errors.Is(err, nats.ErrInvalidConnection)
}

// Permanent reports connection errors that retrying cannot fix: bad
// credentials or TLS set-up.
func Permanent(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired) ||
		errors.Is(err, nats.ErrSecureConnRequired) || errors.Is(err, nats.ErrSecureConnWanted)
}

// APIErrorCode returns the JetStream error code err carries, or 0.
func APIErrorCode(err error) jetstream.ErrorCode {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode
	}
	return 0
}

// WrongLastSeq reports whether err is JetStream's refusal of a publish
// whose expected last sequence of the subject did not hold.
func WrongLastSeq(err error) bool {
	c := APIErrorCode(err)
	return c == jetstream.JSErrCodeStreamWrongLastSequence || c == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
