package writer

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/stream"
)

// MaxTxnOps is the most ops a transaction can hold: the server's limit on
// the messages of an atomic batch, less the transaction's marker and a
// session's order marker.
const MaxTxnOps = stream.MaxAtomicBatch - 2

// A transaction is one JetStream atomic batch: a session's order marker
// (for a session's transaction), the transaction's marker and one message
// per op, on the op's key subject, as a single write's. Every condition is
// the message's expected last subject sequence, which the server checks for
// all of them at the commit: it stores the whole batch, contiguously, or
// nothing. The marker, on the subject of the transaction's write id
// (stream.TxnSubject), expects that subject to be empty, so a write id is
// stored once however often it is retried, and says how many ops follow it
// (stream.HeaderTxn), so that a replica applies them together. A
// transaction never joins a group commit batch: it is a batch of its own.

// Txn publishes the ops of req as one atomic transaction and returns its
// revision (the sequence of its last op), each op's revision and the
// session's new token. A condition that does not hold fails the whole
// transaction with api.ErrRevisionMismatch, wrapped in an api.OpError
// naming the op, and nothing is written. A retry with the same write id is
// stored once and answered with the stored revisions; the same write id
// for other ops fails with api.ErrWriteIDReused.
func (w *Writer) Txn(ctx context.Context, req api.TxnRequest) (res api.TxnResult, err error) {
	start := time.Now()
	defer func() { w.metrics.observe(stream.OpTxn, start, err) }()
	failed := api.TxnResult{Token: req.Token}
	if err := w.validateTxn(req); err != nil {
		return failed, err
	}
	ctx, id, ss, done, err := w.admit(ctx, req.Token, req.WriteID, req.Session)
	if err != nil {
		return failed, err
	}
	defer done()
	was := w.stream.ID()
	at, err := w.txn(ctx, req, id, ss)
	if err != nil {
		return failed, err
	}
	n := len(req.Ops)
	tok, err := w.answer(ctx, req.Token, was, at, txnMsgID(id, n))
	if err != nil {
		if errors.Is(err, errLostHistory) {
			return api.TxnResult{}, err
		}
		return failed, err
	}
	res = api.TxnResult{Revision: at.seq, Token: tok, Ops: make([]api.WriteResult, n)}
	first := at.seq - uint64(n) + 1
	for i, op := range req.Ops {
		res.Ops[i] = api.WriteResult{Key: op.Key, Revision: first + uint64(i), Token: tok}
	}
	return res, nil
}

// TxnLimits returns the most ops and bytes (keys and values) a
// transaction may hold.
func (w *Writer) TxnLimits() (ops, bytes int) { return w.txnMaxOps, w.txnMaxBytes }

// validateTxn checks everything about req that needs no server, and its
// limits.
func (w *Writer) validateTxn(req api.TxnRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	if len(req.Ops) > w.txnMaxOps {
		return api.Errorf(api.ErrInvalidRequest, "a transaction of %d ops: at most %d (writer.txn_max_ops)", len(req.Ops), w.txnMaxOps)
	}
	if n := req.Bytes(); n > w.txnMaxBytes {
		return api.Errorf(api.ErrValueTooLarge, "a transaction of %d bytes of keys and values: at most %d (writer.txn_max_bytes)", n, w.txnMaxBytes)
	}
	limit := w.ValueLimit()
	for i, op := range req.Ops {
		if op.Op == api.OpPut {
			if err := limit.Check(int64(len(op.Value))); err != nil {
				return &api.OpError{Op: i, Err: err}
			}
		}
	}
	return nil
}

// txnMsgID is the message id of message i of the transaction with write id
// id: 0 its marker, 1 to n its ops.
func txnMsgID(id string, i int) string { return "txn:" + id + ":" + strconv.Itoa(i) }

// txnSum is the digest of what a transaction writes, in its session's
// step: the same write id with another digest is another transaction.
func txnSum(req api.TxnRequest) string {
	h := sha256.New()
	var b []byte
	str := func(s string) {
		b = binary.AppendUvarint(b[:0], uint64(len(s)))
		h.Write(b)
		h.Write([]byte(s))
	}
	for _, op := range req.Ops {
		str(string(op.Op))
		str(op.Key)
		str(string(op.Value))
		b = binary.AppendUvarint(b[:0], op.IfRevision)
		if op.IfAbsent {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		h.Write(b)
	}
	str(req.Session)
	h.Write(binary.AppendUvarint(b[:0], req.SessionSeq))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// txn publishes the validated transaction req with write id id; ss is its
// session, locked, or nil.
func (w *Writer) txn(ctx context.Context, req api.TxnRequest, id string, ss *session) (placed, error) {
	n := len(req.Ops)
	sum := txnSum(req)
	prefix := w.stream.Subject()
	step := api.WriteRequest{Session: req.Session, SessionSeq: req.SessionSeq}
	for round := 1; ; round++ {
		exps, err := w.txnExpectations(ctx, req, round > 1)
		if err != nil {
			return placed{}, err
		}
		msgs := make([]*nats.Msg, 0, n+2)
		var c *claim
		if ss != nil {
			if c, err = w.order(ctx, step, id, ss); err != nil {
				return placed{}, err
			}
			if c.mine {
				// An earlier attempt stored the batch: its marker is there.
				return w.storedTxn(ctx, req, id, sum, true)
			}
			mk := stream.MarkerMsg(prefix, req.Session, req.SessionSeq)
			mk.Header.Set(stream.HeaderMsgID, MarkerID(id))
			expectLast(c.last.seq).set(mk)
			msgs = append(msgs, mk)
		}
		tm := stream.TxnMarkerMsg(prefix, id, n, sum, req.Session, req.SessionSeq)
		tm.Header.Set(stream.HeaderMsgID, txnMsgID(id, 0))
		expectLast(0).set(tm)
		msgs = append(msgs, tm)
		for i, op := range req.Ops {
			m := stream.Message(prefix, api.WriteRequest{Op: op.Op, Key: op.Key, Value: op.Value})
			stream.SetTxn(m, i+1, n)
			m.Header.Set(stream.HeaderMsgID, txnMsgID(id, i+1))
			exps[i].set(m)
			msgs = append(msgs, m)
		}
		known := w.stream.KnownLast()
		var ack stream.BatchAck
		err = w.retry(ctx, "publish transaction", func(ctx context.Context) error {
			var err error
			ack, err = stream.CommitBatch(ctx, w.stream.JetStream().Conn(), msgs)
			return err
		})
		if ss != nil {
			ss.last.ok = false
		}
		var refused *jetstream.APIError
		switch {
		case err == nil:
			if ack.Stream != w.stream.Name() {
				return placed{}, api.Errorf(api.ErrInternal, "transaction stored in stream %s, not %s", ack.Stream, w.stream.Name())
			}
			if ack.Seq <= known {
				w.stream.Suspect() // as in publishMsg
			}
			if ss != nil {
				ss.last = marker{seq: ack.Seq - uint64(n) - 1, n: req.SessionSeq, id: MarkerID(id), ok: true}
			}
			return placed{seq: ack.Seq}, nil
		case !errors.As(err, &refused):
			return placed{}, w.txnPublishError(err)
		}
		// Refused, and nothing of it stored: by an earlier attempt of
		// the same write id, a session write that came first, or a
		// condition, which the next round names.
		if at, err := w.storedTxn(ctx, req, id, sum, false); err != nil || at.seq != 0 {
			return at, err
		}
		if ss != nil {
			last, err := w.lastMarker(ctx, req.Session)
			if err != nil {
				return placed{}, err
			}
			ss.last = last
			if last.seq != c.last.seq {
				if round >= maxClaimRounds {
					return placed{}, api.Errorf(api.ErrUnavailable, "session %s: transaction %d lost its claim %d times to concurrent writes of the session", req.Session, req.SessionSeq, round)
				}
				continue
			}
		}
		if wire.WrongLastSeq(err) {
			if err := w.lostOp(ctx, req, exps); err != nil {
				return placed{}, err
			}
		}
		switch {
		case wire.APIErrorCode(err) == errCodeBatchDuplicate:
			return placed{}, api.Errorf(api.ErrWriteIDReused, "write id %q already names a stored write; use a new write id for a new transaction", id)
		case !wire.WrongLastSeq(err):
			return placed{}, w.txnPublishError(err)
		case round >= maxAbsentRounds:
			return placed{}, api.Errorf(api.ErrUnavailable, "transaction: its keys kept changing during the write (%d rounds)", round)
		}
	}
}

// txnExpectations returns the expectation of each op of req: the last
// sequence its key's subject must have for its condition to hold, as
// single conditional writes expect them. A condition that already does not
// hold fails with api.ErrRevisionMismatch in an api.OpError. fresh looks up
// an If-None-Match key's last message (after a refusal) instead of
// expecting none.
func (w *Writer) txnExpectations(ctx context.Context, req api.TxnRequest, fresh bool) ([]expectation, error) {
	exps := make([]expectation, len(req.Ops))
	for i, op := range req.Ops {
		wr := api.WriteRequest{Op: op.Op, Key: op.Key, IfRevision: op.IfRevision, IfAbsent: op.IfAbsent}
		var seq uint64
		var err error
		switch {
		case op.IfRevision != 0:
			var expired bool
			if seq, expired, err = w.revisionExpectation(ctx, wr); err == nil && expired {
				err = api.Errorf(api.ErrRevisionMismatch, "%s: it expired (its time to live ran out)", lostCondition(wr))
			}
		case op.IfAbsent:
			seq, err = w.absentExpectation(ctx, wr, fresh)
		default:
			continue
		}
		if errors.Is(err, api.ErrRevisionMismatch) {
			return nil, &api.OpError{Op: i, Err: err}
		}
		if err != nil {
			return nil, err
		}
		exps[i] = expectLast(seq)
	}
	return exps, nil
}

// lostOp returns the api.ErrRevisionMismatch, in an api.OpError, of the
// first op of req whose key's last sequence is no longer its expectation
// in exps and whose condition therefore lost; nil when none is sure to
// have lost (an If-None-Match key that is still deleted: the next round
// expects its new tombstone).
func (w *Writer) lostOp(ctx context.Context, req api.TxnRequest, exps []expectation) error {
	for i, op := range req.Ops {
		if !exps[i].on {
			continue
		}
		subject := w.stream.KeySubject(op.Key)
		last, err := w.lastMsg(ctx, subject)
		if err != nil {
			return err
		}
		var seq uint64
		if last != nil {
			seq = last.Sequence
		}
		if seq == exps[i].seq || (op.IfAbsent && (last == nil || msgOp(last) == api.OpDelete)) {
			continue
		}
		wr := api.WriteRequest{Op: op.Op, Key: op.Key, IfRevision: op.IfRevision, IfAbsent: op.IfAbsent}
		return &api.OpError{Op: i, Err: w.mismatch(ctx, wr, subject, last)}
	}
	return nil
}

// absentExpectation returns the last sequence the key's subject must have
// for req's If-None-Match to hold: none, or its tombstone's; with fresh,
// looked up rather than guessed to be none.
func (w *Writer) absentExpectation(ctx context.Context, req api.WriteRequest, fresh bool) (uint64, error) {
	if rec, err := w.removedHistory(ctx, req.Key); err != nil {
		return 0, err
	} else if rec != nil && !rec.Deleted {
		return 0, mismatchOf(lostCondition(req), rec)
	}
	if !fresh {
		return 0, nil
	}
	subject := w.stream.KeySubject(req.Key)
	last, err := w.lastMsg(ctx, subject)
	switch {
	case err != nil:
		return 0, err
	case last == nil:
		return 0, nil
	case msgOp(last) == api.OpDelete:
		return last.Sequence, nil
	case msgOp(last) == api.OpPut:
		// A put with a time to live that has expired leaves the key
		// absent (ttl.go): expect it.
		if st, err := w.ttlOf(ctx, last, true); err != nil {
			return 0, err
		} else if st == ttlExpired {
			return last.Sequence, nil
		}
	}
	return 0, w.mismatch(ctx, req, subject, last)
}

// storedTxn returns where the stream holds the transaction with write id
// id, stored before (placed{} when it holds none), after checking that it
// is req's by its digest sum. must: the write id's session marker is
// stored, so the write id names a stored write.
func (w *Writer) storedTxn(ctx context.Context, req api.TxnRequest, id, sum string, must bool) (placed, error) {
	m, err := w.lastMsg(ctx, stream.TxnSubject(w.stream.Subject(), id))
	switch {
	case err != nil:
		return placed{}, err
	case m == nil && must:
		// The session's marker of this write id is a single write's.
		return placed{}, api.Errorf(api.ErrWriteIDReused, "write id %q already names a write of the session that is not a transaction; use a new write id for a new transaction", id)
	case m == nil:
		return placed{}, nil
	case m.Header.Get(stream.HeaderTxnSum) != sum:
		return placed{}, reused(id, m.Sequence)
	}
	e, err := stream.DecodeMessage(w.stream.Subject(), m.Subject, m.Header, m.Data)
	if err != nil || e.TxnSize != len(req.Ops) {
		return placed{}, reused(id, m.Sequence)
	}
	return placed{seq: m.Sequence + uint64(e.TxnSize), earlier: true}, nil
}

// txnPublishError maps a failed transaction publish to a sentinel.
func (w *Writer) txnPublishError(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, api.ErrUnavailable):
		return err
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return api.Errorf(api.ErrValueTooLarge, "a transaction's message is over the stream's maximum message size")
	case errors.Is(err, nats.ErrMaxPayload):
		return api.Errorf(api.ErrValueTooLarge, "a transaction's message is over the NATS maximum payload of %d bytes (with headers)", w.stream.JetStream().Conn().MaxPayload())
	default:
		return w.requestError("publish transaction", err)
	}
}
