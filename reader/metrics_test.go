package reader_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidemark/tidemark/reader"
)

// TestMetrics checks that reads are counted by operation and outcome and
// that token reads land in the wait histogram.
func TestMetrics(t *testing.T) {
	f := setup(t)
	tok := f.put(t, "a", "1")
	ctx := context.Background()
	if _, err := f.r.Get(ctx, api.GetRequest{Key: "a", ReadSpec: api.ReadSpec{Token: tok}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Get(ctx, api.GetRequest{Key: "missing"}); err == nil {
		t.Fatal("Get(missing) succeeded")
	}
	if _, err := f.r.Scan(ctx, api.ScanRequest{}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(f.r.Collector())
	for _, tc := range []struct {
		op, outcome string
		want        float64
	}{
		{"get", reader.OutcomeOK, 1},
		{"get", api.CodeNotFound, 1},
		{"scan", reader.OutcomeOK, 1},
		{"get", api.CodeTokenWaitTimeout, 0},
	} {
		got := counterValue(t, reg, reader.MetricReads, map[string]string{"replica": "r1", "op": tc.op, "outcome": tc.outcome})
		if got != tc.want {
			t.Errorf("%s{op=%s,outcome=%s}=%v, want %v", reader.MetricReads, tc.op, tc.outcome, got, tc.want)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == reader.MetricTokenWait {
			// One read carried a token.
			if got, want := mf.GetMetric()[0].GetHistogram().GetSampleCount(), uint64(1); got != want {
				t.Fatalf("%s count=%d, want %d", reader.MetricTokenWait, got, want)
			}
		}
	}
}

// counterValue returns the value of the counter name with labels in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
