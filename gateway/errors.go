package gateway

import (
	"github.com/tidemark/tidemark/api"

	"encoding/json"
	"errors"
	"net/http"
)

// statusOf is the one table from error codes to HTTP statuses.
func statusOf(code string) int {
	switch code {
	case api.CodeInvalidToken, api.CodeInvalidKey, api.CodeInvalidRequest,
		api.CodeTokenStreamMismatch, api.CodeTokenFromFuture, api.CodeUnknownReplica:
		return http.StatusBadRequest
	case api.CodeNotFound:
		return http.StatusNotFound
	case api.CodeRevisionMismatch:
		return http.StatusPreconditionFailed
	case api.CodeOutOfOrder:
		return http.StatusConflict
	case api.CodeWriteIDReused:
		return http.StatusUnprocessableEntity
	case api.CodeValueTooLarge:
		return http.StatusRequestEntityTooLarge
	case api.CodeResumePointCompacted:
		return http.StatusGone
	case api.CodeUnavailable:
		return http.StatusServiceUnavailable
	case api.CodeTokenWaitTimeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

// writeError writes err as the JSON error body with its status. Statuses a
// client should retry carry Retry-After.
func writeError(w http.ResponseWriter, err error) int {
	body := api.ErrorBodyOf(err)
	status := statusOf(body.Error.Code)
	if errors.Is(err, api.ErrInternal) || body.Error.Code == api.CodeInternal {
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
