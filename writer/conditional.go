package writer

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/stream"
)

// maxAbsentRounds bounds how often an If-None-Match write tries again after
// losing to writers that left the key deleted (a new tombstone to expect).
const maxAbsentRounds = 3

// writeIfRevision publishes req only if the key's current revision is
// req.IfRevision: its last message is a put with that sequence.
//
// JetStream's expected last sequence of the subject holds just as well when
// that last message is a delete, so first the writer looks at the message the
// revision names: if it is not a put of this key, the condition is lost. That
// message never changes, so the check cannot race with other writers, and the
// publish's expectation then makes the write atomic: it lands only while that
// put is still the key's last message.
func (w *Writer) writeIfRevision(ctx context.Context, req api.WriteRequest, id string, ss *session) (placed, error) {
	subject := w.stream.KeySubject(req.Key)
	n := req.IfRevision
	expect, err := w.revisionExpectation(ctx, req)
	if err != nil {
		return placed{}, err
	}
	at, err := w.publishIf(ctx, req, id, ss, expect)
	if !wire.WrongLastSeq(err) {
		return at, err
	}
	// The key has moved on, possibly by this very write: an earlier attempt
	// or the client's first try stored it, and a single JetStream server
	// checks the expected sequence before the duplicate window. If it was
	// stored, it is the key's first message after n.
	next, err := w.getMsg(ctx, n+1, subject)
	if err != nil {
		return placed{}, err
	}
	if next != nil && msgID(next) == id {
		return w.stored(ctx, req, id, next.Sequence, next)
	}
	return placed{}, w.mismatch(ctx, req, subject, nil)
}

// revisionExpectation returns the last sequence the key's subject must
// have for req's If-Match (req.IfRevision) to hold, or
// api.ErrRevisionMismatch when it already does not.
func (w *Writer) revisionExpectation(ctx context.Context, req api.WriteRequest) (uint64, error) {
	subject := w.stream.KeySubject(req.Key)
	n := req.IfRevision
	m, err := w.getMsg(ctx, n, "")
	if err != nil {
		return 0, err
	}
	if m == nil {
		// Not in the stream: ahead of it, or removed by limits or a purge
		// together with every older message of the key. Then only a
		// replica knows whether n is still the key's revision, and the
		// key has no message left: expecting none keeps the write atomic.
		rec, err := w.removedHistory(ctx, req.Key)
		switch {
		case err != nil:
			return 0, err
		case rec == nil: // the stream holds everything: n is ahead of it
			return 0, w.mismatch(ctx, req, subject, nil)
		case rec.Deleted || rec.Revision != n:
			return 0, mismatchOf(lostCondition(req), rec)
		}
		return 0, nil
	}
	if m.Subject != subject || msgOp(m) != api.OpPut {
		return 0, w.mismatch(ctx, req, subject, nil)
	}
	return n, nil
}

// writeIfAbsent publishes req only if the key does not exist: it has no
// message at all, or its last message is a delete. Like JetStream's KV
// Create, it first expects no message, and on a tombstone expects the
// tombstone's sequence, which keeps the write atomic.
func (w *Writer) writeIfAbsent(ctx context.Context, req api.WriteRequest, id string, ss *session) (placed, error) {
	subject := w.stream.KeySubject(req.Key)
	// With no message of the key in the stream, the key may still live in
	// the replicas, its history removed by limits or a purge.
	if rec, err := w.removedHistory(ctx, req.Key); err != nil {
		return placed{}, err
	} else if rec != nil && !rec.Deleted {
		return placed{}, mismatchOf(lostCondition(req), rec)
	}
	var expect uint64 // no message on the subject
	for round := 1; ; round++ {
		at, err := w.publishIf(ctx, req, id, ss, expect)
		if !wire.WrongLastSeq(err) {
			return at, err
		}
		last, err := w.lastMsg(ctx, subject)
		if err != nil {
			return placed{}, err
		}
		switch {
		case last != nil && msgID(last) == id:
			// This write, stored by an earlier attempt or the client's
			// first try (see writeIfRevision).
			return w.stored(ctx, req, id, last.Sequence, last)
		case last != nil && msgOp(last) != api.OpDelete, round >= maxAbsentRounds:
			return placed{}, w.mismatch(ctx, req, subject, last)
		case last == nil:
			expect = 0
		default:
			expect = last.Sequence
		}
	}
}

// removedHistory returns the key's current record as the replicas hold it
// (read with strong consistency) when the stream has removed messages, by
// limits or a purge, and nil when it holds its whole history, so that the
// key's messages in the stream tell its state. A caller that finds no message
// of the key in the stream asks it: a key whose every message was removed
// may still live.
func (w *Writer) removedHistory(ctx context.Context, key string) (*api.Record, error) {
	info, err := w.stream.Info(ctx)
	if err != nil {
		return nil, api.Errorf(api.ErrUnavailable, "stream %s: %w", w.stream.Name(), err)
	}
	if info.State.FirstSeq <= 1 && info.State.NumDeleted == 0 {
		return nil, nil
	}
	if w.records == nil {
		return nil, api.Errorf(api.ErrUnavailable,
			"conditional write of %q: the stream no longer holds every message (it starts at %d), and this writer has no replica to read the key from",
			key, info.State.FirstSeq)
	}
	res, err := w.records.Get(ctx, api.GetRequest{Key: key, ReadSpec: api.ReadSpec{Consistency: api.Strong}})
	switch {
	case errors.Is(err, api.ErrNotFound):
		if res.Record.Revision == 0 {
			return &api.Record{Key: key, Deleted: true}, nil // never written
		}
		res.Record.Deleted = true
		return &res.Record, nil
	case err != nil:
		return nil, fmt.Errorf("conditional write of %q: read the key's current revision: %w", key, err)
	}
	return &res.Record, nil
}

// mismatchOf returns the api.ErrRevisionMismatch of a condition lost
// against rec, the key's current record (nil or revision 0: none).
func mismatchOf(lost string, rec *api.Record) error {
	switch {
	case rec == nil || rec.Revision == 0:
		return api.Errorf(api.ErrRevisionMismatch, "%s: it does not exist", lost)
	case rec.Deleted:
		return api.Errorf(api.ErrRevisionMismatch, "%s: it was deleted at revision %d", lost, rec.Revision)
	default:
		return api.Errorf(api.ErrRevisionMismatch, "%s: its current revision is %d", lost, rec.Revision)
	}
}

// mismatch returns the api.ErrRevisionMismatch of a lost condition,
// naming the key's current revision as last (looked up when nil) shows it.
func (w *Writer) mismatch(ctx context.Context, req api.WriteRequest, subject string, last *jetstream.RawStreamMsg) error {
	lost := lostCondition(req)
	if last == nil {
		var err error
		if last, err = w.lastMsg(ctx, subject); err != nil {
			return api.Errorf(api.ErrRevisionMismatch, "%s (current revision unknown: %w)", lost, err)
		}
	}
	if req.IfAbsent && (last == nil || msgOp(last) == api.OpDelete) {
		// Lost maxAbsentRounds times to writers that left it deleted.
		lost = fmt.Sprintf("key %q kept changing during the write", req.Key)
	}
	var rec *api.Record
	if last != nil {
		rec = &api.Record{Key: req.Key, Revision: last.Sequence, Deleted: msgOp(last) == api.OpDelete}
	}
	return mismatchOf(lost, rec)
}

// lostCondition says which condition of req did not hold.
func lostCondition(req api.WriteRequest) string {
	if req.IfAbsent {
		return fmt.Sprintf("key %q exists", req.Key)
	}
	return fmt.Sprintf("key %q is not at revision %d", req.Key, req.IfRevision)
}

// msgOp returns the op of a stream message.
func msgOp(m *jetstream.RawStreamMsg) api.Op { return api.Op(m.Header.Get(api.HeaderOp)) }

// msgID returns the write id of a stream message.
func msgID(m *jetstream.RawStreamMsg) string { return m.Header.Get(stream.HeaderMsgID) }
