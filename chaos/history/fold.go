package history

import (
	"sort"
	"strings"
)

// MaxExpiries and MaxExpiryBytes bound the pending expiries (stale ones
// included) that one message of the stream processes, in the order of
// (expiry, key), as replicas do: a message takes entries while it has taken
// fewer than MaxExpiries, whose keys hold fewer than MaxExpiryBytes; the rest
// are processed at the following messages.
const (
	MaxExpiries    = 4096
	MaxExpiryBytes = 256 << 10
)

// Fold is the state of every key after applying a prefix of the stream,
// with the replicas' session-ordering rule (a message whose SessionSeq is
// not above the highest one already applied for its SessionID is skipped)
// and their expiry rule (before a message of stream time t is applied,
// every key whose time to live ran out at or before t becomes a tombstone
// at that message's sequence).
type Fold struct {
	// Keys holds every key ever written, tombstones included.
	Keys map[string]Record
	// Applied is the last sequence folded.
	Applied uint64
	// Skipped holds the sequences skipped by the session-ordering rule.
	Skipped map[uint64]bool
	// Expired counts the keys that expired.
	Expired int

	sessions map[string]uint64
	pending  []expiry // the expiry index, sorted by (at, key)
	txnSkip  bool     // the session rule left out the transaction being folded
}

// expiry is one entry of the expiry index: key expires at at (Unix
// nanoseconds) if its record is still the put at rev.
type expiry struct {
	at  int64
	key string
	rev uint64
}

// NewFold returns the state of an empty stream.
func NewFold() *Fold {
	return &Fold{Keys: map[string]Record{}, Skipped: map[uint64]bool{}, sessions: map[string]uint64{}}
}

// Apply folds m, the message after Applied, into the state, and returns
// the records it wrote: those of the keys it expired, then m's own (none
// when m changes no key or is skipped by session ordering).
func (f *Fold) Apply(m Message) []Record {
	f.Applied = m.Seq
	written := f.expire(m)
	if m.Kind == Marker && m.TxnSize > 0 {
		// A transaction's marker: its session step decides for its ops.
		f.txnSkip = false
		if m.SessionID != "" {
			f.txnSkip = m.SessionSeq <= f.sessions[m.SessionID]
			if !f.txnSkip {
				f.sessions[m.SessionID] = m.SessionSeq
			}
		}
		return written
	}
	if m.Kind == Marker || m.Kind == Tick {
		return written // changes no key, and a replica never counts it as skipped
	}
	if m.TxnIndex > 0 && f.txnSkip {
		f.Skipped[m.Seq] = true
		return written
	}
	if m.SessionID != "" {
		if m.SessionSeq <= f.sessions[m.SessionID] {
			f.Skipped[m.Seq] = true
			return written
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
		if m.TTL > 0 {
			f.index(expiry{at: m.Time.Add(m.TTL).UnixNano(), key: m.Key, rev: m.Seq})
		}
	}
	f.Keys[m.Key] = rec
	return append(written, rec)
}

// index adds e to the expiry index, replacing an entry of the same expiry
// and key.
func (f *Fold) index(e expiry) {
	i := sort.Search(len(f.pending), func(i int) bool {
		p := f.pending[i]
		return p.at > e.at || (p.at == e.at && p.key >= e.key)
	})
	if i < len(f.pending) && f.pending[i].at == e.at && f.pending[i].key == e.key {
		f.pending[i] = e
		return
	}
	f.pending = append(f.pending, expiry{})
	copy(f.pending[i+1:], f.pending[i:])
	f.pending[i] = e
}

// expire processes the index entries due at m's time, up to MaxExpiries:
// each key still at the put it names becomes a tombstone at m.Seq.
func (f *Fold) expire(m Message) []Record {
	if len(f.pending) == 0 || m.Time.IsZero() {
		return nil
	}
	now := m.Time.UnixNano()
	var out []Record
	n, size := 0, 0
	for n < len(f.pending) && n < MaxExpiries && size < MaxExpiryBytes && f.pending[n].at <= now {
		e := f.pending[n]
		n++
		size += len(e.key)
		if rec, ok := f.Keys[e.key]; ok && !rec.Deleted && rec.Revision == e.rev {
			rec = Record{Key: e.key, Revision: m.Seq, Deleted: true}
			f.Keys[e.key] = rec
			f.Expired++
			out = append(out, rec)
		}
	}
	f.pending = f.pending[n:]
	return out
}

// Snapshots folds a stream once and answers "what was the state of key at
// sequence n" for any n, from the per-key history of applied writes.
type Snapshots struct {
	// Stream is the folded stream.
	Stream []Message
	// Final is the fold of the whole stream.
	Final *Fold
	// writes holds, per key, the records written to it, by ascending
	// revision: its applied puts and deletes and its expiries.
	writes map[string][]Record
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
	s := &Snapshots{Stream: stream, Final: NewFold(), writes: map[string][]Record{}, txnOf: make([]int, len(stream)+1)}
	for i := range s.txnOf {
		s.txnOf[i] = -1
	}
	for _, m := range stream {
		for _, rec := range s.Final.Apply(m) {
			s.writes[rec.Key] = append(s.writes[rec.Key], rec)
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
	i := sort.Search(len(ws), func(i int) bool { return ws[i].Revision > n })
	if i == 0 {
		return Record{Key: key}, false
	}
	return ws[i-1], true
}

// WrittenAt returns the record that the fold wrote to key at exactly seq:
// an applied put or delete of key, or key's expiry at that message.
func (s *Snapshots) WrittenAt(key string, seq uint64) (rec Record, ok bool) {
	rec, ok = s.At(key, seq)
	if !ok || rec.Revision != seq {
		return Record{Key: key}, false
	}
	return rec, true
}

// Changes returns the records the fold wrote to keys under prefix with a
// revision in (after, upto], by ascending revision, and by key within one
// (a key written twice at one revision, by its expiry and then by the
// message, in that order).
func (s *Snapshots) Changes(prefix string, after, upto uint64) []Record {
	var out []Record
	for key, ws := range s.writes {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		i := sort.Search(len(ws), func(i int) bool { return ws[i].Revision > after })
		for ; i < len(ws) && ws[i].Revision <= upto; i++ {
			out = append(out, ws[i])
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Revision != out[b].Revision {
			return out[a].Revision < out[b].Revision
		}
		return out[a].Key < out[b].Key
	})
	return out
}

// Live returns the live records of the keys under prefix after the fold of
// the first n messages, by key.
func (s *Snapshots) Live(prefix string, n uint64) []Record {
	var out []Record
	for key := range s.writes {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		if rec, ok := s.At(key, n); ok && !rec.Deleted {
			out = append(out, rec)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key < out[b].Key })
	return out
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
