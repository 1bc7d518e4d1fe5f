package gateway

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/tidemark/tidemark/stream"
)

// statusOf is the one table from error codes to HTTP statuses.
func statusOf(code string) int {
	switch code {
	case stream.CodeInvalidToken, stream.CodeInvalidKey, stream.CodeInvalidRequest,
		stream.CodeTokenStreamMismatch, stream.CodeTokenFromFuture, stream.CodeUnknownReplica:
		return http.StatusBadRequest
	case stream.CodeNotFound:
		return http.StatusNotFound
	case stream.CodeRevisionMismatch:
		return http.StatusPreconditionFailed
	case stream.CodeOutOfOrder:
		return http.StatusConflict
	case stream.CodeWriteIDReused:
		return http.StatusUnprocessableEntity
	case stream.CodeValueTooLarge:
		return http.StatusRequestEntityTooLarge
	case stream.CodeUnavailable:
		return http.StatusServiceUnavailable
	case stream.CodeTokenWaitTimeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// writeError writes err as the JSON error body with its status. Statuses a
// client should retry carry Retry-After.
func writeError(w http.ResponseWriter, err error) int {
	body := stream.ErrorBodyOf(err)
	status := statusOf(body.Error.Code)
	if errors.Is(err, stream.ErrInternal) || body.Error.Code == stream.CodeInternal {
		body.Error.Message = "internal error"
	}
	if status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, body)
	return status
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client went away; nothing to do
}
