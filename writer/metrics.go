package writer

import (
	"github.com/tidemark/tidemark/api"

	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of a writer.
const (
	MetricWrites       = "tidemark_writer_writes_total"
	MetricWriteSeconds = "tidemark_writer_write_seconds"
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
	})
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
	}
	return "invalid"
}
