package replica

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidemark/tidemark/stream"
)

// Collector returns the replica's Prometheus metrics: its replicator's
// (applied, lag, batches) and its reader's (reads, token waits). Register
// it once per registry.
func (r *Replica) Collector() prometheus.Collector {
	return stream.Collectors{r.repl.Collector(), r.rd.Collector()}
}
