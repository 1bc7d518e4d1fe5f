package reader

import (
	"github.com/tidemark/tidemark/internal/metrics"

	"github.com/tidemark/tidemark/api"

	"context"
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

// Get reads one key as of at least the request's token. On
// api.ErrNotFound the result still carries the token and, for a deleted
// key, the delete's revision.
func (r *Reader) Get(ctx context.Context, req api.GetRequest) (api.GetResult, error) {
	start := time.Now()
	res, err := r.get(ctx, req)
	r.metrics.observe(r.cfg.Replica, opGet, start, waits(req.Token, req.Consistency), res.Waited, err)
	return res, err
}

// Scan reads a page of live keys under a prefix as of at least the
// request's token.
func (r *Reader) Scan(ctx context.Context, req api.ScanRequest) (api.ScanResult, error) {
	start := time.Now()
	res, err := r.scan(ctx, req)
	r.metrics.observe(r.cfg.Replica, opScan, start, waits(req.Token, req.Consistency), res.Waited, err)
	return res, err
}

// waits reports whether a read may wait, and so counts in the wait
// histogram.
func waits(tok api.Token, c api.Consistency) bool {
	return !tok.IsZero() || c == api.Strong
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

func (m *readMetrics) observe(replica string, op int, start time.Time, waits bool, waited time.Duration, err error) {
	m.init(replica)
	if err == nil {
		m.count[op][0].Inc()
	} else if code := api.Code(err); m.index[code] > 0 {
		m.count[op][m.index[code]].Inc()
	} else {
		m.reads.WithLabelValues(opNames[op], code).Inc() // a code not listed
	}
	m.latency[op].Observe(time.Since(start).Seconds())
	if waits {
		m.wait.Observe(waited.Seconds())
	}
}

// Collector returns the reader's Prometheus metrics: reads by operation and
// outcome, read latency and token wait time. Register it once per
// registry.
func (r *Reader) Collector() prometheus.Collector {
	r.metrics.init(r.cfg.Replica)
	return metrics.Collectors{r.metrics.reads, r.metrics.seconds, r.metrics.wait}
}
