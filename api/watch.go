package api

import (
	"time"
	"unicode/utf8"
)

// EventType is the kind of a watch event.
type EventType string

// Watch event types (the SSE `event:` field, and Tidemark-Event over NATS).
const (
	// EventPut is a put of a key: a change, or a record of the initial state.
	EventPut EventType = "put"
	// EventDelete is a delete of a key (acknowledged deletes and expiries).
	EventDelete EventType = "delete"
	// EventSynced ends the initial state; its id is the snapshot's applied.
	EventSynced EventType = "synced"
	// EventProgress says every change up to its id has been sent.
	EventProgress EventType = "progress"
	// EventError ends a watch; its body is the error.
	EventError EventType = "error"
)

// ValidEventType reports whether t is one of the event types.
func ValidEventType(t EventType) bool {
	switch t {
	case EventPut, EventDelete, EventSynced, EventProgress, EventError:
		return true
	}
	return false
}

// Event is one event of a watch.
type Event struct {
	// Type is the kind of event.
	Type EventType
	// ID is the stream position the event brings the watch to, what a
	// resume passes as after: the revision of a change, the applied
	// sequence of synced and progress; 0 for the records of the initial
	// state and for errors.
	ID uint64
	// Key, Revision and Value are the change or record (Value for puts).
	Key      string
	Revision uint64
	Value    []byte
	// More marks a change that more changes of the same revision follow
	// (a message's write and the expiries it brings share its revision),
	// or more changes of the same transaction: a resume point is complete
	// only at the last of them.
	More bool
	// Txn marks a change that a transaction made (zero for any other).
	Txn TxnMark
	// Token is the session token as of the event.
	Token Token
	// Err is the error of an EventError.
	Err error
}

// TxnMark marks the changes of one transaction in a watch: a watch
// delivers them consecutively, with no other event between them, in one
// read of the replica.
type TxnMark struct {
	// Revision is the transaction's revision: its last op's.
	Revision uint64
	// Ops is how many ops the transaction applied, under any prefix.
	Ops int
}

// IsZero reports whether m marks nothing.
func (m TxnMark) IsZero() bool { return m == TxnMark{} }

// Change is one change of a replica's watch window: the record, its
// transaction, and whether more changes of its revision or transaction
// follow it in the same read.
type Change struct {
	Record
	Txn  TxnMark
	More bool
}

// WatchRequest asks for the changes of a prefix.
type WatchRequest struct {
	// Prefix selects the keys; "" is every key.
	Prefix string
	// Resume, with After, asks for every change after revision After
	// instead of the initial state.
	Resume bool
	After  uint64
	// Token is the session's token: the initial state reflects at least it.
	Token Token
	// Wait bounds the wait for the token; 0 is the server's default.
	Wait time.Duration
	// Replica, when set, asks that replica only.
	Replica string
	// Progress is how often an idle watch gets a progress event; 0 is
	// DefaultWatchProgress.
	Progress time.Duration
}

// DefaultWatchProgress is how often an idle watch gets a progress event.
const DefaultWatchProgress = 5 * time.Second

// Validate checks the request's prefix and replica.
func (w WatchRequest) Validate() error {
	if len(w.Prefix) > MaxKeyLen || !utf8.ValidString(w.Prefix) {
		return Errorf(ErrInvalidKey, "invalid prefix: want up to %d bytes of UTF-8", MaxKeyLen)
	}
	if w.Replica != "" && !ValidID(w.Replica) {
		return Errorf(ErrInvalidRequest, "invalid replica id %q", w.Replica)
	}
	if w.Progress < 0 || w.Wait < 0 {
		return Errorf(ErrInvalidRequest, "negative progress or wait")
	}
	return nil
}

// EventJSON is the data of a watch event, over HTTP (SSE) and NATS: key,
// revision and value for changes and records, the token always.
type EventJSON struct {
	Key      string `json:"key,omitempty"`
	Revision uint64 `json:"revision,omitempty"`
	Value    []byte `json:"value,omitempty"`
	// Txn marks a change that a transaction made.
	Txn   *EventTxnJSON `json:"txn,omitempty"`
	Token string        `json:"token"`
}

// EventTxnJSON is the transaction mark of a change event (TxnMark).
type EventTxnJSON struct {
	Revision uint64 `json:"revision"`
	Ops      int    `json:"ops"`
}
