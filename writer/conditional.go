package writer

import (
	"context"
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
func (w *Writer) writeIfRevision(ctx context.Context, req stream.WriteRequest, id string, ss *session) (uint64, error) {
	subject := w.stream.KeySubject(req.Key)
	n := req.IfRevision
	m, err := w.getMsg(ctx, n, "")
	if err != nil {
		return 0, err
	}
	if m == nil || m.Subject != subject || msgOp(m) != stream.OpPut {
		return 0, w.mismatch(ctx, req, subject, nil)
	}
	seq, err := w.publishIf(ctx, req, id, ss, n)
	if !wrongLastSeq(err) {
		return seq, err
	}
	// The key has moved on, possibly by this very write: an earlier attempt
	// or the client's first try stored it, and a single JetStream server
	// checks the expected sequence before the duplicate window. If it was
	// stored, it is the key's first message after n.
	next, err := w.getMsg(ctx, n+1, subject)
	if err != nil {
		return 0, err
	}
	if next != nil && msgID(next) == id {
		return w.stored(ctx, req, id, next.Sequence, next)
	}
	return 0, w.mismatch(ctx, req, subject, nil)
}

// writeIfAbsent publishes req only if the key does not exist: it has no
// message at all, or its last message is a delete. Like JetStream's KV
// Create, it first expects no message, and on a tombstone expects the
// tombstone's sequence, which keeps the write atomic.
func (w *Writer) writeIfAbsent(ctx context.Context, req stream.WriteRequest, id string, ss *session) (uint64, error) {
	subject := w.stream.KeySubject(req.Key)
	var expect uint64 // no message on the subject
	for round := 1; ; round++ {
		seq, err := w.publishIf(ctx, req, id, ss, expect)
		if !wrongLastSeq(err) {
			return seq, err
		}
		last, err := w.lastMsg(ctx, subject)
		if err != nil {
			return 0, err
		}
		switch {
		case last != nil && msgID(last) == id:
			// This write, stored by an earlier attempt or the client's
			// first try (see writeIfRevision).
			return w.stored(ctx, req, id, last.Sequence, last)
		case last != nil && msgOp(last) != stream.OpDelete, round >= maxAbsentRounds:
			return 0, w.mismatch(ctx, req, subject, last)
		case last == nil:
			expect = 0
		default:
			expect = last.Sequence
		}
	}
}

// mismatch returns the stream.ErrRevisionMismatch of a lost condition,
// naming the key's current revision as last (looked up when nil) shows it.
func (w *Writer) mismatch(ctx context.Context, req stream.WriteRequest, subject string, last *jetstream.RawStreamMsg) error {
	lost := fmt.Sprintf("key %q is not at revision %d", req.Key, req.IfRevision)
	if req.IfAbsent {
		lost = fmt.Sprintf("key %q exists", req.Key)
	}
	if last == nil {
		var err error
		if last, err = w.lastMsg(ctx, subject); err != nil {
			return stream.Errorf(stream.ErrRevisionMismatch, "%s (current revision unknown: %v)", lost, err)
		}
	}
	if req.IfAbsent && (last == nil || msgOp(last) == stream.OpDelete) {
		// Lost maxAbsentRounds times to writers that left it deleted.
		lost = fmt.Sprintf("key %q kept changing during the write", req.Key)
	}
	switch {
	case last == nil:
		return stream.Errorf(stream.ErrRevisionMismatch, "%s: it does not exist", lost)
	case msgOp(last) == stream.OpDelete:
		return stream.Errorf(stream.ErrRevisionMismatch, "%s: it was deleted at revision %d", lost, last.Sequence)
	default:
		return stream.Errorf(stream.ErrRevisionMismatch, "%s: its current revision is %d", lost, last.Sequence)
	}
}

// msgOp returns the op of a stream message.
func msgOp(m *jetstream.RawStreamMsg) stream.Op { return stream.Op(m.Header.Get(stream.HeaderOp)) }

// msgID returns the write id of a stream message.
func msgID(m *jetstream.RawStreamMsg) string { return m.Header.Get(stream.HeaderMsgID) }
