package writer

import (
	"github.com/tidemark/tidemark/internal/backoff"

	"github.com/tidemark/tidemark/api"

	"bytes"
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/stream"
)

// sameWrite reports whether m, a stream message that carries req's write
// id, is the write req describes: the same key, op, value and time to
// live. A write id
// names one write; a second write under the same id is refused
// (api.ErrWriteIDReused), never answered with the first one's revision.
func (w *Writer) sameWrite(m *jetstream.RawStreamMsg, req api.WriteRequest) bool {
	e, err := stream.DecodeMessage(w.stream.Subject(), m.Subject, m.Header, m.Data)
	return err == nil && e.Op == req.Op && e.Key == req.Key && bytes.Equal(e.Value, req.Value) && e.TTL == req.TTL
}

// stored returns where the stream holds the message at seq that carries
// req's write id, stored before this request (a duplicate ack, or found by
// the id), after checking that it is req's write.
func (w *Writer) stored(ctx context.Context, req api.WriteRequest, id string, seq uint64, m *jetstream.RawStreamMsg) (placed, error) {
	if m == nil {
		var err error
		if m, err = w.msgAt(ctx, seq, id); err != nil {
			return placed{}, err
		}
	}
	if !w.sameWrite(m, req) {
		return placed{}, reused(id, seq)
	}
	return placed{seq: seq, earlier: true}, nil
}

// msgAt returns the message at seq, which the stream said holds write id
// id (a duplicate ack). A direct get answered by a follower that has not
// stored it yet says it is not there: msgAt asks again for a while before
// calling the outcome unknown (api.ErrUnavailable).
func (w *Writer) msgAt(ctx context.Context, seq uint64, id string) (*jetstream.RawStreamMsg, error) {
	b := backoff.Backoff{Max: 100 * time.Millisecond}
	deadline := time.Now().Add(storedLookup)
	for {
		m, err := w.getMsg(ctx, seq, "")
		if err != nil || m != nil {
			return m, err
		}
		if time.Now().After(deadline) || b.Wait(ctx) != nil {
			return nil, api.Errorf(api.ErrUnavailable, "write id %q: the stream said it holds it at %d, but the message cannot be read to check that it is this write", id, seq)
		}
	}
}

// storedLookup bounds how long stored looks for a message the stream
// named.
const storedLookup = 2 * time.Second

func reused(id string, seq uint64) error {
	return api.Errorf(api.ErrWriteIDReused,
		"write id %q already names a different write (revision %d); use a new write id for a new write", id, seq)
}
