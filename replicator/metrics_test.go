package replicator_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
)

// TestMetrics checks the replicator's gauges and batch histogram once it
// has applied a few writes, and that two replicas register side by side.
func TestMetrics(t *testing.T) {
	env := testenv.Start(t)
	last := publish(t, env, put("a", "1"), put("b", "2"), del("a"))
	r1 := open(t, env, t.TempDir(), func(c *replicator.Config) { c.ID = "r1" })
	r2 := open(t, env, t.TempDir(), func(c *replicator.Config) { c.ID = "r2" })
	run(t, r1)
	waitApplied(t, r1, last)

	reg := prometheus.NewRegistry()
	reg.MustRegister(r1.Collector(), r2.Collector())
	for _, tc := range []struct {
		replica, name string
		want          float64
	}{
		{"r1", replicator.MetricApplied, float64(last)},
		{"r1", replicator.MetricLagMessages, 0},
		{"r1", replicator.MetricLagSeconds, 0},
		{"r1", replicator.MetricReady, 1},
		{"r1", replicator.MetricMessages, float64(last)},
		{"r2", replicator.MetricApplied, 0},
		{"r2", replicator.MetricLagMessages, float64(last)}, // knows the stream's end from the shared handle
		{"r2", replicator.MetricReady, 0},
	} {
		if got := value(t, reg, tc.name, tc.replica); got != tc.want {
			t.Errorf("%s{replica=%s}=%v, want %v", tc.name, tc.replica, got, tc.want)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != replicator.MetricBatchMessages {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetHistogram().GetSampleSum()
		}
		if got, want := sum, float64(last); got != want {
			t.Fatalf("%s sum=%v, want %v (every message in one batch or another)", replicator.MetricBatchMessages, got, want)
		}
	}
}

// value returns the gauge or counter name of replica in reg.
func value(t *testing.T, reg *prometheus.Registry, name, replica string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "replica" && lp.GetValue() == replica {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{replica=%s}", name, replica)
	return 0
}
