package gateway_test

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/gateway"
	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replica"
)

func status(t *testing.T, s *stacktest.Stack) gateway.Status {
	t.Helper()
	r := do(t, "GET", s.URL+"/v1/status", "")
	if r.Status != 200 {
		t.Fatalf("GET /v1/status: status=%d body=%s", r.Status, r.Body)
	}
	var st gateway.Status
	if err := json.Unmarshal([]byte(r.Body), &st); err != nil {
		t.Fatalf("GET /v1/status: %v in %s", err, r.Body)
	}
	return st
}

func replicaView(st gateway.Status, id string) (gateway.ReplicaView, bool) {
	for _, r := range st.Replicas {
		if r.ID == id {
			return r, true
		}
	}
	return gateway.ReplicaView{}, false
}

func errorCount(st gateway.Status, code string) uint64 {
	for _, e := range st.Errors {
		if e.Code == code {
			return e.Total
		}
	}
	return 0
}

// TestStatusJSON: /v1/status on a running stack lists the stream, both
// replicas and the writer; writes move the stream's and replicas' figures,
// token reads show in the wait figures and errors by code; a paused replica
// shows its lag and is lagging, then is ready again after Resume; a stopped
// one stays listed as not answering.
func TestStatusJSON(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2})
	var st gateway.Status
	testenv.Eventually(t, 10*time.Second, "both replicas and the writer in the status", func() bool {
		st = status(t, s)
		r1, ok1 := replicaView(st, "r1")
		r2, ok2 := replicaView(st, "r2")
		return ok1 && ok2 && r1.State == wire.StateReady && r2.State == wire.StateReady &&
			len(st.Writers) == 1 && st.Writers[0].State == gateway.StateAnswering
	})
	if st.Stream == nil || st.Stream.ID != s.Stream.ID() || st.Stream.Name != s.Stream.Name() || st.Stream.Storage != "file" {
		t.Fatalf("stream=%+v, want id %s, name %s, file storage", st.Stream, s.Stream.ID(), s.Stream.Name())
	}
	if !st.Gateway.Ready {
		t.Fatalf("gateway not ready: %s", st.Gateway.Reason)
	}
	before := st.Stream.LastSeq

	// Replicas say what they are doing in their advertisements.
	sub, err := s.Conn.SubscribeSync(s.Subjects.Status("r1"))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("r1's advertisement: %v", err)
	}
	_ = sub.Unsubscribe()
	if ad, err := wire.DecodeStatus(msg.Data); err != nil || ad.State != wire.StateReady || ad.Reason != "" {
		t.Fatalf("r1 advertised %s (%v), want state ready and no reason", msg.Data, err)
	}

	var w api.WriteJSON
	for i := range 5 {
		w = put(t, s, "k", "v"+string(rune('0'+i)))
	}
	if r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderToken, w.Token); r.Status != 200 {
		t.Fatalf("token read: status=%d body=%s", r.Status, r.Body)
	}
	if r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderToken, "not-a-token"); r.Status != 400 {
		t.Fatalf("bad token read: status=%d, want 400", r.Status)
	}
	testenv.Eventually(t, 10*time.Second, "the writes in the stream, replica, wait and error figures", func() bool {
		st = status(t, s)
		r1, _ := replicaView(st, "r1")
		r2, _ := replicaView(st, "r2")
		return st.Stream.LastSeq >= w.Revision && st.Stream.Messages >= 5 && st.Stream.Bytes > 0 &&
			r1.Applied >= w.Revision && r2.Applied >= w.Revision && r1.LagMessages == 0 && r2.LagMessages == 0 &&
			st.Wait.Reads >= 1 && errorCount(st, api.CodeInvalidToken) == 1 && st.Writers[0].Requests >= 5
	})
	if st.Stream.LastSeq < before+5 {
		t.Fatalf("stream last_seq=%d, want at least %d", st.Stream.LastSeq, before+5)
	}
	if n := len(st.Wait.Buckets); n != 12 {
		t.Fatalf("wait histogram has %d buckets, want 12", n)
	}

	// r2 is held back: it lags by the writes it does not apply, then, once
	// the oldest of them is older than LagAfter, it is lagging.
	r2 := s.Replica(t, "r2").Replicator()
	r2.Pause()
	for i := range 3 {
		w = put(t, s, "p", string(rune('a'+i)))
	}
	testenv.Eventually(t, 15*time.Second, "r2 lagging by 3 writes, r1 ready", func() bool {
		st = status(t, s)
		v1, _ := replicaView(st, "r1")
		v2, _ := replicaView(st, "r2")
		return v2.State == gateway.StateLagging && v2.LagMessages >= 3 && v2.LagSeconds != nil && *v2.LagSeconds >= 1 &&
			v1.State == wire.StateReady && v1.LagMessages == 0
	})
	v2, _ := replicaView(st, "r2")
	if v2.Applied+v2.LagMessages != st.Stream.LastSeq {
		t.Fatalf("r2 applied %d + lag %d != stream last %d", v2.Applied, v2.LagMessages, st.Stream.LastSeq)
	}
	r2.Resume()
	testenv.Eventually(t, 15*time.Second, "r2 ready again with no lag", func() bool {
		st = status(t, s)
		v2, _ = replicaView(st, "r2")
		return v2.State == wire.StateReady && v2.LagMessages == 0 && v2.Applied >= w.Revision
	})

	// A replica that stops is shown as not answering, not dropped.
	s.StopReplica(t, "r2")
	testenv.Eventually(t, 15*time.Second, "r2 not answering", func() bool {
		st = status(t, s)
		v2, _ = replicaView(st, "r2")
		return v2.State == gateway.StateNotAnswering && v2.NotAnsweringSince != nil
	})
	if got := len(st.Replicas); got != 2 {
		t.Fatalf("%d replicas listed, want 2 (r2 as not answering)", got)
	}
}

// TestStatusWithoutMonitor: a gateway with no monitor still serves the
// page and its own figures, says the rest is unknown (null), and refuses
// other methods than GET and HEAD.
func TestStatusWithoutMonitor(t *testing.T) {
	srv := httptest.NewServer(gateway.New(gateway.Config{}).Handler())
	defer srv.Close()
	page := stacktest.Do(t, "GET", srv.URL+"/status", "")
	if page.Status != 200 || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") || !strings.Contains(page.Body, "<title>Tidemark status</title>") {
		t.Fatalf("GET /status: status=%d type=%s", page.Status, page.Header.Get("Content-Type"))
	}
	r := stacktest.Do(t, "GET", srv.URL+"/v1/status", "")
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.Body), &raw); err != nil || r.Status != 200 {
		t.Fatalf("GET /v1/status: status=%d err=%v body=%s", r.Status, err, r.Body)
	}
	for name, want := range map[string]string{"stream": "null", "writers": "null", "replicas": "[]", "errors": "[]"} {
		if got := string(raw[name]); got != want {
			t.Fatalf("%s=%s, want %s", name, got, want)
		}
	}
	if r := stacktest.Do(t, "POST", srv.URL+"/v1/status", ""); r.Status != 405 || r.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST /v1/status: status=%d Allow=%q, want 405 GET, HEAD", r.Status, r.Header.Get("Allow"))
	}
}

// TestStatusCompaction: the status shows the compaction point the
// compacting replica advertises, the newest base snapshot and each
// replica's tombstone count, and says which replica compacts.
func TestStatusCompaction(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2, Compaction: replica.Compaction{
		Enabled: true, SnapshotMessages: 5, SnapshotAge: time.Hour, WindowMessages: 1000, Interval: 20 * time.Millisecond}})
	for i := range 10 {
		if r := do(t, "PUT", s.URL+"/v1/kv/k"+strconv.Itoa(i), "v"); r.Status != 200 {
			t.Fatalf("PUT: %d %s", r.Status, r.Body)
		}
	}
	if r := do(t, "DELETE", s.URL+"/v1/kv/k0", ""); r.Status != 200 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	var st gateway.Status
	var r1, r2 gateway.ReplicaView
	testenv.Eventually(t, 10*time.Second, "the base snapshot, the compaction point and both tombstone counts in the status", func() bool {
		st = status(t, s)
		r1, _ = replicaView(st, "r1")
		r2, _ = replicaView(st, "r2")
		// Each replica advertises its tombstone count after its first
		// sweep, which follows its first batch.
		return st.Stream != nil && st.Stream.Base != nil && st.Stream.Base.Applied >= 5 && st.Stream.CompactionPoint >= 1 &&
			r1.Tombstones != nil && r2.Tombstones != nil
	})
	if b := st.Stream.Base; b.Bytes == 0 || b.Replica != "r1" || b.Created.IsZero() || b.AgeSeconds < 0 {
		t.Fatalf("base snapshot %+v, want r1's, with its size and time", b)
	}
	if !r1.Compacting || r2.Compacting {
		t.Fatalf("r1 %+v, r2 %+v: want r1 alone compacting", r1, r2)
	}
}
