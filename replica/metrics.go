package replica

import (
	"github.com/tidemark/tidemark/internal/metrics"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns the replica's Prometheus metrics: its replicator's
// (applied, lag, batches) and its reader's (reads, token waits). Register
// it once per registry.
func (r *Replica) Collector() prometheus.Collector {
	return metrics.Collectors{r.repl.Collector(), r.rd.Collector()}
}
