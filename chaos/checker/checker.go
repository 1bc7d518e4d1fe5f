// Package checker verifies a history of client sessions against the session
// guarantees and the final states against the stream. It sees only what a
// history file holds (the operations as the clients saw them, the stream's
// messages and each replica's keys) and imports no Tidemark package but the
// history format, so that a bug in the code under test cannot hide itself
// in the checker.
//
// Per session: read-your-writes, monotonic reads, monotonic writes and
// writes-follow-reads. Per read: the value is the one the stream holds at
// the read's revision, and equals the fold of the stream at the position
// the replica said it had applied. Durability: every acknowledged write is
// in the stream at its revision, none is lost, stored twice or stored
// without having been asked for, and every replica's state equals the fold
// of the stream up to what it applied, which must be the whole stream; and
// at the end every key reads the same, strongly, along every path. Across
// faults that change the stream's history: each op is judged against the
// stream its reply named (a stream deleted during the run, or the final
// one), and writes acknowledged in a tail that a restored store lost are
// counted apart. Across clients: one session sequence is acknowledged at
// most once, and a write id names one content.
package checker

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tidemark/tidemark/chaos/history"
)

// Kind names a class of violation.
type Kind string

// The violations the checker reports.
const (
	// ReadYourWrites: a read did not reflect a write its own session had
	// been acknowledged before the read was sent.
	ReadYourWrites Kind = "read-your-writes"
	// MonotonicReads: a read reflected an older state than an earlier
	// read of the same session.
	MonotonicReads Kind = "monotonic-reads"
	// MonotonicWrites: a session's acknowledged writes are not in
	// increasing revision (and session sequence) order.
	MonotonicWrites Kind = "monotonic-writes"
	// WritesFollowReads: a write got a revision not above the token it
	// carried or what its session had already read.
	WritesFollowReads Kind = "writes-follow-reads"
	// TokenIgnored: a read was served from a snapshot behind the token it
	// carried, or a reply's token went back.
	TokenIgnored Kind = "token-ignored"
	// PhantomRead: a read returned a value (or a delete) that the stream
	// does not hold at the revision it gave.
	PhantomRead Kind = "phantom-read"
	// SnapshotMismatch: a read does not equal the fold of the stream at
	// the position the replica said it had applied.
	SnapshotMismatch Kind = "snapshot-mismatch"
	// LostWrite: an acknowledged write is not in the final stream.
	LostWrite Kind = "lost-write"
	// DuplicateWrite: one write is stored more than once.
	DuplicateWrite Kind = "duplicate-write"
	// UnexpectedWrite: the stream holds a write no session made.
	UnexpectedWrite Kind = "unexpected-write"
	// CorruptWrite: the stream holds a write with another key, kind or
	// value than its session sent.
	CorruptWrite Kind = "corrupt-write"
	// WrongRevision: a write is stored at another revision than its
	// acknowledgement said.
	WrongRevision Kind = "wrong-revision"
	// FailedWriteApplied: a write reported as failed took effect.
	FailedWriteApplied Kind = "failed-write-applied"
	// AckedWriteSkipped: an acknowledged write is in the stream but the
	// session-ordering rule makes replicas skip it.
	AckedWriteSkipped Kind = "acked-write-skipped"
	// ReplicaNotFold: a replica's state is not the fold of the stream up
	// to what it says it applied.
	ReplicaNotFold Kind = "replica-not-fold"
	// NotConverged: a replica had not applied the whole stream at the end.
	NotConverged Kind = "not-converged"
	// NoFinalState: the history has no final state, so durability was not
	// checked.
	NoFinalState Kind = "no-final-state"
	// WrongStream: a reply's token names another stream than the one that
	// holds the write, or a stream the history does not know.
	WrongStream Kind = "wrong-stream"
	// DeletedStreamRead: a read sent after a deleted stream's successor was
	// ready was served from the deleted stream's history.
	DeletedStreamRead Kind = "deleted-stream-read"
	// SessionSeqReused: two different writes with the same session and
	// session sequence were both acknowledged.
	SessionSeqReused Kind = "session-seq-reused"
	// WriteIDReused: a write was acknowledged with success although its
	// write id already named a write of other content.
	WriteIDReused Kind = "write-id-reused"
	// FinalMissing: at the end, a strong read through a gateway or pinned to
	// a replica did not find a key's state (absent, failed or not read).
	FinalMissing Kind = "final-missing"
	// TxnPartial: a read or scan saw part of a transaction: served at a
	// position inside one, or a scan that shows one op of a transaction
	// and, for another key of it in its range, an older state.
	TxnPartial Kind = "txn-partial"
	// FinalDifferent: at the end, a strong read returned another value,
	// revision or tombstone than the fold of the stream.
	FinalDifferent Kind = "final-different"
	// Watch: a watcher's listing is not the fold's: an initial state other
	// than the live keys under its prefix at its synced position, or
	// changes after it missing, repeated, out of revision order, outside
	// the prefix, with another value, or that the fold has not.
	Watch Kind = "watch"
)

// MaxExamples is how many violations of each kind a Report keeps.
const MaxExamples = 10

// Violation is one breach of a guarantee.
type Violation struct {
	Kind Kind `json:"kind"`
	// Session and Index locate the operation, when one is at fault (-1 when not).
	Session int `json:"session"`
	Index   int `json:"index"`
	// Seq is the stream sequence involved, if any.
	Seq uint64 `json:"seq,omitempty"`
	// Replica is the replica involved, if any.
	Replica string `json:"replica,omitempty"`
	// Detail says what was seen and what was expected.
	Detail string `json:"detail"`
}

// String formats v on one line.
func (v Violation) String() string {
	var b strings.Builder
	b.WriteString(string(v.Kind))
	if v.Session >= 0 {
		fmt.Fprintf(&b, " session %d op %d", v.Session, v.Index)
	}
	if v.Seq != 0 {
		fmt.Fprintf(&b, " seq %d", v.Seq)
	}
	if v.Replica != "" {
		fmt.Fprintf(&b, " replica %s", v.Replica)
	}
	return b.String() + ": " + v.Detail
}

// Report is the checker's verdict.
type Report struct {
	// Ops counts the operations; Writes, Reads by outcome.
	Ops    int                     `json:"ops"`
	Writes map[history.Outcome]int `json:"writes"`
	// Txns counts the acknowledged transactions (among Writes).
	Txns  int                     `json:"txns"`
	Reads map[history.Outcome]int `json:"reads"`
	// StreamLen is the number of messages in the final stream;
	// Replicas the number of replica states checked.
	StreamLen int `json:"stream_len"`
	Replicas  int `json:"replicas"`
	// Lost, Duplicated and Unexpected count writes lost, stored twice or
	// more, and stored without a session having sent them.
	Lost       int `json:"lost"`
	Duplicated int `json:"duplicated"`
	Unexpected int `json:"unexpected"`
	// IndeterminateStored counts indeterminate writes found in the stream.
	IndeterminateStored int `json:"indeterminate_stored"`
	// LostByFault counts acknowledged writes that a fault lost on purpose
	// (a store restored from an older copy); they are not violations.
	LostByFault int `json:"lost_by_fault,omitempty"`
	// Unverifiable counts reads of a tail that a fault lost, whose values
	// no stream holds any more (their session guarantees are still
	// checked), and operations sent before such a restore and answered
	// after it, which the session checks leave out.
	Unverifiable int `json:"unverifiable,omitempty"`
	// Epochs counts the deleted streams checked; FinalReads the strong
	// reads made at the end.
	Epochs     int `json:"epochs,omitempty"`
	FinalReads int `json:"final_reads,omitempty"`
	// Watchers counts the watchers checked, WatchEvents the records and
	// changes of theirs checked, and WatchUnverifiable the listings left
	// out because they saw a deleted stream or a tail a fault lost.
	Watchers          int   `json:"watchers,omitempty"`
	WatchChanges      []int `json:"watch_changes,omitempty"` // change events per watcher
	WatchEvents       int   `json:"watch_events,omitempty"`
	WatchUnverifiable int   `json:"watch_unverifiable,omitempty"`
	// Counts holds how many violations of each kind were found; Examples
	// up to MaxExamples of each.
	Counts   map[Kind]int         `json:"counts"`
	Examples map[Kind][]Violation `json:"examples"`
}

// Violations returns the total number of violations.
func (r *Report) Violations() int {
	n := 0
	for _, c := range r.Counts {
		n += c
	}
	return n
}

// OK reports whether no violation was found.
func (r *Report) OK() bool { return r.Violations() == 0 }

// Summary lists the counts by kind and the examples, one per line.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d ops (writes %v, %d of them transactions, reads %v), stream %d messages, %d replicas: %d violations, %d lost, %d duplicated, %d unexpected\n",
		r.Ops, r.Writes, r.Txns, r.Reads, r.StreamLen, r.Replicas, r.Violations(), r.Lost, r.Duplicated, r.Unexpected)
	if r.LostByFault+r.Unverifiable+r.Epochs+r.FinalReads > 0 {
		fmt.Fprintf(&b, "  %d acknowledged writes lost by a fault (not counted as lost), %d reads of a lost tail, %d deleted streams, %d final strong reads\n",
			r.LostByFault, r.Unverifiable, r.Epochs, r.FinalReads)
	}
	if r.Watchers > 0 {
		fmt.Fprintf(&b, "  %d watchers: %d watch events checked, %d listings not verifiable\n", r.Watchers, r.WatchEvents, r.WatchUnverifiable)
	}
	kinds := make([]string, 0, len(r.Counts))
	for k := range r.Counts {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %s: %d\n", k, r.Counts[Kind(k)])
		for _, v := range r.Examples[Kind(k)] {
			fmt.Fprintf(&b, "    %s\n", v)
		}
	}
	return b.String()
}

func (r *Report) add(v Violation) {
	r.Counts[v.Kind]++
	if len(r.Examples[v.Kind]) < MaxExamples {
		r.Examples[v.Kind] = append(r.Examples[v.Kind], v)
	}
}

func (r *Report) opViolation(k Kind, op *history.Op, format string, args ...any) {
	r.add(Violation{Kind: k, Session: op.Session, Index: op.Index, Detail: fmt.Sprintf(format, args...)})
}

// world is what the ops of a history are judged against: the final stream,
// the streams deleted during the run and the tails lost by faults.
type world struct {
	final   *history.Snapshots // nil without a final state
	finalID string
	epochs  []history.Epoch
	olds    map[string]*history.Snapshots // deleted streams by identity
	losses  []history.Loss
}

// snaps returns the stream an op's reply named: a deleted one, or the final
// one. ok is false for a stream the history does not know.
func (w *world) snaps(op *history.Op) (s *history.Snapshots, ok bool) {
	if old := w.olds[op.Stream]; old != nil {
		return old, true
	}
	if op.Stream == "" || w.finalID == "" || op.Stream == w.finalID {
		return w.final, true
	}
	return nil, false
}

// lostByFault reports whether op, an acknowledged write, was acknowledged
// in a tail of the stream that a fault then lost.
func (w *world) lostByFault(op *history.Op) bool {
	for _, l := range w.losses {
		if op.Complete.Before(l.Restored) && op.Revision > l.Last {
			return true
		}
	}
	return false
}

// straddles reports whether op was sent before a restore that lost a tail
// and answered after it.
func (w *world) straddles(op *history.Op) bool {
	for _, l := range w.losses {
		if op.Invoke.Before(l.Restored) && !op.Complete.Before(l.Restored) {
			return true
		}
	}
	return false
}

// readLostTail reports whether op, a read, was sent before a restore and saw
// a position in the tail that the restore lost: no stream holds what it
// read any more.
func (w *world) readLostTail(op *history.Op) bool {
	for _, l := range w.losses {
		if !op.Invoke.Before(l.Restored) {
			continue
		}
		if op.Revision > l.Last || op.Applied > l.Last {
			return true
		}
		for _, it := range op.Items {
			if it.Revision > l.Last {
				return true
			}
		}
	}
	return false
}

// Check verifies h and returns what it found.
func Check(h *history.History) *Report {
	r := &Report{
		Ops:      len(h.Ops),
		Writes:   map[history.Outcome]int{},
		Reads:    map[history.Outcome]int{},
		Counts:   map[Kind]int{},
		Examples: map[Kind][]Violation{},
		Epochs:   len(h.Epochs),
	}
	for _, op := range h.Ops {
		if op.Kind == history.Txn && op.Outcome == history.OK {
			r.Txns++
		}
		if op.Kind.Writes() {
			r.Writes[op.Outcome]++
		} else {
			r.Reads[op.Outcome]++
		}
	}
	w := &world{epochs: h.Epochs, olds: map[string]*history.Snapshots{}, losses: h.Losses}
	for _, e := range h.Epochs {
		w.olds[e.StreamID] = history.NewSnapshots(e.Stream)
	}
	if h.Final != nil {
		w.final = history.NewSnapshots(h.Final.Stream)
		w.finalID = h.Final.StreamID
		r.StreamLen = len(h.Final.Stream)
		r.Replicas = len(h.Final.Replicas)
		checkStream(r, h, w, checkWriteIDs(r, h, w))
		for _, rep := range h.Final.Replicas {
			checkReplica(r, w.final, rep)
		}
		checkFinalReads(r, w.final, h.Final.Reads)
	} else {
		r.add(Violation{Kind: NoFinalState, Session: -1, Index: -1, Detail: "the history has no final state; durability not checked"})
		checkWriteIDs(r, h, w)
	}
	checkWatches(r, w, h.Watches)
	checkSessionSeqs(r, h)
	for _, ops := range h.Sessions() {
		checkSession(r, w, ops)
	}
	return r
}

// sameContent reports whether two writes carry the same key, kind and value.
func sameContent(a, b *history.Op) bool {
	return a.Key == b.Key && a.Kind == b.Kind && (a.Kind != history.Put || bytes.Equal(a.Value, b.Value))
}

// checkWriteIDs checks writes that share a write id: a write of other
// content than an earlier one with its id, which was acknowledged or is
// stored, must not be acknowledged, and a retry of the same content must
// get the same revision. It returns the writes it found reusing an id.
func checkWriteIDs(r *Report, h *history.History, w *world) map[*history.Op]bool {
	byID := map[string][]*history.Op{}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind.IsWrite() && op.WriteID != "" {
			byID[op.WriteID] = append(byID[op.WriteID], op)
		}
	}
	stored := map[string][]history.Message{}
	streams := []*history.Snapshots{w.final}
	for _, e := range w.epochs {
		streams = append(streams, w.olds[e.StreamID])
	}
	for _, s := range streams {
		if s == nil {
			continue
		}
		for _, m := range s.Stream {
			if len(byID[m.MsgID]) > 1 {
				stored[m.MsgID] = append(stored[m.MsgID], m)
			}
		}
	}
	isStored := func(op *history.Op) bool {
		for _, m := range stored[op.WriteID] {
			if m.Key == op.Key && m.Kind == op.Kind && m.TTL == op.TTL && (m.Kind != history.Put || bytes.Equal(m.Value, op.Value)) {
				return true
			}
		}
		return false
	}
	reused := map[*history.Op]bool{}
	for id, ops := range byID {
		if len(ops) < 2 {
			continue
		}
		sort.SliceStable(ops, func(a, b int) bool { return ops[a].Invoke.Before(ops[b].Invoke) })
		var refs []*history.Op // earlier writes of the id that took effect
		for _, op := range ops {
			if op.Outcome == history.OK {
				for _, ref := range refs {
					switch {
					case !sameContent(op, ref):
						reused[op] = true
						r.opViolation(WriteIDReused, op, "write id %q names %s %q = %q (sent first), but %s %q = %q was acknowledged at revision %d",
							id, ref.Kind, ref.Key, abbrev(ref.Value), op.Kind, op.Key, abbrev(op.Value), op.Revision)
					case ref.Outcome == history.OK && op.Stream == ref.Stream && op.Revision != ref.Revision && !w.lostByFault(ref) && !w.lostByFault(op):
						r.opViolation(WrongRevision, op, "retry of write id %q acknowledged at revision %d, the original at %d", id, op.Revision, ref.Revision)
					default:
						continue
					}
					break
				}
			}
			if (op.Outcome == history.OK && !reused[op]) || isStored(op) {
				refs = append(refs, op)
			}
		}
	}
	return reused
}

// checkSessionSeqs checks that no two different writes of one session
// with one session sequence were both acknowledged.
func checkSessionSeqs(r *Report, h *history.History) {
	type slot struct {
		session string
		seq     uint64
	}
	acked := map[slot]*history.Op{}
	for i := range h.Ops {
		op := &h.Ops[i]
		if !op.Kind.IsWrite() || op.Outcome != history.OK || op.SessionID == "" {
			continue
		}
		k := slot{op.SessionID, op.SessionSeq}
		prev := acked[k]
		if prev == nil {
			acked[k] = op
			continue
		}
		if prev.WriteID != op.WriteID {
			r.opViolation(SessionSeqReused, op, "session %s sequence %d acknowledged twice: write %q at revision %d (session %d op %d) and write %q at revision %d",
				op.SessionID, op.SessionSeq, prev.WriteID, prev.Revision, prev.Session, prev.Index, op.WriteID, op.Revision)
		}
	}
}

// checkStream matches the messages of every stream (the deleted ones and
// the final one) with the writes of the history.
func checkStream(r *Report, h *history.History, w *world, reused map[*history.Op]bool) {
	byID := map[string][]*history.Op{}
	byValue := map[string]*history.Op{}
	txns := map[string]*history.Op{}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind == history.Txn {
			txns[op.WriteID] = op
		}
		if !op.Kind.IsWrite() {
			continue
		}
		if op.WriteID != "" {
			byID[op.WriteID] = append(byID[op.WriteID], op)
		}
		if op.Kind == history.Put && len(op.Value) > 0 {
			byValue[string(op.Value)] = op
		}
	}
	type place struct {
		stream string
		seq    uint64
	}
	stored := map[*history.Op]place{}
	streams := make([]struct {
		id string
		s  *history.Snapshots
	}, 0, len(w.epochs)+1)
	for _, e := range w.epochs {
		streams = append(streams, struct {
			id string
			s  *history.Snapshots
		}{e.StreamID, w.olds[e.StreamID]})
	}
	streams = append(streams, struct {
		id string
		s  *history.Snapshots
	}{w.finalID, w.final})
	for _, st := range streams {
		s := st.s
		for _, m := range s.Stream {
			if !m.Kind.IsWrite() {
				continue // a writer's claim on a session number, a transaction's marker or a clock tick: not a write
			}
			if m.TxnIndex > 0 {
				if m.TxnIndex == m.TxnSize {
					checkTxnStored(r, s, txns, m, func(op *history.Op) bool {
						_, dup := stored[op]
						stored[op] = place{st.id, m.Seq}
						return dup
					})
				}
				continue
			}
			var op *history.Op
			// Of the writes with the message's id, the first with its
			// content; the others of that content are its retries.
			cands := byID[m.MsgID]
			for _, c := range cands {
				if c.Key == m.Key && c.Kind == m.Kind && (m.Kind != history.Put || bytes.Equal(c.Value, m.Value)) {
					op = c
					break
				}
			}
			if op == nil && len(cands) > 0 {
				op = cands[0]
			}
			if op == nil && m.Kind == history.Put {
				op = byValue[string(m.Value)]
			}
			if op == nil {
				r.Unexpected++
				r.add(Violation{Kind: UnexpectedWrite, Session: -1, Index: -1, Seq: m.Seq,
					Detail: fmt.Sprintf("%s %q (msg id %q) was sent by no session", m.Kind, m.Key, m.MsgID)})
				continue
			}
			if first, dup := stored[op]; dup && first.stream == st.id {
				r.Duplicated++
				r.add(Violation{Kind: DuplicateWrite, Session: op.Session, Index: op.Index, Seq: m.Seq,
					Detail: fmt.Sprintf("%s %q stored at %d and again at %d", op.Kind, op.Key, first.seq, m.Seq)})
				continue
			}
			same := []*history.Op{op}
			for _, c := range cands {
				if c != op && sameContent(c, op) {
					same = append(same, c)
				}
			}
			for _, c := range same {
				stored[c] = place{st.id, m.Seq}
			}
			if m.Key != op.Key || m.Kind != op.Kind || m.TTL != op.TTL || (op.Kind == history.Put && !bytes.Equal(m.Value, op.Value)) {
				r.add(Violation{Kind: CorruptWrite, Session: op.Session, Index: op.Index, Seq: m.Seq,
					Detail: fmt.Sprintf("stored %s %q = %q (ttl %v), sent %s %q = %q (ttl %v)", m.Kind, m.Key, m.Value, m.TTL, op.Kind, op.Key, op.Value, op.TTL)})
			}
			for _, c := range same {
				checkStored(r, w, s, st.id, m, c)
			}
		}
	}
	for i := range h.Ops {
		op := &h.Ops[i]
		if !op.Kind.Writes() || op.Outcome != history.OK {
			continue
		}
		if _, ok := stored[op]; ok {
			continue
		}
		switch {
		case w.lostByFault(op):
			r.LostByFault++
		case reused[op]:
			// Reported as write-id-reused: the acknowledged content was never stored.
		default:
			r.Lost++
			r.opViolation(LostWrite, op, "%s %q acknowledged at revision %d is not in the stream", op.Kind, op.Key, op.Revision)
		}
	}
}

// checkTxnStored checks the transaction whose last op is m, found in the
// stream of s: the transaction op that sent it (by its write id, in the
// message ids "txn:<id>:<i>" of its messages), its content, and its
// outcome; store records it as stored and reports whether it already was.
func checkTxnStored(r *Report, s *history.Snapshots, txns map[string]*history.Op, m history.Message, store func(*history.Op) bool) {
	first := m.Seq - uint64(m.TxnSize) + 1
	head, _ := s.Message(first)
	id, _ := strings.CutPrefix(head.MsgID, "txn:")
	id = id[:max(strings.LastIndexByte(id, ':'), 0)]
	op := txns[id]
	if op == nil {
		r.Unexpected++
		r.add(Violation{Kind: UnexpectedWrite, Session: -1, Index: -1, Seq: m.Seq,
			Detail: fmt.Sprintf("transaction of %d ops (msg id %q) was sent by no session", m.TxnSize, head.MsgID)})
		return
	}
	if store(op) {
		r.Duplicated++
		r.add(Violation{Kind: DuplicateWrite, Session: op.Session, Index: op.Index, Seq: m.Seq, Detail: "transaction stored twice"})
		return
	}
	if len(op.TxnOps) != m.TxnSize {
		r.add(Violation{Kind: CorruptWrite, Session: op.Session, Index: op.Index, Seq: m.Seq,
			Detail: fmt.Sprintf("transaction stored with %d ops, sent with %d", m.TxnSize, len(op.TxnOps))})
		return
	}
	for i, t := range op.TxnOps {
		got, _ := s.Message(first + uint64(i))
		if got.Key != t.Key || got.Kind != t.Kind || (t.Kind == history.Put && !bytes.Equal(got.Value, t.Value)) {
			r.add(Violation{Kind: CorruptWrite, Session: op.Session, Index: op.Index, Seq: got.Seq,
				Detail: fmt.Sprintf("transaction op %d stored as %s %q = %q, sent %s %q = %q", i, got.Kind, got.Key, got.Value, t.Kind, t.Key, t.Value)})
		}
	}
	switch {
	case op.Outcome == history.Failed:
		r.add(Violation{Kind: FailedWriteApplied, Session: op.Session, Index: op.Index, Seq: m.Seq,
			Detail: fmt.Sprintf("transaction reported failed (%s) is stored at %d", op.Code, m.Seq)})
	case op.Outcome == history.OK && op.Revision != m.Seq:
		r.add(Violation{Kind: WrongRevision, Session: op.Session, Index: op.Index, Seq: m.Seq,
			Detail: fmt.Sprintf("transaction acknowledged at %d, stored at %d", op.Revision, m.Seq)})
	}
}

// checkStored checks one write found at m in the stream with identity id.
func checkStored(r *Report, w *world, s *history.Snapshots, id string, m history.Message, op *history.Op) {
	switch op.Outcome {
	case history.OK:
		if op.Stream != "" && id != "" && op.Stream != id {
			r.add(Violation{Kind: WrongStream, Session: op.Session, Index: op.Index, Seq: m.Seq,
				Detail: fmt.Sprintf("stored in stream %s, acknowledged with a token of stream %s", id, op.Stream)})
		}
		if op.Revision != m.Seq && !w.lostByFault(op) {
			r.add(Violation{Kind: WrongRevision, Session: op.Session, Index: op.Index, Seq: m.Seq,
				Detail: fmt.Sprintf("acknowledged with revision %d, stored at %d", op.Revision, m.Seq)})
		}
		if s.Final.Skipped[m.Seq] {
			r.add(Violation{Kind: AckedWriteSkipped, Session: op.Session, Index: op.Index, Seq: m.Seq,
				Detail: fmt.Sprintf("acknowledged, but session %s sequence %d is not above an earlier one", m.SessionID, m.SessionSeq)})
		}
	case history.Failed:
		if !s.Final.Skipped[m.Seq] {
			r.add(Violation{Kind: FailedWriteApplied, Session: op.Session, Index: op.Index, Seq: m.Seq,
				Detail: fmt.Sprintf("reported failed (%s), but stored and applied", op.Code)})
		}
	case history.Indeterminate:
		r.IndeterminateStored++
	}
}

// checkFinalReads compares the strong reads made at the end with the fold of
// the final stream: every key the stream wrote, read through every path.
func checkFinalReads(r *Report, s *history.Snapshots, reads []history.FinalRead) {
	r.FinalReads = len(reads)
	type at struct{ via, key string }
	seen := map[at]bool{}
	vias := map[string]bool{}
	for _, rd := range reads {
		vias[rd.Via] = true
		seen[at{rd.Via, rd.Key}] = true
		want, ok := s.Final.Keys[rd.Key]
		bad := func(k Kind, format string, args ...any) {
			r.add(Violation{Kind: k, Session: -1, Index: -1, Replica: rd.Via, Seq: rd.Revision,
				Detail: fmt.Sprintf("key %q: ", rd.Key) + fmt.Sprintf(format, args...)})
		}
		got := history.Record{Key: rd.Key, Revision: rd.Revision, Value: rd.Value, Deleted: !rd.Found}
		switch {
		case rd.Error != "":
			bad(FinalMissing, "strong read failed: %s", rd.Error)
		case !ok && (rd.Found || rd.Revision != 0):
			bad(FinalDifferent, "read %s; the stream never wrote it", describe(got))
		case !ok:
		case !want.Deleted && !rd.Found:
			bad(FinalMissing, "not found (revision %d); the stream has %s", rd.Revision, describe(want))
		case want.Deleted != !rd.Found || want.Revision != rd.Revision || (rd.Found && !bytes.Equal(want.Value, rd.Value)):
			bad(FinalDifferent, "read %s; the stream has %s", describe(got), describe(want))
		}
	}
	if len(reads) == 0 {
		return
	}
	keys := make([]string, 0, len(s.Final.Keys))
	for k := range s.Final.Keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for via := range vias {
		for _, k := range keys {
			if !seen[at{via, k}] {
				r.add(Violation{Kind: FinalMissing, Session: -1, Index: -1, Replica: via,
					Detail: fmt.Sprintf("key %q: not read at the end; the stream has %s", k, describe(s.Final.Keys[k]))})
			}
		}
	}
}

// checkReplica compares a replica's state with the fold of the stream up to
// its applied sequence.
func checkReplica(r *Report, s *history.Snapshots, rep history.Replica) {
	last := uint64(len(s.Stream))
	if rep.Error != "" {
		r.add(Violation{Kind: NotConverged, Session: -1, Index: -1, Replica: rep.ID,
			Detail: "could not be read at the end: " + rep.Error})
		return
	}
	if rep.Applied > last {
		r.add(Violation{Kind: ReplicaNotFold, Session: -1, Index: -1, Replica: rep.ID, Seq: rep.Applied,
			Detail: fmt.Sprintf("applied %d, beyond the stream's last %d", rep.Applied, last)})
		return
	}
	if rep.Applied < last {
		r.add(Violation{Kind: NotConverged, Session: -1, Index: -1, Replica: rep.ID, Seq: rep.Applied,
			Detail: fmt.Sprintf("applied %d of %d", rep.Applied, last)})
	}
	want := s.Final
	if rep.Applied < last {
		want = s.FoldTo(rep.Applied)
	}
	bad := func(key string, format string, args ...any) {
		r.add(Violation{Kind: ReplicaNotFold, Session: -1, Index: -1, Replica: rep.ID,
			Detail: fmt.Sprintf("key %q: ", key) + fmt.Sprintf(format, args...)})
	}
	have := map[string]history.Record{}
	for _, rec := range rep.Records {
		if _, dup := have[rec.Key]; dup {
			bad(rec.Key, "listed twice")
			continue
		}
		have[rec.Key] = rec
	}
	keys := make([]string, 0, len(want.Keys))
	for k := range want.Keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w := want.Keys[k]
		g, ok := have[k]
		switch {
		case !ok:
			bad(k, "missing; the fold at %d has %s", rep.Applied, describe(w))
		case g.Deleted != w.Deleted || g.Revision != w.Revision || (!w.Deleted && !bytes.Equal(g.Value, w.Value)):
			bad(k, "has %s; the fold at %d has %s", describe(g), rep.Applied, describe(w))
		}
	}
	extra := make([]string, 0)
	for k := range have {
		if _, ok := want.Keys[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		bad(k, "has %s; the fold at %d never wrote it", describe(have[k]), rep.Applied)
	}
}

func describe(rec history.Record) string {
	if rec.Deleted {
		return fmt.Sprintf("a tombstone at %d", rec.Revision)
	}
	return fmt.Sprintf("%q at %d", abbrev(rec.Value), rec.Revision)
}

func abbrev(b []byte) string {
	if len(b) > 48 {
		return string(b[:48]) + "..."
	}
	return string(b)
}

// sessionState is what a session has done and seen so far.
type sessionState struct {
	own       map[string]uint64 // key -> revision of the session's last acknowledged write
	ownMax    uint64            // highest revision of its acknowledged writes
	lastWrite uint64            // revision of its last acknowledged write
	lastSSeq  uint64            // session sequence of its last acknowledged write
	seen      map[string]uint64 // key -> highest revision read
	pos       uint64            // highest snapshot position read
	seenMax   uint64            // highest revision or position read
}

// resetCodes are the error codes after which a session drops its token and
// starts again: its token names a history the stream no longer has.
var resetCodes = map[string]bool{"token_stream_mismatch": true, "token_from_future": true}

// checkSession checks the session guarantees over one session's
// operations, in the order it issued them, and each read against the stream
// its reply named. The guarantees start again when the session drops its
// token (its token named a deleted stream or a lost tail), when a reply
// names another stream than the session's, and at the first operation
// answered after a restore that lost part of what the session had seen.
func checkSession(r *Report, w *world, ops []history.Op) {
	fresh := func() sessionState { return sessionState{own: map[string]uint64{}, seen: map[string]uint64{}} }
	st := fresh()
	stream := ""
	loss := 0 // losses[:loss] are behind the session
	acked := map[string]*history.Op{}
	for i := range ops {
		op := &ops[i]
		for loss < len(w.losses) && !op.Complete.Before(w.losses[loss].Restored) {
			if last := w.losses[loss].Last; st.ownMax > last || st.seenMax > last || st.pos > last {
				st = fresh()
			}
			loss++
		}
		if w.straddles(op) {
			// Sent before a restore, answered after it: from which history
			// is unknown. The stream checks still judge a write.
			r.Unverifiable++
			continue
		}
		if op.Outcome == history.OK && op.Stream != "" {
			if stream != "" && op.Stream != stream {
				if op.TokenIn != 0 {
					r.opViolation(WrongStream, op, "the request carried a token of stream %s (at %d), the reply names stream %s: a token of another stream was accepted",
						stream, op.TokenIn, op.Stream)
				}
				st = fresh()
			}
			stream = op.Stream
		}
		if op.TokenIn != 0 && op.TokenOut != 0 && op.TokenOut < op.TokenIn && !resetCodes[op.Code] {
			r.opViolation(TokenIgnored, op, "reply token %d is behind the request token %d", op.TokenOut, op.TokenIn)
		}
		if op.Outcome != history.OK {
			if op.Code == "token_from_future" && len(w.losses) == 0 && op.TokenIn != 0 && op.TokenIn <= max(st.ownMax, st.seenMax) {
				r.opViolation(TokenIgnored, op, "token %d refused as ahead of the stream, which the session had seen reach it", op.TokenIn)
			}
			if resetCodes[op.Code] {
				st, stream = fresh(), ""
			}
			continue
		}
		s, known := w.snaps(op)
		if !known {
			r.opViolation(WrongStream, op, "reply token names stream %s, which the history does not know", op.Stream)
			continue
		}
		if !op.Kind.IsWrite() {
			for _, e := range w.epochs {
				if e.StreamID == op.Stream && op.Invoke.After(e.Healed) {
					r.opViolation(DeletedStreamRead, op, "sent %v after stream %s was deleted and its successor ready, served by %s from it (applied %d)",
						op.Invoke.Sub(e.Healed).Round(time.Millisecond), e.StreamID, op.ServedBy, op.Applied)
				}
			}
			if s != nil && w.readLostTail(op) {
				r.Unverifiable++
				s = nil
			}
		}
		switch op.Kind {
		case history.Put, history.Delete:
			// A write id the session already had acknowledged: a retry is
			// that write again, not a new one, and other content is a
			// reuse; checkWriteIDs judges both.
			if prev := acked[op.WriteID]; prev != nil && op.WriteID != "" {
				continue
			}
			acked[op.WriteID] = op
			checkWrite(r, &st, op)
		case history.Txn:
			if prev := acked[op.WriteID]; prev != nil && op.WriteID != "" {
				continue
			}
			acked[op.WriteID] = op
			// Each op as a write of the session, at its own revision; the
			// transaction is one step of the session's order.
			for i, t := range op.TxnOps {
				w := *op
				w.Kind, w.Key, w.Value = t.Kind, t.Key, t.Value
				w.Revision = op.Revision - uint64(len(op.TxnOps)) + 1 + uint64(i)
				if i > 0 {
					w.SessionSeq = 0
				}
				checkWrite(r, &st, &w)
			}
		case history.Get:
			checkGet(r, s, &st, op)
		case history.Scan:
			checkScan(r, s, &st, op)
		}
	}
}

func checkWrite(r *Report, st *sessionState, op *history.Op) {
	switch {
	case op.Revision == 0:
		r.opViolation(WrongRevision, op, "acknowledged without a revision")
		return
	case op.Revision <= st.lastWrite:
		r.opViolation(MonotonicWrites, op, "revision %d is not above the session's previous write at %d", op.Revision, st.lastWrite)
	case op.SessionSeq != 0 && op.SessionSeq <= st.lastSSeq:
		r.opViolation(MonotonicWrites, op, "session sequence %d is not above the previous write's %d", op.SessionSeq, st.lastSSeq)
	}
	if floor := max(op.TokenIn, st.seenMax); op.Revision <= floor {
		r.opViolation(WritesFollowReads, op, "revision %d is not above the token %d / what the session had read (%d)", op.Revision, op.TokenIn, st.seenMax)
	}
	st.own[op.Key] = max(st.own[op.Key], op.Revision)
	st.ownMax = max(st.ownMax, op.Revision)
	st.lastWrite = max(st.lastWrite, op.Revision)
	st.lastSSeq = max(st.lastSSeq, op.SessionSeq)
}

// checkPosition checks a read's snapshot position against the token it
// carried and the session's past.
func checkPosition(r *Report, st *sessionState, op *history.Op) {
	if op.Applied == 0 {
		return
	}
	switch {
	case op.TokenIn != 0 && op.Applied < op.TokenIn:
		r.opViolation(TokenIgnored, op, "served by %s at applied %d, behind the token %d", op.ServedBy, op.Applied, op.TokenIn)
	case op.Applied < st.ownMax:
		r.opViolation(ReadYourWrites, op, "served by %s at applied %d, behind the session's own write at %d", op.ServedBy, op.Applied, st.ownMax)
	case op.Applied < st.pos:
		r.opViolation(MonotonicReads, op, "served by %s at applied %d, behind an earlier read at %d", op.ServedBy, op.Applied, st.pos)
	}
	st.pos = max(st.pos, op.Applied)
	st.seenMax = max(st.seenMax, op.Applied)
}

// checkTxnPosition checks that a read was not served at a position inside
// a transaction. A get reports at least its record's revision, which may
// be an op of a transaction that was applied whole.
func checkTxnPosition(r *Report, s *history.Snapshots, op *history.Op) {
	if op.Applied == 0 || (op.Kind == history.Get && op.Applied == op.Revision) {
		return
	}
	if t, ok := s.TxnAt(op.Applied); ok && op.Applied < t.Last {
		r.opViolation(TxnPartial, op, "served by %s at applied %d, inside the transaction at %d-%d", op.ServedBy, op.Applied, t.First, t.Last)
	}
}

// checkScanTxns checks that a scan that shows an op of a transaction shows
// every other key of it in its range at that op's revision or later.
func checkScanTxns(r *Report, s *history.Snapshots, op *history.Op) {
	got := map[string]uint64{}
	for _, it := range op.Items {
		got[it.Key] = it.Revision
	}
	for _, it := range op.Items {
		t, ok := s.TxnAt(it.Revision)
		if !ok {
			continue
		}
		for q := t.First + 1; q <= t.Last; q++ {
			m, _ := s.Message(q)
			if rev, returned := got[m.Key]; returned && rev < q && inScanRange(op, m.Key) {
				r.opViolation(TxnPartial, op, "scan from %s shows %q at %d of the transaction at %d-%d, and %q at %d, before its op at %d",
					op.ServedBy, it.Key, it.Revision, t.First, t.Last, m.Key, rev, q)
				return
			}
		}
	}
}

func checkGet(r *Report, s *history.Snapshots, st *sessionState, op *history.Op) {
	// The value against the stream.
	if s != nil {
		checkGetValue(r, s, op)
		checkTxnPosition(r, s, op)
	}
	// Session guarantees, on the key's revision.
	switch {
	case op.Revision < st.own[op.Key]:
		r.opViolation(ReadYourWrites, op, "read %q at revision %d (found %v) from %s, the session wrote it at %d",
			op.Key, op.Revision, op.Found, op.ServedBy, st.own[op.Key])
	case op.Revision < st.seen[op.Key]:
		r.opViolation(MonotonicReads, op, "read %q at revision %d from %s, the session had read it at %d",
			op.Key, op.Revision, op.ServedBy, st.seen[op.Key])
	}
	checkPosition(r, st, op)
	st.seen[op.Key] = max(st.seen[op.Key], op.Revision)
	st.seenMax = max(st.seenMax, op.Revision)
}

func checkGetValue(r *Report, s *history.Snapshots, op *history.Op) {
	if op.Revision != 0 {
		m, ok := s.Message(op.Revision)
		w, written := s.WrittenAt(op.Key, op.Revision)
		switch {
		case !ok:
			r.opViolation(PhantomRead, op, "read %q at revision %d, beyond the stream's %d messages", op.Key, op.Revision, len(s.Stream))
			return
		case s.Final.Skipped[op.Revision] && m.Key == op.Key:
			r.opViolation(PhantomRead, op, "read %q at revision %d, a write replicas must skip", op.Key, op.Revision)
			return
		case !written || w.Deleted == op.Found || (op.Found && !bytes.Equal(w.Value, op.Value)):
			r.opViolation(PhantomRead, op, "read %q = %q (found %v) at revision %d; the stream holds %s %q = %q there",
				op.Key, abbrev(op.Value), op.Found, op.Revision, m.Kind, m.Key, abbrev(m.Value))
			return
		}
	} else if op.Found {
		r.opViolation(PhantomRead, op, "read %q = %q without a revision", op.Key, abbrev(op.Value))
		return
	}
	if op.Applied == 0 {
		return
	}
	if op.Applied > uint64(len(s.Stream)) {
		r.opViolation(PhantomRead, op, "served at applied %d, beyond the stream's %d messages", op.Applied, len(s.Stream))
		return
	}
	want, ok := s.At(op.Key, op.Applied)
	switch {
	case !ok && op.Revision == 0:
	case ok && want.Revision == op.Revision && want.Deleted == !op.Found:
	default:
		got := history.Record{Key: op.Key, Revision: op.Revision, Value: op.Value, Deleted: !op.Found}
		wantDesc := "absent"
		if ok {
			wantDesc = describe(want)
		}
		r.opViolation(SnapshotMismatch, op, "read %q from %s at applied %d: got %s, the fold there has %s",
			op.Key, op.ServedBy, op.Applied, describe(got), wantDesc)
	}
}

func checkScan(r *Report, s *history.Snapshots, st *sessionState, op *history.Op) {
	if s != nil {
		checkScanValues(r, s, op)
		checkTxnPosition(r, s, op)
		checkScanTxns(r, s, op)
	}
	items := map[string]uint64{}
	for _, it := range op.Items {
		items[it.Key] = it.Revision
		if w := st.own[it.Key]; it.Revision < w {
			r.opViolation(ReadYourWrites, op, "scan returned %q at revision %d from %s, the session wrote it at %d", it.Key, it.Revision, op.ServedBy, w)
		} else if seen := st.seen[it.Key]; it.Revision < seen {
			r.opViolation(MonotonicReads, op, "scan returned %q at revision %d from %s, the session had read it at %d", it.Key, it.Revision, op.ServedBy, seen)
		}
	}
	checkPosition(r, st, op)
	for k, rev := range items {
		st.seen[k] = max(st.seen[k], rev)
		st.seenMax = max(st.seenMax, rev)
	}
}

// inScanRange reports whether key belongs to the page op returned.
func inScanRange(op *history.Op, key string) bool {
	if !strings.HasPrefix(key, op.Prefix) || key <= op.After {
		return false
	}
	return op.Next == "" || key <= op.Next
}

func checkScanValues(r *Report, s *history.Snapshots, op *history.Op) {
	prev := ""
	for _, it := range op.Items {
		if !inScanRange(op, it.Key) || it.Key <= prev {
			r.opViolation(PhantomRead, op, "scan returned %q, outside its range or out of order", it.Key)
			return
		}
		prev = it.Key
		w, ok := s.WrittenAt(it.Key, it.Revision)
		if !ok || w.Deleted || !bytes.Equal(w.Value, it.Value) {
			r.opViolation(PhantomRead, op, "scan returned %q = %q at revision %d, which the stream does not hold", it.Key, abbrev(it.Value), it.Revision)
			return
		}
	}
	if op.Limit > 0 && len(op.Items) > op.Limit {
		r.opViolation(PhantomRead, op, "scan returned %d items, over its limit %d", len(op.Items), op.Limit)
	}
	if op.Applied == 0 || op.Applied > uint64(len(s.Stream)) {
		return
	}
	// The page must be exactly the live keys of the fold in its range.
	got := map[string]uint64{}
	for _, it := range op.Items {
		got[it.Key] = it.Revision
	}
	for key := range s.Final.Keys {
		if !inScanRange(op, key) {
			continue
		}
		want, ok := s.At(key, op.Applied)
		live := ok && !want.Deleted
		rev, returned := got[key]
		switch {
		case live && !returned:
			r.opViolation(SnapshotMismatch, op, "scan from %s at applied %d left out %q, live there at %d", op.ServedBy, op.Applied, key, want.Revision)
			return
		case !live && returned:
			r.opViolation(SnapshotMismatch, op, "scan from %s at applied %d returned %q at %d, not live there", op.ServedBy, op.Applied, key, rev)
			return
		case live && returned && rev != want.Revision:
			r.opViolation(SnapshotMismatch, op, "scan from %s at applied %d returned %q at %d, the fold there has it at %d", op.ServedBy, op.Applied, key, rev, want.Revision)
			return
		}
	}
}
