package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	wait     prometheus.Histogram
	handler  http.Handler
	recent   *recent // the status's recent figures (recent.go)
}

func newMetrics(reg prometheus.Registerer, gat prometheus.Gatherer) *metrics {
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, gat = r, r
	}
	if gat == nil {
		gat = prometheus.DefaultGatherer
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_gateway_requests_total",
			Help: "HTTP API requests by operation and status.",
		}, []string{"op", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tidemark_gateway_request_seconds",
			Help:    "HTTP API request latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
		}, []string{"op"}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tidemark_gateway_token_wait_seconds",
			Help:    "How long reads waited for a replica to reach their token.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 14),
		}),
		handler: promhttp.HandlerFor(gat, promhttp.HandlerOpts{}),
		recent:  newRecent(),
	}
	reg.MustRegister(m.requests, m.latency, m.wait)
	return m
}

func (m *metrics) observe(op string, status int, d time.Duration) {
	m.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

// waited records how long a read waited for its token, zero included, so
// that the histogram's count is the number of reads.
func (m *metrics) waited(d time.Duration) {
	m.recent.waited(d)
	m.wait.Observe(d.Seconds())
}
