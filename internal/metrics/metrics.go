// Package metrics holds the Prometheus helpers the roles share.
package metrics

import "github.com/prometheus/client_golang/prometheus"

// Collectors is several Prometheus collectors as one, so that a component
// hands its caller a single collector to register.
type Collectors []prometheus.Collector

// Describe implements prometheus.Collector.
func (cs Collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (cs Collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}
