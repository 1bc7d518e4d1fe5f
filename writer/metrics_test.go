package writer_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/writer"
)

// TestMetrics checks that writes are counted by operation and outcome.
func TestMetrics(t *testing.T) {
	e := testenv.Start(t)
	w := writer.New(writer.Config{Stream: e.Stream})
	ctx := context.Background()
	if _, err := w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "a", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(ctx, api.WriteRequest{Op: api.OpDelete, Key: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: ""}); err == nil {
		t.Fatal("Write with an empty key succeeded")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(w.Collector())
	for _, tc := range []struct {
		op, outcome string
		want        float64
	}{
		{"put", writer.OutcomeOK, 1},
		{"delete", writer.OutcomeOK, 1},
		{"put", api.CodeInvalidKey, 1},
	} {
		if got := writes(t, reg, tc.op, tc.outcome); got != tc.want {
			t.Errorf("%s{op=%s,outcome=%s}=%v, want %v", writer.MetricWrites, tc.op, tc.outcome, got, tc.want)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == writer.MetricWriteSeconds {
			if got, want := len(mf.GetMetric()), 2; got != want {
				t.Fatalf("%s series=%d, want %d (put and del)", writer.MetricWriteSeconds, got, want)
			}
		}
	}
}

// writes returns the write counter of op and outcome in reg.
func writes(t *testing.T, reg *prometheus.Registry, op, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != writer.MetricWrites {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["op"] == op && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
