package main

import (
	"github.com/tidemark/tidemark/internal/natsconn"

	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Names of the NATS connection metrics.
const (
	metricNATSConnected  = "tidemark_nats_connected"
	metricNATSReconnects = "tidemark_nats_reconnects_total"
	metricBuildInfo      = "tidemark_build_info"
)

// newRegistry returns a Prometheus registry with the Go runtime and
// process metrics, the state of the NATS connection nc, and cs.
func newRegistry(nc *natsconn.Conn, cs ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"conn": nc.Opts.Name}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: metricNATSConnected, Help: "1 while the NATS connection is connected, else 0.", ConstLabels: labels,
		}, func() float64 {
			if nc.Healthy() {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: metricNATSReconnects, Help: "Times the NATS connection reconnected.", ConstLabels: labels,
		}, func() float64 { return float64(nc.Stats().Reconnects) }),
	)
	reg.MustRegister(buildInfo())
	reg.MustRegister(cs...)
	return reg
}

// buildInfo is the constant 1 labelled with the binary's version and the Go
// version it was built with, so that dashboards can tell which build runs.
func buildInfo() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: metricBuildInfo, Help: "Always 1; its labels name the build.",
		ConstLabels: prometheus.Labels{"version": buildVersion(), "goversion": runtime.Version()},
	}, func() float64 { return 1 })
}

// metricsHandler serves reg in the Prometheus text format.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
