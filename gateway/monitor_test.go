package gateway

import (
	"github.com/tidemark/tidemark/wire"

	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
)

// clock is a settable time for the monitor's and the recent figures' logic.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)} }
func ad(id string, applied uint64) wire.ReplicaStatus {
	return wire.ReplicaStatus{Replica: id, Stream: "s1", Applied: applied, Rate: 50, Ready: true, State: wire.StateReady}
}

func only(t *testing.T, m *Monitor, st StreamStatus, oldest map[uint64]time.Time) ReplicaView {
	t.Helper()
	vs := m.replicaViews(st, oldest)
	if len(vs) != 1 {
		t.Fatalf("%d replicas, want 1: %+v", len(vs), vs)
	}
	return vs[0]
}

// TestReplicaViewStates follows one replica through what the status shows:
// ready and caught up, lagging while it applies nothing and its oldest
// missing message ages, catching up with progress and ETA once it applies
// again, ready when caught up, and not answering once silent, still listed.
func TestReplicaViewStates(t *testing.T) {
	c := newClock()
	m := NewMonitor(MonitorConfig{})
	m.now = c.now
	m.observe(ad("r1", 100))
	st := StreamStatus{ID: "s1", LastSeq: 100}
	v := only(t, m, st, nil)
	if v.State != wire.StateReady || v.LagMessages != 0 || v.LagSeconds == nil || *v.LagSeconds != 0 {
		t.Fatalf("caught up: %+v", v)
	}

	// The stream moves on; the replica does not (paused). Young lag is no
	// more than lag.
	st.LastSeq = 300
	written := c.t
	oldest := map[uint64]time.Time{101: written}
	c.advance(500 * time.Millisecond)
	m.observe(ad("r1", 100))
	if v = only(t, m, st, oldest); v.State != wire.StateReady || v.LagMessages != 200 {
		t.Fatalf("young lag: state=%s lag=%d, want ready 200", v.State, v.LagMessages)
	}
	for range 4 { // heartbeats, nothing applied
		c.advance(time.Second)
		m.observe(ad("r1", 100))
	}
	v = only(t, m, st, oldest)
	if v.State != StateLagging || v.LagSeconds == nil || *v.LagSeconds < 4 || v.Rate != 0 || v.Progress != nil {
		t.Fatalf("paused: %+v, want lagging, lag_seconds >= 4, rate 0", v)
	}

	// It applies again: catching up from where it stood, at 50/s.
	for i := range 2 {
		c.advance(time.Second)
		m.observe(ad("r1", 150+uint64(i)*50))
	}
	oldest = map[uint64]time.Time{201: written.Add(time.Millisecond)}
	v = only(t, m, st, oldest)
	if v.State != wire.StateCatchingUp || v.Progress == nil || v.ETASeconds == nil {
		t.Fatalf("resumed: %+v, want catching up with progress and ETA", v)
	}
	if got, want := *v.Progress, 0.5; got != want {
		t.Fatalf("progress=%v, want %v (100 of the 200 it was behind)", got, want)
	}
	if *v.ETASeconds <= 0 || v.Rate <= 0 {
		t.Fatalf("eta=%v rate=%v, want > 0", *v.ETASeconds, v.Rate)
	}

	c.advance(time.Second)
	m.observe(ad("r1", 300))
	if v = only(t, m, st, nil); v.State != wire.StateReady || v.LagMessages != 0 || v.Progress != nil {
		t.Fatalf("caught up again: %+v", v)
	}

	c.advance(DefaultStaleAfter + time.Millisecond)
	v = only(t, m, st, nil)
	if v.State != StateNotAnswering || v.NotAnsweringSince == nil || !v.NotAnsweringSince.Equal(c.t.Add(-DefaultStaleAfter-time.Millisecond)) {
		t.Fatalf("silent: %+v, want not answering since it was last heard", v)
	}
	c.advance(DefaultForgetAfter)
	if vs := m.replicaViews(st, nil); len(vs) != 0 {
		t.Fatalf("after ForgetAfter: %+v, want none", vs)
	}
}

// TestReplicaViewAdvertised: what a replica says of itself is shown, and a
// replica of another stream is named as such.
func TestReplicaViewAdvertised(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ad        wire.ReplicaStatus
		wantState string
		wantWhy   string
	}{
		{"stopped", wire.ReplicaStatus{Replica: "r1", Stream: "s1", Applied: 5, State: wire.StateStopped, Reason: "gap at 6"}, wire.StateStopped, "gap at 6"},
		{"bootstrapping", wire.ReplicaStatus{Replica: "r1", Stream: "s1", State: wire.StateBootstrapping, Reason: "restoring 40%"}, wire.StateBootstrapping, "restoring 40%"},
		{"initial catch-up", wire.ReplicaStatus{Replica: "r1", Stream: "s1", Applied: 5, State: wire.StateCatchingUp}, wire.StateCatchingUp, ""},
		{"no state, not ready", wire.ReplicaStatus{Replica: "r1", Stream: "s1", Applied: 10}, StateNotReady, ""},
		{"no state, ready", wire.ReplicaStatus{Replica: "r1", Stream: "s1", Applied: 10, Ready: true}, wire.StateReady, ""},
		{"other stream", wire.ReplicaStatus{Replica: "r1", Stream: "s0", Applied: 10, Ready: true, State: wire.StateReady}, StateOtherStream, "applies stream s0, not s1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMonitor(MonitorConfig{})
			m.observe(tc.ad)
			v := only(t, m, StreamStatus{ID: "s1", LastSeq: 10}, nil)
			if v.State != tc.wantState || v.Reason != tc.wantWhy {
				t.Fatalf("state=%q reason=%q, want %q %q", v.State, v.Reason, tc.wantState, tc.wantWhy)
			}
		})
	}
}

// TestWriterViews: a writer that answered before and is missing from the
// latest look is not answering since it last answered; its request rate is
// over the time between two looks.
func TestWriterViews(t *testing.T) {
	c := newClock()
	m := NewMonitor(MonitorConfig{})
	m.now = c.now
	stats := func(id string, n int) micro.Stats {
		return micro.Stats{ServiceIdentity: micro.ServiceIdentity{ID: id, Version: "1.0.0"}, Type: micro.StatsResponseType,
			Endpoints: []*micro.EndpointStats{{Name: "put", NumRequests: n}}}
	}
	m.lookedAt = c.t
	m.observeWriter(stats("w1", 10))
	m.observeWriter(stats("w2", 0))
	c.advance(2 * time.Second)
	m.lookedAt = c.t
	m.observeWriter(stats("w1", 30))
	vs := m.writerViews()
	if len(vs) != 2 {
		t.Fatalf("%d writers, want 2", len(vs))
	}
	if w1 := vs[0]; w1.ID != "w1" || w1.State != StateAnswering || w1.Requests != 30 || w1.Rate != 10 {
		t.Fatalf("w1=%+v, want answering, 30 requests at 10/s", w1)
	}
	if w2 := vs[1]; w2.State != StateNotAnswering || w2.NotAnsweringSince == nil || !w2.NotAnsweringSince.Equal(c.t.Add(-2*time.Second)) {
		t.Fatalf("w2=%+v, want not answering since the first look", w2)
	}
}

func FuzzDecodeWriterStats(f *testing.F) {
	f.Add([]byte(`{"name":"tidemark-writer","id":"abc","version":"1.0.0","type":"io.nats.micro.v1.stats_response","started":"2026-01-01T00:00:00Z","endpoints":[{"name":"put","num_requests":3,"num_errors":1,"last_error":"x","average_processing_time":1000}]}`))
	f.Add([]byte(`{"type":"io.nats.micro.v1.stats_response","id":"a","endpoints":[null]}`))
	f.Add([]byte(`{"type":"io.nats.micro.v1.info_response","id":"a"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeWriterStats(data)
		if err != nil {
			return
		}
		if st.ID == "" || st.Type != micro.StatsResponseType {
			t.Fatalf("accepted %+v", st)
		}
		for _, e := range st.Endpoints {
			if e == nil || len(e.LastError) > wire.MaxReasonBytes {
				t.Fatalf("accepted endpoint %+v", e)
			}
		}
		m := NewMonitor(MonitorConfig{})
		m.observeWriter(st)
		_ = m.writerViews()
	})
}
