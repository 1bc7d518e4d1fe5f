package checker_test

import (
	"os"
	"time"
	"testing"

	"github.com/tidemark/tidemark/chaos/checker"
	"github.com/tidemark/tidemark/chaos/history"
)

// A small world: session 0 puts a=1 (seq 1) and b=2 (seq 2), session 1
// deletes a (seq 3); both read.
func stream() []history.Message {
	return []history.Message{
		{Seq: 1, Kind: history.Put, Key: "a", Value: []byte("a1"), MsgID: "w0-0"},
		{Seq: 2, Kind: history.Put, Key: "b", Value: []byte("b1"), MsgID: "w0-1"},
		{Seq: 3, Kind: history.Delete, Key: "a", MsgID: "w1-0"},
	}
}

func replica(id string, applied uint64) history.Replica {
	f := history.NewSnapshots(stream()).FoldTo(applied)
	rep := history.Replica{ID: id, Applied: applied}
	for _, rec := range f.Keys {
		rep.Records = append(rep.Records, rec)
	}
	return rep
}

func put(s, i int, key, value, id string, rev, tokIn uint64) history.Op {
	return history.Op{Session: s, Index: i, Kind: history.Put, Key: key, Value: []byte(value), WriteID: id,
		Outcome: history.OK, Revision: rev, TokenIn: tokIn, TokenOut: rev}
}

func del(s, i int, key, id string, rev, tokIn uint64) history.Op {
	return history.Op{Session: s, Index: i, Kind: history.Delete, Key: key, WriteID: id,
		Outcome: history.OK, Revision: rev, TokenIn: tokIn, TokenOut: rev}
}

func get(s, i int, key, value string, rev, applied, tokIn uint64) history.Op {
	op := history.Op{Session: s, Index: i, Kind: history.Get, Key: key, Outcome: history.OK, Revision: rev,
		Applied: applied, ServedBy: "r1", TokenIn: tokIn, TokenOut: max(tokIn, applied)}
	if value != "" {
		op.Found, op.Value = true, []byte(value)
	}
	return op
}

func good() *history.History {
	return &history.History{
		Version: history.Version,
		Ops: []history.Op{
			put(0, 0, "a", "a1", "w0-0", 1, 0),
			put(0, 1, "b", "b1", "w0-1", 2, 1),
			get(0, 2, "a", "a1", 1, 2, 2),
			get(0, 3, "a", "", 3, 3, 2),
			{Session: 0, Index: 4, Kind: history.Scan, Prefix: "", Limit: 10, Outcome: history.OK, Applied: 3, TokenIn: 3, TokenOut: 3,
				Items: []history.Item{{Key: "b", Value: []byte("b1"), Revision: 2}}},
			del(1, 0, "a", "w1-0", 3, 0),
			get(1, 1, "a", "", 3, 3, 3),
			get(1, 2, "zz", "", 0, 3, 3),
		},
		Final: &history.Final{Stream: stream(), Replicas: []history.Replica{replica("r1", 3), replica("r2", 3)}},
	}
}

func TestCheckGoodHistory(t *testing.T) {
	r := checker.Check(good())
	if !r.OK() {
		t.Fatalf("violations in a good history:\n%s", r.Summary())
	}
	if got, want := r.Writes[history.OK], 3; got != want {
		t.Fatalf("Writes[ok]=%d, want %d", got, want)
	}
}

// TestCheckViolations breaks the good history in one way at a time and
// checks that the checker names exactly that kind of violation.
func TestCheckViolations(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(h *history.History)
		want   checker.Kind
	}{
		{"read your writes by value", func(h *history.History) {
			h.Ops[2] = get(0, 2, "a", "", 0, 0, 2) // own put of a at 1, read "absent"
		}, checker.ReadYourWrites},
		{"read your writes by position", func(h *history.History) {
			h.Ops[2] = get(0, 2, "a", "a1", 1, 1, 0) // no token, served at 1, own write at 2
		}, checker.ReadYourWrites},
		{"monotonic reads", func(h *history.History) {
			h.Ops = append(h.Ops, get(0, 5, "zz", "", 0, 2, 0)) // read at 3 before, now at 2
		}, checker.MonotonicReads},
		{"token ignored", func(h *history.History) {
			h.Ops[3] = get(0, 3, "a", "a1", 1, 2, 3) // token 3, served at 2
		}, checker.TokenIgnored},
		{"monotonic writes", func(h *history.History) {
			h.Ops[1].Revision = 1
		}, checker.MonotonicWrites},
		{"writes follow reads", func(h *history.History) {
			h.Ops[5].TokenIn = 3 // a write with token 3 got revision 3
		}, checker.WritesFollowReads},
		{"phantom value", func(h *history.History) {
			h.Ops[2].Value = []byte("nobody wrote this")
		}, checker.PhantomRead},
		{"snapshot mismatch", func(h *history.History) {
			h.Ops[3] = get(0, 3, "a", "a1", 1, 3, 2) // at applied 3, a is deleted
		}, checker.SnapshotMismatch},
		{"scan left a key out", func(h *history.History) {
			h.Ops[4].Items = nil
		}, checker.SnapshotMismatch},
		{"lost write", func(h *history.History) {
			h.Ops = append(h.Ops, put(1, 3, "c", "c1", "w1-3", 4, 3))
		}, checker.LostWrite},
		{"duplicate write", func(h *history.History) {
			h.Final.Stream = append(h.Final.Stream, history.Message{Seq: 4, Kind: history.Put, Key: "b", Value: []byte("b1"), MsgID: "w0-1"})
			h.Final.Replicas = nil
		}, checker.DuplicateWrite},
		{"unexpected write", func(h *history.History) {
			h.Final.Stream = append(h.Final.Stream, history.Message{Seq: 4, Kind: history.Put, Key: "x", Value: []byte("?"), MsgID: "?"})
			h.Final.Replicas = nil
		}, checker.UnexpectedWrite},
		{"corrupt write", func(h *history.History) {
			h.Final.Stream[1].Value = []byte("b2")
			h.Final.Replicas = nil
			h.Ops = h.Ops[:2]
		}, checker.CorruptWrite},
		{"wrong revision", func(h *history.History) {
			h.Ops[5].Revision = 4
		}, checker.WrongRevision},
		{"failed write applied", func(h *history.History) {
			h.Ops[5].Outcome, h.Ops[5].Code = history.Failed, "invalid_request"
		}, checker.FailedWriteApplied},
		{"replica lost a key", func(h *history.History) {
			h.Final.Replicas[1].Records = h.Final.Replicas[1].Records[:1]
		}, checker.ReplicaNotFold},
		{"replica applied data beyond applied", func(h *history.History) {
			h.Final.Replicas[1] = replica("r2", 3)
			h.Final.Replicas[1].Applied = 2 // the data of 3 is there, applied says 2
		}, checker.ReplicaNotFold},
		{"replica not readable", func(h *history.History) {
			h.Final.Replicas[1] = history.Replica{ID: "r2", Error: "not serving"}
		}, checker.NotConverged},
		{"replica behind", func(h *history.History) {
			h.Final.Replicas[1] = replica("r2", 2)
		}, checker.NotConverged},
		{"no final state", func(h *history.History) {
			h.Final = nil
		}, checker.NoFinalState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good()
			tt.mutate(h)
			r := checker.Check(h)
			if r.Counts[tt.want] == 0 {
				t.Fatalf("no %s violation:\n%s", tt.want, r.Summary())
			}
		})
	}
}

// TestSessionOrderingFold: a write whose session sequence is not above the
// session's highest is skipped by the fold, so a replica that applied it
// is wrong and an acknowledged one is a violation.
func TestSessionOrderingFold(t *testing.T) {
	msgs := []history.Message{
		{Seq: 1, Kind: history.Put, Key: "k", Value: []byte("2"), MsgID: "b", SessionID: "s", SessionSeq: 2},
		{Seq: 2, Kind: history.Put, Key: "k", Value: []byte("1"), MsgID: "a", SessionID: "s", SessionSeq: 1},
	}
	snaps := history.NewSnapshots(msgs)
	if got, want := string(snaps.Final.Keys["k"].Value), "2"; got != want {
		t.Fatalf("fold k=%q, want %q", got, want)
	}
	if !snaps.Final.Skipped[2] {
		t.Fatal("seq 2 not skipped")
	}
	h := &history.History{Version: history.Version,
		Ops: []history.Op{
			{Session: 0, Index: 0, Kind: history.Put, Key: "k", Value: []byte("1"), WriteID: "a", SessionID: "s", SessionSeq: 1,
				Outcome: history.Failed, Code: "write_out_of_order"},
			{Session: 1, Index: 0, Kind: history.Put, Key: "k", Value: []byte("2"), WriteID: "b", SessionID: "s", SessionSeq: 2,
				Outcome: history.OK, Revision: 1},
		},
		Final: &history.Final{Stream: msgs, Replicas: []history.Replica{
			{ID: "good", Applied: 2, Records: []history.Record{{Key: "k", Value: []byte("2"), Revision: 1}}},
		}},
	}
	if r := checker.Check(h); !r.OK() {
		t.Fatalf("violations:\n%s", r.Summary())
	}
	h.Final.Replicas = append(h.Final.Replicas, history.Replica{ID: "bad", Applied: 2,
		Records: []history.Record{{Key: "k", Value: []byte("1"), Revision: 2}}})
	h.Ops[0].Outcome, h.Ops[0].Revision = history.OK, 2
	r := checker.Check(h)
	if r.Counts[checker.ReplicaNotFold] == 0 || r.Counts[checker.AckedWriteSkipped] == 0 {
		t.Fatalf("want replica-not-fold and acked-write-skipped:\n%s", r.Summary())
	}
}

// TestCheckHistoryFile checks the history file named by CHAOS_HISTORY, if
// set, and prints the report: a way to check a run's history again.
func TestCheckHistoryFile(t *testing.T) {
	path := os.Getenv("CHAOS_HISTORY")
	if path == "" {
		t.Skip("set CHAOS_HISTORY to a history file to check it")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := history.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(checker.Check(h).Summary())
}

// TestTTLExpiry: b is put with a time to live that has run out by the
// delete of a (seq 3), which expires b at 3. A 404 of b at 3 (the expiry's
// revision) is right; b's value at applied 3, or b found at revision 3, is
// a violation.
func TestTTLExpiry(t *testing.T) {
	t0 := time.Unix(1000, 0)
	msgs := stream()
	for i := range msgs {
		msgs[i].Time = t0.Add(time.Duration(i) * time.Second)
	}
	msgs[1].TTL = time.Second // b expires at t0+2s: at seq 3
	with := func(read history.Op) *history.History {
		f := history.NewSnapshots(msgs).FoldTo(3)
		rep := history.Replica{ID: "r1", Applied: 3}
		for _, rec := range f.Keys {
			rep.Records = append(rep.Records, rec)
		}
		b := put(0, 1, "b", "b1", "w0-1", 2, 1)
		b.TTL = time.Second
		return &history.History{Version: history.Version,
			Ops:   []history.Op{put(0, 0, "a", "a1", "w0-0", 1, 0), b, del(1, 0, "a", "w1-0", 3, 0), read},
			Final: &history.Final{Stream: msgs, Replicas: []history.Replica{rep}}}
	}
	if r := checker.Check(with(get(2, 0, "b", "", 3, 3, 3))); !r.OK() {
		t.Fatalf("the expired 404 is a violation:\n%s", r.Summary())
	}
	for name, read := range map[string]history.Op{
		"value after the expiry": get(2, 0, "b", "b1", 2, 3, 3),
		"found at the expiry":    get(2, 0, "b", "b1", 3, 3, 3),
	} {
		if r := checker.Check(with(read)); r.OK() {
			t.Errorf("%s: no violation", name)
		}
	}
}
