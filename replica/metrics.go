package replica

import (
	"time"

	"github.com/tidemark/tidemark/internal/metrics"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of a replica's compactor; every series carries the label
// replica. Only a replica that runs a compactor exports them.
const (
	MetricCompactLeader       = "tidemark_compaction_leader"
	MetricCompactPoint        = "tidemark_compaction_point"
	MetricCompactions         = "tidemark_compactions_total"
	MetricCompactRemoved      = "tidemark_compaction_removed_messages_total"
	MetricCompactRemovedBytes = "tidemark_compaction_removed_bytes_total"
	MetricBaseApplied         = "tidemark_base_snapshot_applied"
	MetricBaseBytes           = "tidemark_base_snapshot_bytes"
	MetricBaseAge             = "tidemark_base_snapshot_age_seconds"
	MetricStreamFirst         = "tidemark_stream_first_seq"
	MetricStreamMessages      = "tidemark_stream_messages"
	MetricStreamBytes         = "tidemark_stream_bytes"
)

// Collector returns the replica's Prometheus metrics: its replicator's
// (applied, lag, batches, tombstones), its reader's (reads, token waits)
// and its compactor's. Register it once per registry.
func (r *Replica) Collector() prometheus.Collector {
	cs := metrics.Collectors{r.repl.Collector(), r.rd.Collector()}
	if r.compact != nil {
		cs = append(cs, newCompactCollector(r))
	}
	return cs
}

type compactCollector struct {
	r     *Replica
	descs [11]*prometheus.Desc
}

func newCompactCollector(r *Replica) *compactCollector {
	labels := prometheus.Labels{"replica": r.cfg.ID}
	c := &compactCollector{r: r}
	for i, d := range []struct{ name, help string }{
		{MetricCompactLeader, "1 while this replica is the one that compacts, else 0."},
		{MetricCompactPoint, "The last purge point: the stream starts at or after it."},
		{MetricCompactions, "Purges of the stream by this replica."},
		{MetricCompactRemoved, "Messages those purges removed."},
		{MetricCompactRemovedBytes, "Bytes those purges removed."},
		{MetricBaseApplied, "The stream sequence the newest base snapshot holds everything up to; 0 when none."},
		{MetricBaseBytes, "The newest base snapshot's size."},
		{MetricBaseAge, "The newest base snapshot's age."},
		{MetricStreamFirst, "The stream's first sequence, as the compacting replica last saw it (0: it did not look)."},
		{MetricStreamMessages, "The stream's messages, as the compacting replica last saw them."},
		{MetricStreamBytes, "The stream's bytes, as the compacting replica last saw them."},
	} {
		c.descs[i] = prometheus.NewDesc(d.name, d.help, nil, labels)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *compactCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *compactCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.r.CompactStatus()
	leader := 0.0
	if st.Leader {
		leader = 1
	}
	var applied, bytes, age float64
	if b := st.Base; b != nil {
		applied, bytes, age = float64(b.Applied), float64(b.Bytes), max(time.Since(b.Created).Seconds(), 0)
	}
	for i, v := range []float64{leader, float64(st.Point), float64(st.Compactions), float64(st.Removed), float64(st.RemovedBytes), applied, bytes, age,
		float64(st.StreamFirst), float64(st.StreamMessages), float64(st.StreamBytes)} {
		t := prometheus.GaugeValue
		if i >= 2 && i <= 4 {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[i], t, v)
	}
}
