package gateway

import (
	"github.com/tidemark/tidemark/api"

	"context"
	_ "embed"
	"net/http"
	"time"
)

// Paths of the status.
const (
	statusJSONPath = "/v1/status"
	statusPagePath = "/status"
)

//go:embed status.html
var statusPage []byte

// Status is what GET /v1/status answers: the stream, the replicas and the
// writers as the Monitor sees them, and what this gateway observed itself.
type Status struct {
	Time    time.Time     `json:"time"`
	Gateway GatewayStatus `json:"gateway"`
	// Stream, Replicas and Writers are known only with a Monitor
	// (Config.Monitor); Writers is null when the writers are not looked for.
	Stream       *StreamStatus `json:"stream"`
	Replicas     []ReplicaView `json:"replicas"`
	Writers      []WriterView  `json:"writers"`
	WritersError string        `json:"writers_error,omitempty"`
	// Wait is the read-your-writes wait of the reads this gateway served.
	Wait WaitStatus `json:"wait"`
	// Errors counts the error responses this gateway sent, by code.
	Errors []ErrorCount `json:"errors"`
}

// GatewayStatus is the gateway's own readiness.
type GatewayStatus struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

// Status returns the status as GET /v1/status answers it.
func (g *Gateway) Status(ctx context.Context) Status {
	st := Status{Time: time.Now(), Replicas: []ReplicaView{}, Errors: []ErrorCount{}}
	if err := g.cfg.Ready(); err != nil {
		st.Gateway.Reason = err.Error()
	} else {
		st.Gateway.Ready = true
	}
	if m := g.cfg.Monitor; m != nil {
		ss, replicas, writers, werr := m.look(ctx)
		st.Stream, st.Replicas, st.WritersError = &ss, replicas, werr
		if m.cfg.WriterService != "" {
			st.Writers = writers
		}
	}
	var errs []ErrorCount
	st.Wait, errs = g.metrics.recent.snapshot()
	st.Errors = append(st.Errors, errs...)
	return st
}

func (g *Gateway) serveStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, api.ErrorBodyOf(
			api.Errorf(api.ErrInvalidRequest, "method %s not allowed", r.Method)))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.EscapedPath() == statusPagePath {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:")
		_, _ = w.Write(statusPage)
		return
	}
	writeJSON(w, http.StatusOK, g.Status(r.Context()))
}

// writeError is the package's writeError that also counts the error by its
// code for the status.
func (g *Gateway) writeError(w http.ResponseWriter, err error) int {
	g.metrics.recent.errored(api.ErrorBodyOf(err).Error.Code)
	return writeError(w, err)
}
