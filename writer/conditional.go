package writer

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"strconv"

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
	expect, expired, err := w.revisionExpectation(ctx, req)
	if err != nil {
		return placed{}, err
	}
	if !expired {
		at, err := w.publishIf(ctx, req, id, ss, expect)
		if !wire.WrongLastSeq(err) {
			return at, err
		}
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
	if expired && next == nil {
		return placed{}, api.Errorf(api.ErrRevisionMismatch, "%s: it expired (its time to live ran out)", lostCondition(req))
	}
	return placed{}, w.mismatch(ctx, req, subject, nil)
}

// revisionExpectation returns the last sequence the key's subject must
// have for req's If-Match (req.IfRevision) to hold, or
// api.ErrRevisionMismatch when it already does not; expired reports that
// the put at req.IfRevision had a time to live that has run out, so that
// it is not the key's revision any more (ttl.go).
func (w *Writer) revisionExpectation(ctx context.Context, req api.WriteRequest) (expect uint64, expired bool, err error) {
	subject := w.stream.KeySubject(req.Key)
	n := req.IfRevision
	m, err := w.getMsg(ctx, n, "")
	if err != nil {
		return 0, false, err
	}
	if m == nil {
		// Not in the stream: ahead of it, or removed by limits or a purge
		// together with every older message of the key. Then only a
		// replica knows whether n is still the key's revision, and the
		// key has no message left: expecting none keeps the write atomic.
		rec, err := w.removedHistory(ctx, req.Key)
		switch {
		case err != nil:
			return 0, false, err
		case rec == nil: // the stream holds everything: n is ahead of it
			return 0, false, w.mismatch(ctx, req, subject, nil)
		case rec.Deleted || rec.Revision != n:
			return 0, false, mismatchOf(lostCondition(req), rec)
		}
		return 0, false, nil
	}
	if m.Subject != subject || msgOp(m) != api.OpPut {
		return 0, false, w.mismatch(ctx, req, subject, nil)
	}
	st, err := w.ttlOf(ctx, m, false)
	if err != nil {
		return 0, false, err
	}
	return n, st == ttlExpired, nil
}

// writeIfAbsent publishes req only if the key does not exist: it has no
// message at all, or its last message is a delete or a put whose time to
// live has run out (ttl.go). Like JetStream's KV Create, it first expects
// no message, and on a tombstone (or an expired put) expects its sequence,
// which keeps the write atomic.
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
		case last != nil && msgOp(last) == api.OpPut && round < maxAbsentRounds:
			// A put with a time to live that has expired leaves the key
			// absent (ttl.go): expect it.
			st, err := w.ttlOf(ctx, last, true)
			if err != nil {
				return placed{}, err
			}
			if st != ttlExpired {
				return placed{}, w.mismatch(ctx, req, subject, last)
			}
			expect = last.Sequence
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
	res, removed, err := w.readRemoved(ctx, api.GetRequest{Key: key}, "conditional write of "+strconv.Quote(key))
	if err != nil || !removed {
		return nil, err
	}
	if res.Record.Revision == 0 {
		return &api.Record{Key: key, Deleted: true}, nil // never written, or its tombstone collected
	}
	return &res.Record, nil
}

// readRemoved reads req from the replicas with strong consistency when the
// stream has removed messages (limits, a purge, compaction), and reports
// removed false without reading when it holds its whole history. A not
// found is no error: its record says Deleted (with the delete's revision,
// 0 when none is known). what names the write for errors.
func (w *Writer) readRemoved(ctx context.Context, req api.GetRequest, what string) (res api.GetResult, removed bool, err error) {
	if id := w.removedFor.Load(); id == nil || *id != w.stream.ID() {
		info, err := w.stream.Info(ctx)
		if err != nil {
			return res, false, api.Errorf(api.ErrUnavailable, "stream %s: %w", w.stream.Name(), err)
		}
		if info.State.FirstSeq <= 1 && info.State.NumDeleted == 0 {
			return res, false, nil
		}
		id := stream.IDOf(info.Config)
		w.removedFor.Store(&id)
	}
	if w.records == nil {
		return res, true, api.Errorf(api.ErrUnavailable,
			"%s: the stream no longer holds every message (limits, a purge or compaction removed some), and this writer has no replica to read from", what)
	}
	req.ReadSpec = api.ReadSpec{Consistency: api.Strong}
	res, err = w.records.Get(ctx, req)
	switch {
	case errors.Is(err, api.ErrNotFound):
		res.Record.Key, res.Record.Deleted = req.Key, true
		return res, true, nil
	case err != nil:
		return res, true, fmt.Errorf("%s: read from the replicas: %w", what, err)
	}
	return res, true, nil
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
