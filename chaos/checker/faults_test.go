package checker_test

import (
	"testing"
	"time"

	"github.com/tidemark/tidemark/chaos/checker"
	"github.com/tidemark/tidemark/chaos/history"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func timed(op history.Op, invoke, complete int) history.Op {
	op.Invoke, op.Complete = at(invoke), at(complete)
	return op
}

func wantKinds(t *testing.T, r *checker.Report, want ...checker.Kind) {
	t.Helper()
	for _, k := range want {
		if r.Counts[k] == 0 {
			t.Fatalf("no %s violation:\n%s", k, r.Summary())
		}
	}
}

// tailLoss: the store was copied holding seq 1 (a=a1), session 0 wrote b at
// 2 (acknowledged), the copy was restored at 10, and session 1 then wrote
// c at 2.
func tailLoss() *history.History {
	msgs := []history.Message{
		{Seq: 1, Kind: history.Put, Key: "a", Value: []byte("a1"), MsgID: "w0-0"},
		{Seq: 2, Kind: history.Put, Key: "c", Value: []byte("c1"), MsgID: "w1-0"},
	}
	f := history.NewSnapshots(msgs).Final
	rep := history.Replica{ID: "r1", Applied: 2}
	for _, rec := range f.Keys {
		rep.Records = append(rep.Records, rec)
	}
	return &history.History{
		Version: history.Version,
		Ops: []history.Op{
			timed(put(0, 0, "a", "a1", "w0-0", 1, 0), 1, 1),
			timed(put(0, 1, "b", "b1", "w0-1", 2, 1), 5, 5),
			timed(get(0, 2, "b", "b1", 2, 2, 2), 6, 6), // read the tail that was then lost
			timed(put(1, 0, "c", "c1", "w1-0", 2, 0), 11, 11),
			timed(get(1, 1, "c", "c1", 2, 2, 2), 12, 12),
		},
		Final:  &history.Final{Stream: msgs, Replicas: []history.Replica{rep}},
		Losses: []history.Loss{{Last: 1, Copied: at(2), Restored: at(10)}},
	}
}

// TestTailLoss: writes acknowledged in the lost tail are counted apart, not
// as lost; what happens after the restore is checked as always.
func TestTailLoss(t *testing.T) {
	r := checker.Check(tailLoss())
	if !r.OK() {
		t.Fatalf("violations in a good history with a lost tail:\n%s", r.Summary())
	}
	if got, want := r.LostByFault, 1; got != want {
		t.Fatalf("LostByFault=%d, want %d", got, want)
	}
	if got, want := r.Unverifiable, 1; got != want {
		t.Fatalf("Unverifiable=%d, want %d", got, want)
	}

	tests := []struct {
		name   string
		mutate func(h *history.History)
		want   checker.Kind
	}{
		{"old history under a new revision", func(h *history.History) {
			// After the restore a replica still serves b=b1 at 2, which is c now.
			h.Ops = append(h.Ops, timed(get(1, 2, "b", "b1", 2, 2, 2), 13, 13))
		}, checker.PhantomRead},
		{"stale replica snapshot after the restore", func(h *history.History) {
			h.Ops = append(h.Ops, timed(get(1, 2, "b", "", 0, 2, 2), 13, 13))
			h.Ops[len(h.Ops)-1].Found, h.Ops[len(h.Ops)-1].Value, h.Ops[len(h.Ops)-1].Revision = true, []byte("b1"), 2
		}, checker.PhantomRead},
		{"write acknowledged after the restore lost", func(h *history.History) {
			h.Ops = append(h.Ops, timed(put(1, 2, "d", "d1", "w1-2", 3, 2), 13, 13))
		}, checker.LostWrite},
		{"write below the copy lost", func(h *history.History) {
			h.Final.Stream = h.Final.Stream[1:]
			h.Final.Stream[0].Seq = 1
			h.Final.Replicas = nil
			h.Ops = h.Ops[:2]
		}, checker.LostWrite},
		{"replica kept the lost tail", func(h *history.History) {
			h.Final.Replicas[0].Records = append(h.Final.Replicas[0].Records, history.Record{Key: "b", Value: []byte("b1"), Revision: 2})
		}, checker.ReplicaNotFold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tailLoss()
			tt.mutate(h)
			wantKinds(t, checker.Check(h), tt.want)
		})
	}
	// Without the loss window the same history is a lost write.
	h := tailLoss()
	h.Losses = nil
	wantKinds(t, checker.Check(h), checker.LostWrite)
}

// recreated: stream "old" held a=a1 at 1 and was deleted at 5 (its
// successor ready at 6); stream "new" holds a=a2 at 1.
func recreated() *history.History {
	newMsgs := []history.Message{{Seq: 1, Kind: history.Put, Key: "a", Value: []byte("a2"), MsgID: "w1-1"}}
	oldMsgs := []history.Message{{Seq: 1, Kind: history.Put, Key: "a", Value: []byte("a1"), MsgID: "w0-0"}}
	with := func(op history.Op, stream string) history.Op {
		op.Stream = stream
		return op
	}
	return &history.History{
		Version: history.Version,
		Ops: []history.Op{
			timed(with(put(0, 0, "a", "a1", "w0-0", 1, 0), "old"), 1, 1),
			timed(with(get(0, 1, "a", "a1", 1, 1, 1), "old"), 2, 2),
			timed(history.Op{Session: 0, Index: 2, Kind: history.Get, Key: "a", TokenIn: 1, Outcome: history.Failed,
				Code: "token_stream_mismatch"}, 7, 7),
			timed(with(get(0, 3, "a", "a2", 1, 1, 0), "new"), 8, 8),
			timed(with(put(1, 0, "b", "b0", "w1-0", 0, 0), ""), 4, 4),
			timed(with(put(1, 1, "a", "a2", "w1-1", 1, 0), "new"), 7, 7),
		},
		Final: &history.Final{StreamID: "new", Stream: newMsgs, Replicas: []history.Replica{
			{ID: "r1", Applied: 1, Records: []history.Record{{Key: "a", Value: []byte("a2"), Revision: 1}}}}},
		Epochs: []history.Epoch{{StreamID: "old", Stream: oldMsgs, Deleted: at(5), Healed: at(6)}},
	}
}

// TestStreamRecreated: each op is judged against the stream its reply named;
// a session starts again after token_stream_mismatch; a read of the deleted
// stream after its successor was ready, a write acknowledged with a token of
// another stream than the one holding it, and old values served under new
// tokens are caught.
func TestStreamRecreated(t *testing.T) {
	h := recreated()
	h.Ops[4].Outcome, h.Ops[4].Code, h.Ops[4].Revision = history.Indeterminate, "", 0
	if r := checker.Check(h); !r.OK() {
		t.Fatalf("violations in a good history with a recreated stream:\n%s", r.Summary())
	}
	tests := []struct {
		name   string
		mutate func(h *history.History)
		want   checker.Kind
	}{
		{"deleted stream served after the heal", func(h *history.History) {
			h.Ops[3].Stream, h.Ops[3].Value = "old", []byte("a1")
		}, checker.DeletedStreamRead},
		{"old value under a new token", func(h *history.History) {
			h.Ops[3].Value = []byte("a1")
		}, checker.PhantomRead},
		{"write stored in the new stream, acknowledged with an old token", func(h *history.History) {
			h.Ops[5].Stream = "old"
		}, checker.WrongStream},
		{"old token answered from the new stream", func(h *history.History) {
			h.Ops = append(h.Ops[:2], h.Ops[3:]...) // no token_stream_mismatch in between
			h.Ops[2].Index, h.Ops[2].TokenIn = 2, 1
		}, checker.WrongStream},
		{"unknown stream", func(h *history.History) {
			h.Ops[3].Stream = "other"
		}, checker.WrongStream},
		{"write of the deleted stream lost", func(h *history.History) {
			h.Epochs[0].Stream = nil
		}, checker.LostWrite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := recreated()
			h.Ops[4].Outcome, h.Ops[4].Code, h.Ops[4].Revision = history.Indeterminate, "", 0
			tt.mutate(h)
			wantKinds(t, checker.Check(h), tt.want)
		})
	}
}

// TestSessionSeqReused: two writes of one session with one session
// sequence, through two writers, must not both be acknowledged.
func TestSessionSeqReused(t *testing.T) {
	msgs := []history.Message{
		{Seq: 1, Kind: history.Put, Key: "p", Value: []byte("p1"), MsgID: "p1", SessionID: "race", SessionSeq: 1},
		{Seq: 2, Kind: history.Put, Key: "q", Value: []byte("q1"), MsgID: "q1", SessionID: "race", SessionSeq: 1},
	}
	p := put(0, 0, "p", "p1", "p1", 1, 0)
	q := put(1, 0, "q", "q1", "q1", 2, 0)
	p.SessionID, p.SessionSeq, q.SessionID, q.SessionSeq = "race", 1, "race", 1
	h := &history.History{Version: history.Version, Ops: []history.Op{p, q}, Final: &history.Final{Stream: msgs}}
	wantKinds(t, checker.Check(h), checker.SessionSeqReused, checker.AckedWriteSkipped)

	h.Ops[1].Outcome, h.Ops[1].Code, h.Ops[1].Revision, h.Ops[1].TokenOut = history.Failed, "write_out_of_order", 0, 0
	h.Final.Stream = h.Final.Stream[:1]
	if r := checker.Check(h); !r.OK() {
		t.Fatalf("one of the pair refused, yet violations:\n%s", r.Summary())
	}
}

// TestWriteIDReused: a write id sent again with other content must not be
// acknowledged; sent again with the same content it must get the original
// revision.
func TestWriteIDReused(t *testing.T) {
	msgs := []history.Message{{Seq: 1, Kind: history.Put, Key: "k", Value: []byte("v1"), MsgID: "id"}}
	build := func() *history.History {
		return &history.History{Version: history.Version, Ops: []history.Op{
			timed(put(0, 0, "k", "v1", "id", 1, 0), 1, 1),
			timed(history.Op{Session: 0, Index: 1, Kind: history.Put, Key: "k", Value: []byte("v2"), WriteID: "id",
				Outcome: history.Failed, Code: "write_id_reused", TokenIn: 1}, 2, 2),
			timed(put(0, 2, "k", "v1", "id", 1, 1), 3, 3),
		}, Final: &history.Final{Stream: msgs}}
	}
	if r := checker.Check(build()); !r.OK() {
		t.Fatalf("violations when the reuse is refused and the retry answered right:\n%s", r.Summary())
	}
	h := build()
	h.Ops[1].Outcome, h.Ops[1].Code, h.Ops[1].Revision, h.Ops[1].TokenOut = history.OK, "", 1, 1
	r := checker.Check(h)
	wantKinds(t, r, checker.WriteIDReused)
	if r.Lost != 0 {
		t.Fatalf("the reused id counted as %d lost writes too:\n%s", r.Lost, r.Summary())
	}
	h = build()
	h.Ops[1].Key, h.Ops[1].Value = "other", []byte("v1")
	h.Ops[1].Outcome, h.Ops[1].Code, h.Ops[1].Revision = history.OK, "", 1
	wantKinds(t, checker.Check(h), checker.WriteIDReused)
	h = build()
	h.Ops[2].Revision, h.Ops[2].TokenOut = 2, 2
	wantKinds(t, checker.Check(h), checker.WrongRevision)

	// A first write that never took effect (indeterminate, not stored)
	// names nothing: another content under its id may be acknowledged.
	h = build()
	h.Ops = h.Ops[:2]
	h.Ops[0].Outcome, h.Ops[0].Revision, h.Ops[0].TokenOut = history.Indeterminate, 0, 0
	h.Ops[1].Outcome, h.Ops[1].Code, h.Ops[1].Revision, h.Ops[1].TokenIn, h.Ops[1].TokenOut = history.OK, "", 1, 0, 1
	h.Final.Stream[0].Value = []byte("v2")
	if r := checker.Check(h); !r.OK() {
		t.Fatalf("an id whose first write never took effect, reused, yet violations:\n%s", r.Summary())
	}
	// The same, but the first write is stored: the second is a reuse.
	h.Final.Stream[0].Value = []byte("v1")
	wantKinds(t, checker.Check(h), checker.WriteIDReused)
}

// TestFinalReads: every key the stream wrote, read strongly at the end
// through every path, must equal the fold: a missing key, another value or
// revision, a live tombstone and a key not read are caught, per path.
func TestFinalReads(t *testing.T) {
	good := func() []history.FinalRead {
		var out []history.FinalRead
		for _, via := range []string{"gateway g1", "gateway g1 replica r2"} {
			out = append(out,
				history.FinalRead{Via: via, Key: "a", Revision: 3},
				history.FinalRead{Via: via, Key: "b", Found: true, Value: []byte("b1"), Revision: 2},
			)
		}
		return out
	}
	h := good1()
	h.Final.Reads = good()
	if r := checker.Check(h); !r.OK() {
		t.Fatalf("violations in good final reads:\n%s", r.Summary())
	}
	if got, want := checker.Check(h).FinalReads, 4; got != want {
		t.Fatalf("FinalReads=%d, want %d", got, want)
	}
	tests := []struct {
		name   string
		mutate func(rs []history.FinalRead) []history.FinalRead
		want   checker.Kind
	}{
		{"missing", func(rs []history.FinalRead) []history.FinalRead {
			rs[3] = history.FinalRead{Via: rs[3].Via, Key: "b"}
			return rs
		}, checker.FinalMissing},
		{"failed", func(rs []history.FinalRead) []history.FinalRead {
			rs[3].Error = "503 unavailable"
			return rs
		}, checker.FinalMissing},
		{"not read", func(rs []history.FinalRead) []history.FinalRead { return rs[:3] }, checker.FinalMissing},
		{"other value", func(rs []history.FinalRead) []history.FinalRead {
			rs[1].Value = []byte("b0")
			return rs
		}, checker.FinalDifferent},
		{"old revision", func(rs []history.FinalRead) []history.FinalRead {
			rs[0] = history.FinalRead{Via: rs[0].Via, Key: "a", Found: true, Value: []byte("a1"), Revision: 1}
			return rs
		}, checker.FinalDifferent},
		{"never written", func(rs []history.FinalRead) []history.FinalRead {
			return append(rs, history.FinalRead{Via: rs[0].Via, Key: "zz", Found: true, Value: []byte("?"), Revision: 2})
		}, checker.FinalDifferent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good1()
			h.Final.Reads = tt.mutate(good())
			r := checker.Check(h)
			wantKinds(t, r, tt.want)
			for _, v := range r.Examples[tt.want] {
				if v.Replica == "" {
					t.Fatalf("violation names no path: %v", v)
				}
			}
		})
	}
}

func good1() *history.History { return good() }
