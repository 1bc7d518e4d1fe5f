package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Transaction defaults and bounds.
const (
	// DefaultTxnMaxOps is the most ops a transaction may hold by default.
	DefaultTxnMaxOps = 100
	// DefaultTxnMaxBytes bounds the keys and values of a transaction by
	// default.
	DefaultTxnMaxBytes = 1 << 20
)

// HeaderTxnOp names, on the NATS reply of a failed transaction, the index
// of the op that failed (as "op" does in the JSON error body).
const HeaderTxnOp = "Tidemark-Txn-Op"

// TxnOp is one write of a transaction: a put or a delete of a key, with an
// optional condition of its own.
type TxnOp struct {
	// Op is OpPut or OpDelete.
	Op Op
	// Key is the key to write.
	Key string
	// Value is the value of a put.
	Value []byte
	// IfRevision, when not zero, requires the key's current revision to be
	// IfRevision.
	IfRevision uint64
	// IfAbsent requires the key not to exist.
	IfAbsent bool
}

// TxnRequest is an atomic multi-key write: all of its ops are stored, and
// every replica applies them together, or none is.
type TxnRequest struct {
	// Ops are the writes, in order; each key at most once.
	Ops []TxnOp
	// Token is the session's token, if any.
	Token Token
	// WriteID identifies the transaction for deduplication of retries;
	// the writer makes one up when it is empty.
	WriteID string
	// Session and SessionSeq order the transaction within its session, as
	// one step of it (see WriteRequest).
	Session    string
	SessionSeq uint64
}

// Validate checks everything about a transaction that needs no server:
// at least one op, each a valid write with at most one condition, no key
// twice, and the write id and session. An op's error names the op (OpError).
// Limits of counts and sizes are the writer's to check.
func (t TxnRequest) Validate() error {
	if len(t.Ops) == 0 {
		return Errorf(ErrInvalidRequest, "a transaction needs at least one op")
	}
	seen := make(map[string]int, len(t.Ops))
	for i, op := range t.Ops {
		if err := op.write().Validate(); err != nil {
			return &OpError{Op: i, Err: err}
		}
		if j, ok := seen[op.Key]; ok {
			return &OpError{Op: i, Err: Errorf(ErrInvalidRequest, "key %q is written by ops %d and %d: a transaction writes each key at most once", op.Key, j, i)}
		}
		seen[op.Key] = i
	}
	return WriteRequest{WriteID: t.WriteID, Session: t.Session, SessionSeq: t.SessionSeq}.checkHeaders()
}

// write is op as a single write, for the rules they share.
func (op TxnOp) write() WriteRequest {
	return WriteRequest{Op: op.Op, Key: op.Key, Value: op.Value, IfRevision: op.IfRevision, IfAbsent: op.IfAbsent}
}

// Bytes is what a transaction's ops count against its byte limit: their
// keys and values.
func (t TxnRequest) Bytes() int {
	n := 0
	for _, op := range t.Ops {
		n += len(op.Key) + len(op.Value)
	}
	return n
}

// TxnResult is the outcome of a transaction.
type TxnResult struct {
	// Revision is the transaction's: the stream sequence of its last op.
	Revision uint64
	// Token is the session's new token.
	Token Token
	// Ops are the ops' keys and revisions, in the request's order.
	Ops []WriteResult
}

// OpError is the error of one op of a transaction: Op is its index in the
// request. Its code is Err's.
type OpError struct {
	Op  int
	Err error
}

// Error says the op's index before its error, once: an error decoded from
// the wire already says it.
func (e *OpError) Error() string {
	prefix := fmt.Sprintf("op %d: ", e.Op)
	if msg := e.Err.Error(); !strings.HasPrefix(msg, prefix) {
		return prefix + msg
	}
	return e.Err.Error()
}
func (e *OpError) Unwrap() error { return e.Err }

// FailedOp returns the index of the transaction op err names, if it names one.
func FailedOp(err error) (int, bool) {
	var oe *OpError
	if errors.As(err, &oe) {
		return oe.Op, true
	}
	return 0, false
}

// ParseTxnOp reads the op index of a HeaderTxnOp value; "" is none.
func ParseTxnOp(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

// TxnJSON is the JSON body of a transaction request, over HTTP and NATS.
type TxnJSON struct {
	Ops []TxnOpJSON `json:"ops"`
}

// TxnOpJSON is one op of TxnJSON: op is "put" or "delete"; value (base64)
// only on a put.
type TxnOpJSON struct {
	Op         string  `json:"op"`
	Key        string  `json:"key"`
	Value      *[]byte `json:"value,omitempty"`
	IfRevision uint64  `json:"if_revision,omitempty"`
	IfAbsent   bool    `json:"if_absent,omitempty"`
}

// Op names in TxnOpJSON.
const (
	txnPut    = "put"
	txnDelete = "delete"
)

// TxnResultJSON is the JSON body of a successful transaction.
type TxnResultJSON struct {
	Revision uint64          `json:"revision"`
	Token    string          `json:"token"`
	Ops      []TxnOpRevision `json:"ops"`
}

// TxnOpRevision is one op's key and revision in TxnResultJSON.
type TxnOpRevision struct {
	Key      string `json:"key"`
	Revision uint64 `json:"revision"`
}

// EncodeTxnJSON encodes ops as the body of a transaction request.
func EncodeTxnJSON(ops []TxnOp) []byte {
	body := TxnJSON{Ops: make([]TxnOpJSON, len(ops))}
	for i, op := range ops {
		o := TxnOpJSON{Op: txnPut, Key: op.Key, IfRevision: op.IfRevision, IfAbsent: op.IfAbsent}
		if op.Op == OpDelete {
			o.Op = txnDelete
		} else {
			v := op.Value
			if v == nil {
				v = []byte{}
			}
			o.Value = &v
		}
		body.Ops[i] = o
	}
	b, _ := json.Marshal(body)
	return b
}

// DecodeTxnJSON decodes the body of a transaction request strictly: one
// JSON object with only known fields, each op "put" (with a value, base64;
// absent is empty) or "delete" (without one). It checks the ops as Validate
// does (key rules, conditions, no key twice), not their limits.
func DecodeTxnJSON(data []byte) ([]TxnOp, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var body TxnJSON
	if err := dec.Decode(&body); err != nil {
		return nil, Errorf(ErrInvalidRequest, "invalid transaction body: %v", err)
	}
	if dec.More() {
		return nil, Errorf(ErrInvalidRequest, "invalid transaction body: data after the JSON object")
	}
	if _, err := dec.Token(); err == nil {
		return nil, Errorf(ErrInvalidRequest, "invalid transaction body: data after the JSON object")
	}
	ops := make([]TxnOp, len(body.Ops))
	for i, o := range body.Ops {
		op := TxnOp{Key: o.Key, IfRevision: o.IfRevision, IfAbsent: o.IfAbsent}
		switch o.Op {
		case txnPut:
			op.Op, op.Value = OpPut, []byte{}
			if o.Value != nil {
				op.Value = *o.Value
			}
		case txnDelete:
			op.Op = OpDelete
			if o.Value != nil {
				return nil, &OpError{Op: i, Err: Errorf(ErrInvalidRequest, "a delete has no value")}
			}
		default:
			return nil, &OpError{Op: i, Err: Errorf(ErrInvalidRequest, "unknown op %q: want %q or %q", o.Op, txnPut, txnDelete)}
		}
		ops[i] = op
	}
	if err := (TxnRequest{Ops: ops}).Validate(); err != nil {
		return nil, err
	}
	return ops, nil
}

// ToTxnResultJSON converts a transaction's outcome to its JSON form, with
// tok as the token the client sees.
func (r TxnResult) ToTxnResultJSON(tok string) TxnResultJSON {
	out := TxnResultJSON{Revision: r.Revision, Token: tok, Ops: make([]TxnOpRevision, len(r.Ops))}
	for i, op := range r.Ops {
		out.Ops[i] = TxnOpRevision{Key: op.Key, Revision: op.Revision}
	}
	return out
}

// ParseTxnHeaders reads what a transaction says in its headers, the same
// over HTTP and NATS: its write id and its session's step. Conditions go on
// each op, so If-Match and If-None-Match are refused.
func ParseTxnHeaders(h map[string][]string, req *TxnRequest) error {
	if headerValue(h, HeaderIfMatch) != "" || headerValue(h, HeaderIfNoneMatch) != "" {
		return Errorf(ErrInvalidRequest, "If-Match and If-None-Match do not apply to a transaction: put if_revision or if_absent on its ops")
	}
	var w WriteRequest
	if err := ParseWriteHeaders(h, &w); err != nil {
		return err
	}
	req.WriteID, req.Session, req.SessionSeq = w.WriteID, w.Session, w.SessionSeq
	return nil
}
