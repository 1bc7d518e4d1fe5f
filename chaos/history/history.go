// Package history is the record a fault test keeps: every operation its
// client sessions made (what was asked, when, and what came back) and the
// final states of the stream and of every replica, in one JSON file that
// the checker reads. It depends on no other Tidemark package, so that a
// history can be checked by code that shares nothing with the code under
// test.
package history

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Version is the format version of a history file.
const Version = 1

// Kind is what an operation did.
type Kind string

// The operations of a workload.
const (
	Put    Kind = "put"
	Delete Kind = "delete"
	// Marker is a session order marker in the stream: it changes no key.
	Marker Kind = "marker"
	// Tick is a clock tick in the stream: it changes no key itself, but
	// moves stream time, which expires keys whose time to live ran out.
	Tick Kind = "tick"
	Get  Kind = "get"
	Scan Kind = "scan"
	// Txn is an atomic multi-key write: its TxnOps, all or none.
	Txn Kind = "txn"
)

// IsWrite reports whether k changes one key's data.
func (k Kind) IsWrite() bool { return k == Put || k == Delete }

// Writes reports whether k changes data: a write or a transaction.
func (k Kind) Writes() bool { return k.IsWrite() || k == Txn }

// Outcome is how an operation ended, as the client saw it.
type Outcome string

// The outcomes of an operation.
const (
	// OK: the operation took effect (a write was acknowledged with its
	// revision; a read returned a value or a definite not-found).
	OK Outcome = "ok"
	// Failed: the operation definitely did not take effect (a write
	// rejected before it was stored; a read that returned an error).
	Failed Outcome = "failed"
	// Indeterminate: the client cannot know (a timeout, an unavailable
	// reply, a dropped connection): a write may or may not be stored.
	Indeterminate Outcome = "indeterminate"
)

// Item is one key of a scan reply.
type Item struct {
	Key      string `json:"key"`
	Value    []byte `json:"value"`
	Revision uint64 `json:"revision"`
}

// Op is one operation of one session.
type Op struct {
	// Session numbers the session; Index is the operation's position in
	// it. A session issues its operations one at a time, in Index order.
	Session int `json:"session"`
	Index   int `json:"index"`
	// Kind is the operation.
	Kind Kind `json:"kind"`
	// Via names the path the request took ("http 127.0.0.1:8080",
	// "nats"); Replica is the replica a read was pinned to, if any.
	Via     string `json:"via,omitempty"`
	Replica string `json:"replica,omitempty"`

	// Key is the key of a put, delete or get.
	Key string `json:"key,omitempty"`
	// Value is the value a put wrote or a get read.
	Value []byte `json:"value,omitempty"`
	// WriteID is the write's unique id (the stream message id).
	WriteID string `json:"write_id,omitempty"`
	// SessionID and SessionSeq are the write's session ordering, if used.
	SessionID  string `json:"session_id,omitempty"`
	SessionSeq uint64 `json:"session_seq,omitempty"`
	// TTL is a put's time to live, if it had one.
	TTL time.Duration `json:"ttl,omitempty"`

	// TxnOps are the writes of a transaction (Kind Txn), each a Put or a
	// Delete of its own key; its Revision is its last op's, and op i's is
	// Revision - len(TxnOps) + 1 + i.
	TxnOps []TxnOp `json:"txn_ops,omitempty"`

	// Prefix, After and Limit are a scan's request; Items and Next its reply.
	Prefix string `json:"prefix,omitempty"`
	After  string `json:"after,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	Items  []Item `json:"items,omitempty"`
	Next   string `json:"next,omitempty"`

	// TokenIn is the sequence of the token the request carried (0: none);
	// TokenOut the sequence of the token the reply carried (0: none).
	TokenIn  uint64 `json:"token_in,omitempty"`
	TokenOut uint64 `json:"token_out,omitempty"`

	// Invoke and Complete are when the request was sent and when its
	// reply (or failure) arrived.
	Invoke   time.Time `json:"invoke"`
	Complete time.Time `json:"complete"`
	// Outcome is how it ended; Code is the error code of a failure.
	Outcome Outcome `json:"outcome"`
	Code    string  `json:"code,omitempty"`
	Error   string  `json:"error,omitempty"`

	// Revision is a write's revision, or the revision of the state a get
	// read (for a not-found of a deleted key, the delete's revision).
	Revision uint64 `json:"revision,omitempty"`
	// Found reports that a get returned a value (false: not found).
	Found bool `json:"found,omitempty"`
	// ServedBy is the replica that served a read; Applied how far it had
	// applied in the snapshot it read from (0: unknown).
	ServedBy string `json:"served_by,omitempty"`
	Applied  uint64 `json:"applied,omitempty"`
	// Stream is the identity of the stream the reply's token named ("":
	// no token in the reply).
	Stream string `json:"stream,omitempty"`
}

// TxnOp is one write of a transaction.
type TxnOp struct {
	Kind  Kind   `json:"kind"`
	Key   string `json:"key"`
	Value []byte `json:"value,omitempty"`
}

// Message is one message of the stream, as a final dump read it.
type Message struct {
	// Seq is the stream sequence, the write's revision.
	Seq uint64 `json:"seq"`
	// Kind is Put, Delete or Marker.
	Kind Kind `json:"kind"`
	// Key and Value are the key written and, for a put, the value.
	Key   string `json:"key"`
	Value []byte `json:"value,omitempty"`
	// MsgID is the message's deduplication id (the write id).
	MsgID string `json:"msg_id,omitempty"`
	// Batch is the id of the atomic batch that stored the message, if one
	// did.
	Batch string `json:"batch,omitempty"`
	// SessionID and SessionSeq are the write's session ordering, if any.
	SessionID  string `json:"session_id,omitempty"`
	SessionSeq uint64 `json:"session_seq,omitempty"`
	// Time is the message's stream timestamp, and TTL a put's time to
	// live (0: none): the key expires at the first message whose Time is
	// at or after Time + TTL.
	Time time.Time     `json:"time,omitzero"`
	TTL  time.Duration `json:"ttl,omitempty"`
	// TxnIndex and TxnSize place the message in a transaction of TxnSize
	// ops: 0 on its marker (Kind Marker), 1 to TxnSize on its ops; both 0
	// outside one.
	TxnIndex int `json:"txn_index,omitempty"`
	TxnSize  int `json:"txn_size,omitempty"`
}

// Record is the state of one key in a replica.
type Record struct {
	Key      string `json:"key"`
	Value    []byte `json:"value,omitempty"`
	Revision uint64 `json:"revision"`
	// Deleted reports a tombstone: the key's last write was a delete.
	Deleted bool `json:"deleted,omitempty"`
}

// Replica is the final state of one replica.
type Replica struct {
	// ID names the replica.
	ID string `json:"id"`
	// Applied is the last stream sequence it had applied.
	Applied uint64 `json:"applied"`
	// Records are its keys, tombstones included, in any order.
	Records []Record `json:"records"`
	// Error says why the replica could not be dumped, if it could not.
	Error string `json:"error,omitempty"`
}

// Final is the state after the run: the whole stream and every replica.
type Final struct {
	// StreamID is the stream's identity, the one its tokens name ("":
	// unknown).
	StreamID string `json:"stream_id,omitempty"`
	// Stream is every message of the stream, in sequence order.
	Stream []Message `json:"stream"`
	// Replicas are the replicas' states.
	Replicas []Replica `json:"replicas"`
	// Reads are the strong reads of every key made at the end, through
	// every gateway and pinned to every replica.
	Reads []FinalRead `json:"reads,omitempty"`
}

// FinalRead is one strong read of a key made after the replicas converged.
type FinalRead struct {
	// Via names the path ("gateway g1", "gateway g1 replica r2").
	Via string `json:"via"`
	// Key is the key read.
	Key string `json:"key"`
	// Found, Value and Revision are what the read returned (Revision of a
	// not-found: the delete's, if any).
	Found    bool   `json:"found,omitempty"`
	Value    []byte `json:"value,omitempty"`
	Revision uint64 `json:"revision,omitempty"`
	// Error says why the read failed, if it did.
	Error string `json:"error,omitempty"`
}

// Epoch is a stream that a fault deleted during the run: its identity and
// every message it held when it was sealed and deleted.
type Epoch struct {
	// StreamID is the deleted stream's identity.
	StreamID string `json:"stream_id"`
	// Stream is every message it held, in sequence order.
	Stream []Message `json:"stream"`
	// Deleted is when it was deleted; Healed when its successor existed
	// and every replica was ready again. A read sent after Healed must not
	// be served from this stream.
	Deleted time.Time `json:"deleted"`
	Healed  time.Time `json:"healed"`
}

// Loss is a tail of the stream that a fault lost on purpose: the store was
// restored from a copy taken at Copied, holding sequences up to Last, and
// the server came back at Restored. A write acknowledged before Restored
// with a revision above Last was lost by the fault, not by Tidemark.
type Loss struct {
	Last     uint64    `json:"last"`
	Copied   time.Time `json:"copied"`
	Restored time.Time `json:"restored"`
}

// History is what a fault test hands the checker.
type History struct {
	// Version is the file format version.
	Version int `json:"version"`
	// Ops are the operations of every session.
	Ops []Op `json:"ops"`
	// Final is the final state; nil when the run could not dump one.
	Final *Final `json:"final,omitempty"`
	// Epochs are the streams deleted during the run, in order.
	Epochs []Epoch `json:"epochs,omitempty"`
	// Losses are the tails of the stream lost by faults, in order.
	Losses []Loss `json:"losses,omitempty"`
	// Watches are what the workload's watchers saw.
	Watches []Watch `json:"watches,omitempty"`
}

// WatchType is the type of one event a watcher recorded.
type WatchType string

// The events of a watcher.
const (
	// WatchPut and WatchDelete are changes (ID = Revision), and, as puts
	// with ID 0, the records of an initial state.
	WatchPut    WatchType = "put"
	WatchDelete WatchType = "delete"
	// WatchSynced ends an initial state: its ID is the snapshot's position.
	WatchSynced WatchType = "synced"
	// WatchProgress says every change up to its ID has been sent.
	WatchProgress WatchType = "progress"
	// WatchError ends a watch (Code, Error); the watcher then lists again:
	// a new initial state and WatchSynced.
	WatchError WatchType = "error"
	// WatchRelist: the watcher stopped the watch on its own and lists
	// again.
	WatchRelist WatchType = "relist"
)

// WatchEvent is one event a watcher saw, in the order it saw them.
type WatchEvent struct {
	Type WatchType `json:"type"`
	// ID is the stream position the event brings the watch to (0 for the
	// records of an initial state and for errors).
	ID uint64 `json:"id,omitempty"`
	// Key, Revision and Value are the change or record (Value for puts).
	Key      string `json:"key,omitempty"`
	Revision uint64 `json:"revision,omitempty"`
	Value    []byte `json:"value,omitempty"`
	// More marks a change that more changes of the same revision follow.
	More bool `json:"more,omitempty"`
	// Stream is the identity of the stream the event's token named.
	Stream string `json:"stream,omitempty"`
	// Code and Error are an error's.
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// Time is when the watcher received it.
	Time time.Time `json:"time"`
}

// Watch is one watcher of the workload: the keys under Prefix.
type Watch struct {
	ID     int          `json:"id"`
	Prefix string       `json:"prefix"`
	Events []WatchEvent `json:"events"`
}

// ErrFormat means a history file is not a well-formed history.
var ErrFormat = errors.New("bad history")

// Encode writes h as JSON.
func Encode(w io.Writer, h *History) error {
	h.Version = Version
	enc := json.NewEncoder(w)
	if err := enc.Encode(h); err != nil {
		return fmt.Errorf("encode history: %w", err)
	}
	return nil
}

// Decode reads a history written by Encode and validates it. It fails with
// ErrFormat on anything Encode would not have written.
func Decode(r io.Reader) (*History, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var h History
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return &h, nil
}

// Validate checks that h is well formed: a known version, known kinds and
// outcomes, sessions whose operations are numbered in order, and a stream
// in sequence order.
func (h *History) Validate() error {
	if h.Version != Version {
		return fmt.Errorf("%w: version %d, want %d", ErrFormat, h.Version, Version)
	}
	next := map[int]int{}
	for i, op := range h.Ops {
		switch op.Kind {
		case Put, Delete, Get, Scan, Txn:
		default:
			return fmt.Errorf("%w: op %d: unknown kind %q", ErrFormat, i, op.Kind)
		}
		switch op.Outcome {
		case OK, Failed, Indeterminate:
		default:
			return fmt.Errorf("%w: op %d: unknown outcome %q", ErrFormat, i, op.Outcome)
		}
		if op.Session < 0 || op.Index != next[op.Session] {
			return fmt.Errorf("%w: op %d: session %d index %d, want %d", ErrFormat, i, op.Session, op.Index, next[op.Session])
		}
		next[op.Session]++
	}
	for i, w := range h.Watches {
		for j, ev := range w.Events {
			switch ev.Type {
			case WatchPut, WatchDelete, WatchSynced, WatchProgress, WatchError, WatchRelist:
			default:
				return fmt.Errorf("%w: watch %d event %d: unknown type %q", ErrFormat, i, j, ev.Type)
			}
		}
	}
	for _, e := range h.Epochs {
		if err := validStream(e.Stream); err != nil {
			return fmt.Errorf("%w: epoch %s: %v", ErrFormat, e.StreamID, err)
		}
	}
	if h.Final == nil {
		return nil
	}
	if err := validStream(h.Final.Stream); err != nil {
		return fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return nil
}

func validStream(msgs []Message) error {
	for i, m := range msgs {
		if m.Seq != uint64(i)+1 {
			return fmt.Errorf("stream message %d has sequence %d, want %d", i, m.Seq, i+1)
		}
		if m.Kind != Put && m.Kind != Delete && m.Kind != Marker && m.Kind != Tick {
			return fmt.Errorf("stream message %d: kind %q", m.Seq, m.Kind)
		}
	}
	return nil
}

// Sessions returns the operations grouped by session, each in Index order.
func (h *History) Sessions() map[int][]Op {
	out := map[int][]Op{}
	for _, op := range h.Ops {
		out[op.Session] = append(out[op.Session], op)
	}
	return out
}
