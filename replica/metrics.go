package replica

import "github.com/prometheus/client_golang/prometheus"

// Collector returns the replica's Prometheus metrics: its replicator's
// (applied, lag, batches) and its reader's (reads, token waits). Register
// it once per registry.
func (r *Replica) Collector() prometheus.Collector {
	return collectors{r.repl.Collector(), r.rd.Collector()}
}

// collectors is several collectors as one.
type collectors []prometheus.Collector

// Describe implements prometheus.Collector.
func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}
