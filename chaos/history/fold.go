package history

// Fold is the state of every key after applying a prefix of the stream,
// with the replicas' session-ordering rule: a message whose SessionSeq is
// not above the highest one already applied for its SessionID is skipped.
type Fold struct {
	// Keys holds every key ever written, tombstones included.
	Keys map[string]Record
	// Applied is the last sequence folded.
	Applied uint64
	// Skipped holds the sequences skipped by the session-ordering rule.
	Skipped map[uint64]bool

	sessions map[string]uint64
	txnSkip  bool // the session rule left out the transaction being folded
}

// NewFold returns the state of an empty stream.
func NewFold() *Fold {
	return &Fold{Keys: map[string]Record{}, Skipped: map[uint64]bool{}, sessions: map[string]uint64{}}
}

// Apply folds m, the message after Applied, into the state. It reports
// whether the message changed a key (false: skipped by session ordering).
func (f *Fold) Apply(m Message) bool {
	f.Applied = m.Seq
	if m.Kind == Marker && m.TxnSize > 0 {
		// A transaction's marker: its session step decides for its ops.
		f.txnSkip = false
		if m.SessionID != "" {
			f.txnSkip = m.SessionSeq <= f.sessions[m.SessionID]
			if !f.txnSkip {
				f.sessions[m.SessionID] = m.SessionSeq
			}
		}
		return false
	}
	if m.Kind == Marker {
		return false // changes no key, and a replica never counts it as skipped
	}
	if m.TxnIndex > 0 && f.txnSkip {
		f.Skipped[m.Seq] = true
		return false
	}
	if m.SessionID != "" {
		if m.SessionSeq <= f.sessions[m.SessionID] {
			f.Skipped[m.Seq] = true
			return false
		}
		f.sessions[m.SessionID] = m.SessionSeq
	}
	rec := Record{Key: m.Key, Revision: m.Seq}
	if m.Kind == Delete {
		rec.Deleted = true
	} else {
		rec.Value = m.Value
		if rec.Value == nil {
			rec.Value = []byte{}
		}
	}
	f.Keys[m.Key] = rec
	return true
}

// Snapshots folds a stream once and answers "what was the state of key at
// sequence n" for any n, from the per-key history of applied writes.
type Snapshots struct {
	// Stream is the folded stream.
	Stream []Message
	// Final is the fold of the whole stream.
	Final *Fold
	// writes holds, per key, the sequences that changed it, ascending.
	writes map[string][]uint64
	// txns are the stream's transactions, in order; txnOf[seq] is the
	// index in txns of the one that holds seq, or -1.
	txns  []TxnSpan
	txnOf []int
}

// TxnSpan is a transaction in the stream: its marker at First, its ops
// after it up to Last.
type TxnSpan struct {
	First, Last uint64
}

// TxnAt returns the transaction that holds the message at seq, marker or
// op, if one does.
func (s *Snapshots) TxnAt(seq uint64) (TxnSpan, bool) {
	if seq == 0 || seq >= uint64(len(s.txnOf)) || s.txnOf[seq] < 0 {
		return TxnSpan{}, false
	}
	return s.txns[s.txnOf[seq]], true
}

// NewSnapshots folds stream, which must be in sequence order from 1.
func NewSnapshots(stream []Message) *Snapshots {
	s := &Snapshots{Stream: stream, Final: NewFold(), writes: map[string][]uint64{}, txnOf: make([]int, len(stream)+1)}
	for i := range s.txnOf {
		s.txnOf[i] = -1
	}
	for _, m := range stream {
		if s.Final.Apply(m) {
			s.writes[m.Key] = append(s.writes[m.Key], m.Seq)
		}
		if m.Kind == Marker && m.TxnSize > 0 && m.Seq+uint64(m.TxnSize) <= uint64(len(stream)) {
			s.txns = append(s.txns, TxnSpan{First: m.Seq, Last: m.Seq + uint64(m.TxnSize)})
			for q := m.Seq; q <= m.Seq+uint64(m.TxnSize); q++ {
				s.txnOf[q] = len(s.txns) - 1
			}
		}
	}
	return s
}

// At returns the state of key after the fold of the first n messages; ok is
// false when no applied write of key is at or below n.
func (s *Snapshots) At(key string, n uint64) (rec Record, ok bool) {
	ws := s.writes[key]
	// The last write at or below n.
	lo, hi := 0, len(ws)
	for lo < hi {
		mid := (lo + hi) / 2
		if ws[mid] <= n {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return Record{Key: key}, false
	}
	m := s.Stream[ws[lo-1]-1]
	rec = Record{Key: key, Revision: m.Seq, Deleted: m.Kind == Delete}
	if !rec.Deleted {
		rec.Value = m.Value
		if rec.Value == nil {
			rec.Value = []byte{}
		}
	}
	return rec, true
}

// Message returns the message at seq, if the stream holds it.
func (s *Snapshots) Message(seq uint64) (Message, bool) {
	if seq == 0 || seq > uint64(len(s.Stream)) {
		return Message{}, false
	}
	return s.Stream[seq-1], true
}

// FoldTo returns the fold of the first n messages.
func (s *Snapshots) FoldTo(n uint64) *Fold {
	f := NewFold()
	for _, m := range s.Stream {
		if m.Seq > n {
			break
		}
		f.Apply(m)
	}
	return f
}
