package replicator

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of a replicator; every series carries the label replica.
const (
	MetricApplied       = "tidemark_replica_applied"
	MetricStreamLast    = "tidemark_replica_stream_last"
	MetricLagMessages   = "tidemark_replica_lag_messages"
	MetricLagSeconds    = "tidemark_replica_lag_seconds"
	MetricReady         = "tidemark_replica_ready"
	MetricMessages      = "tidemark_replica_applied_messages_total"
	MetricBatches       = "tidemark_replica_batches_total"
	MetricBatchMessages = "tidemark_replica_batch_messages"
	MetricApplyDelay    = "tidemark_replica_apply_delay_seconds"
	MetricCacheHits     = "tidemark_replica_cache_hits_total"
	MetricCacheMisses   = "tidemark_replica_cache_misses_total"
	MetricCacheEntries  = "tidemark_replica_cache_entries"
	MetricTombstones    = "tidemark_replica_tombstones"
	MetricTombSwept     = "tidemark_replica_tombstones_collected_total"
)

// applyMetrics are the apply loop's histograms and the timestamp behind
// the lag in seconds. The zero value is ready to use.
type applyMetrics struct {
	once   sync.Once
	batch  prometheus.Histogram // messages per committed transaction
	delay  prometheus.Histogram // publish to commit of each batch's last message
	lastTS atomic.Int64         // stream timestamp of the last applied message, Unix ns
}

func (m *applyMetrics) init(id string) {
	m.once.Do(func() {
		labels := prometheus.Labels{"replica": id}
		m.batch = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: MetricBatchMessages, Help: "Messages applied per Badger transaction.",
			ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(1, 4, 7), // 1 .. 4096
		})
		m.delay = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: MetricApplyDelay, Help: "Time from a message's publish to the commit of the batch that applied it (the batch's last message).",
			ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14), // 100µs .. 15s
		})
	})
}

// committed records a committed batch; the apply loop calls it after
// advance.
func (r *Replicator) committed(ds []delivery) {
	if len(ds) == 0 {
		return
	}
	m := &r.metrics
	m.init(r.cfg.ID)
	last := ds[len(ds)-1].time
	m.batch.Observe(float64(len(ds)))
	if last > 0 {
		m.lastTS.Store(last)
		m.delay.Observe(max(time.Since(time.Unix(0, last)).Seconds(), 0))
	}
}

// Collector returns the replicator's Prometheus metrics: how far it has
// applied, how far behind the stream it is (in messages and in seconds),
// whether it is ready, and its apply batches. Register it once per
// registry.
func (r *Replicator) Collector() prometheus.Collector {
	r.metrics.init(r.cfg.ID)
	return newCollector(r)
}

type collector struct {
	r     *Replicator
	descs [12]*prometheus.Desc // applied, last, lag messages, lag seconds, ready, messages, batches, cache hits, misses, entries, tombstones, collected
}

func newCollector(r *Replicator) *collector {
	labels := prometheus.Labels{"replica": r.cfg.ID}
	c := &collector{r: r}
	for i, d := range []struct{ name, help string }{
		{MetricApplied, "Last stream sequence applied and committed."},
		{MetricStreamLast, "The stream's last sequence as this replica knows it (from deliveries and acks)."},
		{MetricLagMessages, "Messages in the stream not yet applied: stream_last - applied."},
		{MetricLagSeconds, "While behind, the time since the last applied message was published; 0 when caught up."},
		{MetricReady, "1 when the replica has caught up and serves, else 0."},
		{MetricMessages, "Messages applied by this process."},
		{MetricBatches, "Badger transactions committed by this process."},
		{MetricCacheHits, "Point reads answered from the record cache."},
		{MetricCacheMisses, "Point reads that looked the key up in Badger."},
		{MetricCacheEntries, "Records in the record cache."},
		{MetricTombstones, "Tombstones (deleted keys) in the store as of the last sweep; -1 before the first."},
		{MetricTombSwept, "Tombstones collected after the tombstone horizon by this process."},
	} {
		c.descs[i] = prometheus.NewDesc(d.name, d.help, nil, labels)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	c.r.metrics.batch.Describe(ch)
	c.r.metrics.delay.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	st := r.Stats()
	last := st.Applied
	if r.cfg.Stream != nil {
		last = max(last, r.cfg.Stream.KnownLast())
	}
	lag := last - st.Applied
	var lagSecs float64
	if ts := r.metrics.lastTS.Load(); lag > 0 && ts > 0 {
		lagSecs = max(time.Since(time.Unix(0, ts)).Seconds(), 0)
	}
	ready := 0.0
	if r.Ready() {
		ready = 1
	}
	for i, v := range []float64{float64(st.Applied), float64(last), float64(lag), lagSecs, ready} {
		ch <- prometheus.MustNewConstMetric(c.descs[i], prometheus.GaugeValue, v)
	}
	ch <- prometheus.MustNewConstMetric(c.descs[5], prometheus.CounterValue, float64(st.Messages))
	ch <- prometheus.MustNewConstMetric(c.descs[6], prometheus.CounterValue, float64(st.Batches))
	ch <- prometheus.MustNewConstMetric(c.descs[7], prometheus.CounterValue, float64(st.CacheHits))
	ch <- prometheus.MustNewConstMetric(c.descs[8], prometheus.CounterValue, float64(st.CacheMisses))
	ch <- prometheus.MustNewConstMetric(c.descs[9], prometheus.GaugeValue, float64(st.CacheEntries))
	ch <- prometheus.MustNewConstMetric(c.descs[10], prometheus.GaugeValue, float64(st.Tombstones))
	ch <- prometheus.MustNewConstMetric(c.descs[11], prometheus.CounterValue, float64(st.TombstonesSwept))
	r.metrics.batch.Collect(ch)
	r.metrics.delay.Collect(ch)
}
