package writer

import (
	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/stream"

	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of a writer.
const (
	MetricWrites       = "tidemark_writer_writes_total"
	MetricWriteSeconds = "tidemark_writer_write_seconds"
	// MetricBatches counts group commit's atomic batches by outcome
	// (BatchCommitted, BatchRefused, BatchUnknown).
	MetricBatches = "tidemark_writer_batches_total"
	// MetricBatchedWrites counts the messages that committed batches
	// stored.
	MetricBatchedWrites = "tidemark_writer_batched_messages_total"
)

// Outcomes of a group commit batch. A refused batch stored nothing, and a
// batch whose answer did not come may or may not be stored: the messages of
// both are published again one by one, under their message ids.
const (
	BatchCommitted = "committed"
	BatchRefused   = "refused"
	BatchUnknown   = "unknown"
)

// OutcomeOK is the outcome label of a write that succeeded; a failed
// write's outcome is its error code (api.Code).
const OutcomeOK = "ok"

// writeMetrics are a writer's metrics, with the successful writes' series
// resolved up front. The zero value is ready to use.
type writeMetrics struct {
	once    sync.Once
	writes  *prometheus.CounterVec
	seconds *prometheus.HistogramVec
	okPut   prometheus.Counter
	okDel   prometheus.Counter
	secPut  prometheus.Observer
	secDel  prometheus.Observer

	batches   *prometheus.CounterVec
	batched   prometheus.Counter
	committed prometheus.Counter
}

func (m *writeMetrics) init() {
	m.once.Do(func() {
		m.writes = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricWrites, Help: "Writes by operation (put, delete) and outcome (ok or the error code).",
		}, []string{"op", "outcome"})
		m.seconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: MetricWriteSeconds, Help: "Time from a write's arrival at the writer to its publish ack, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 16), // 50µs .. 47s
		}, []string{"op"})
		m.okPut = m.writes.WithLabelValues(opLabel(api.OpPut), OutcomeOK)
		m.okDel = m.writes.WithLabelValues(opLabel(api.OpDelete), OutcomeOK)
		m.secPut = m.seconds.WithLabelValues(opLabel(api.OpPut))
		m.secDel = m.seconds.WithLabelValues(opLabel(api.OpDelete))
		m.batches = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricBatches, Help: "Group commit's atomic batches by outcome (committed, refused, unknown).",
		}, []string{"outcome"})
		m.committed = m.batches.WithLabelValues(BatchCommitted)
		m.batched = prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricBatchedWrites, Help: "Messages stored by group commit's committed batches.",
		})
	})
}

// batch counts a group commit batch of n messages with its outcome.
func (m *writeMetrics) batch(outcome string, n int) {
	m.init()
	if outcome == BatchCommitted {
		m.committed.Inc()
		m.batched.Add(float64(n))
		return
	}
	m.batches.WithLabelValues(outcome).Inc()
}

func (m *writeMetrics) observe(op api.Op, start time.Time, err error) {
	m.init()
	d := time.Since(start).Seconds()
	switch {
	case err == nil && op == api.OpPut:
		m.okPut.Inc()
		m.secPut.Observe(d)
		return
	case err == nil && op == api.OpDelete:
		m.okDel.Inc()
		m.secDel.Observe(d)
		return
	}
	outcome := OutcomeOK
	if err != nil {
		outcome = api.Code(err)
	}
	m.writes.WithLabelValues(opLabel(op), outcome).Inc()
	m.seconds.WithLabelValues(opLabel(op)).Observe(d)
}

// opLabel is the op label of a write's metrics: put or delete, as the
// gateway's metrics name them; anything else is invalid, which bounds the
// label's values.
func opLabel(op api.Op) string {
	switch op {
	case api.OpPut:
		return "put"
	case api.OpDelete:
		return "delete"
	case stream.OpTxn:
		return "txn"
	}
	return "invalid"
}
