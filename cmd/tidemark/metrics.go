package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tidemark/tidemark/stream"
)

// Names of the NATS connection metrics.
const (
	metricNATSConnected  = "tidemark_nats_connected"
	metricNATSReconnects = "tidemark_nats_reconnects_total"
)

// newRegistry returns a Prometheus registry with the Go runtime and
// process metrics, the state of the NATS connection nc, and cs.
func newRegistry(nc *stream.Conn, cs ...prometheus.Collector) *prometheus.Registry {
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
	reg.MustRegister(cs...)
	return reg
}

// metricsHandler serves reg in the Prometheus text format.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
