package stream

import (
	"github.com/tidemark/tidemark/api"

	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// OpTxn marks a transaction marker: the first message of a transaction,
// on the subject of its write id (TxnSubject), which says how many op
// messages follow it. It changes no key.
const OpTxn api.Op = "txn"

// Headers of a transaction's messages.
const (
	// HeaderTxn is "i/n" on each message of a transaction of n ops: 0 on
	// its marker, 1 to n on its ops, which follow the marker in the stream
	// in that order (one atomic batch). A replica applies a transaction
	// only whole.
	HeaderTxn = "Tidemark-Txn"
	// HeaderTxnSum, on a transaction marker, is the digest of the
	// transaction's ops, which tells a retry from another transaction
	// under the same write id.
	HeaderTxnSum = "Tidemark-Txn-Sum"
)

// txnToken is the subject token between the prefix and an encoded write id
// in TxnSubject; like sessionToken it makes a subject of three tokens,
// which no key subject has.
const txnToken = "txn"

// TxnSubject returns the subject of the marker of the transaction with
// write id id under the stream subject prefix. A transaction expects this
// subject to hold no message, so a write id names one transaction for as
// long as the stream holds its marker.
func TxnSubject(prefix, id string) string {
	return prefix + "." + txnToken + "." + keyEncoding.EncodeToString([]byte(id))
}

// TxnMarkerMsg encodes the marker of a transaction of n ops with write id
// id and digest sum, in session's step seq (none when session is "").
// DecodeMessage reads it back.
func TxnMarkerMsg(prefix, id string, n int, sum string, session string, seq uint64) *nats.Msg {
	m := nats.NewMsg(TxnSubject(prefix, id))
	m.Header.Set(api.HeaderOp, string(OpTxn))
	SetTxn(m, 0, n)
	m.Header.Set(HeaderTxnSum, sum)
	api.SetSession(m.Header, session, seq)
	return m
}

// SetTxn marks m as message i of a transaction of n ops (0: its marker).
func SetTxn(m *nats.Msg, i, n int) {
	m.Header.Set(HeaderTxn, strconv.Itoa(i)+"/"+strconv.Itoa(n))
}

// parseTxn parses a HeaderTxn value strictly: "i/n" in canonical decimal,
// 0 <= i <= n, 1 <= n <= MaxAtomicBatch.
func parseTxn(s string) (i, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	i, erri := canonicalInt(a)
	n, errn := canonicalInt(b)
	if !ok || erri != nil || errn != nil || n < 1 || n > MaxAtomicBatch || i > n {
		return 0, 0, api.Errorf(api.ErrInvalidRequest, "bad %s header %q: want i/n with 0 <= i <= n <= %d", HeaderTxn, s, MaxAtomicBatch)
	}
	return i, n, nil
}

// canonicalInt parses a non-negative decimal with no sign, padding or
// leading zero.
func canonicalInt(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err == nil && (n < 0 || strconv.Itoa(n) != s) {
		err = strconv.ErrSyntax
	}
	return n, err
}

// decodeTxn adds the transaction headers of h to e: a marker must be
// message 0 on a transaction subject, an op message 1 to n, and a session
// marker carries none.
func decodeTxn(e *Entry, h nats.Header) error {
	vs := h.Values(HeaderTxn)
	switch {
	case len(vs) == 0 && e.Op == OpTxn:
		return api.Errorf(api.ErrInvalidRequest, "transaction marker without a %s header", HeaderTxn)
	case len(vs) == 0:
		return nil
	case len(vs) > 1:
		return api.Errorf(api.ErrInvalidRequest, "%d %s headers", len(vs), HeaderTxn)
	case e.Op == OpSession:
		return api.Errorf(api.ErrInvalidRequest, "session marker with a %s header", HeaderTxn)
	}
	i, n, err := parseTxn(vs[0])
	if err != nil {
		return err
	}
	if (i == 0) != (e.Op == OpTxn) {
		return api.Errorf(api.ErrInvalidRequest, "%s %q on a %s message", HeaderTxn, vs[0], e.Op)
	}
	e.TxnIndex, e.TxnSize = i, n
	return nil
}

// EndsTxn reports whether e is not inside a transaction, or is its last op:
// a replica may commit after it.
func (e Entry) EndsTxn() bool { return e.TxnSize == 0 || e.TxnIndex == e.TxnSize }
