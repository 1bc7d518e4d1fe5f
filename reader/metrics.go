package reader

import (
	"github.com/tidemark/tidemark/internal/metrics"

	"github.com/tidemark/tidemark/api"

	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of a reader; every series carries the label replica.
const (
	MetricReads       = "tidemark_reader_reads_total"
	MetricReadSeconds = "tidemark_reader_read_seconds"
	MetricTokenWait   = "tidemark_reader_token_wait_seconds"
)

// OutcomeOK is the outcome label of a read that succeeded; a failed read's
// outcome is its error code (api.Code).
const OutcomeOK = "ok"

// waits reports whether a read of spec may wait, and so counts in the wait
// histogram.
func waits(spec api.ReadSpec) bool {
	return !spec.Token.IsZero() || spec.Consistency == api.Strong
}

const (
	opGet = iota
	opScan
	numOps
)

var opNames = [numOps]string{"get", "scan"}

// outcomes are the outcome labels whose series exist from the start,
// OutcomeOK first; the rest are the error codes a read can end with.
var outcomes = []string{OutcomeOK,
	api.CodeNotFound, api.CodeTokenWaitTimeout, api.CodeInvalidToken, api.CodeInvalidKey,
	api.CodeInvalidRequest, api.CodeTokenStreamMismatch, api.CodeTokenFromFuture,
	api.CodeUnavailable, api.CodeInternal,
}

// readMetrics are a reader's metrics, with the per-outcome counters
// resolved up front so that a read pays no label lookup. The zero value is
// ready to use.
type readMetrics struct {
	once    sync.Once
	reads   *prometheus.CounterVec
	seconds *prometheus.HistogramVec
	wait    prometheus.Histogram
	count   [numOps][]prometheus.Counter // by op, then outcome index
	latency [numOps]prometheus.Observer
	index   map[string]int // outcome -> index
}

func (m *readMetrics) init(replica string) {
	m.once.Do(func() {
		labels := prometheus.Labels{"replica": replica}
		m.reads = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricReads, Help: "Reads served by this replica, by operation (get, scan) and outcome (ok or the error code).",
			ConstLabels: labels,
		}, []string{"op", "outcome"})
		m.seconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: MetricReadSeconds, Help: "Time to serve a read, token wait included, by operation.",
			ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.00001, 2.5, 16), // 10µs .. 9s
		}, []string{"op"})
		m.wait = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: MetricTokenWait, Help: "How long reads that carry a token (or ask for strong consistency) waited for the replica to reach it; 0 when it already had.",
			ConstLabels: labels, Buckets: append([]float64{0}, prometheus.ExponentialBuckets(0.00005, 2.5, 14)...), // 0, 50µs .. 7s
		})
		m.index = make(map[string]int, len(outcomes))
		for i, o := range outcomes {
			m.index[o] = i
		}
		for op := range numOps {
			m.count[op] = make([]prometheus.Counter, len(outcomes))
			for i, o := range outcomes {
				m.count[op][i] = m.reads.WithLabelValues(opNames[op], o)
			}
			m.latency[op] = m.seconds.WithLabelValues(opNames[op])
		}
	})
}

// observe counts a read of op and spec that started at start, served as
// *served, with the outcome *err. Its pointers let a read defer it before
// its result is known.
func (m *readMetrics) observe(replica string, op int, start time.Time, spec api.ReadSpec, served *api.ServedBy, errp *error) {
	m.init(replica)
	err := *errp
	if err == nil {
		m.count[op][0].Inc()
	} else if code := api.Code(err); m.index[code] > 0 {
		m.count[op][m.index[code]].Inc()
	} else {
		m.reads.WithLabelValues(opNames[op], code).Inc() // a code not listed
	}
	m.latency[op].Observe(time.Since(start).Seconds())
	if waits(spec) {
		m.wait.Observe(served.Waited.Seconds())
	}
}

// Collector returns the reader's Prometheus metrics: reads by operation and
// outcome, read latency and token wait time. Register it once per
// registry.
func (r *Reader) Collector() prometheus.Collector {
	r.metrics.init(r.cfg.Replica)
	return metrics.Collectors{r.metrics.reads, r.metrics.seconds, r.metrics.wait}
}
