// Package health serves the probes every role answers: /healthz (the
// process is up) and /readyz (it does its job now, or why not).
package health

import (
	"io"
	"net/http"
)

// Paths of the probes.
const (
	HealthzPath = "/healthz"
	ReadyzPath  = "/readyz"
)

// Healthz answers the liveness probe: 200 "ok".
func Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok\n")
}

// Readyz returns the readiness probe of ready: 200 "ready", or 503 "not
// ready: " and ready's error.
func Readyz(ready func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if err := ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready: "+err.Error()+"\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	}
}

// Mux serves both probes and, when it is not nil, metrics on /metrics.
func Mux(ready func() error, metrics http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	if metrics != nil {
		mux.Handle("/metrics", metrics)
	}
	mux.HandleFunc(HealthzPath, Healthz)
	mux.Handle(ReadyzPath, Readyz(ready))
	return mux
}
