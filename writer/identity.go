package writer

import (
	"bytes"
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/stream"
)

// sameWrite reports whether m, a stream message that carries req's write
// id, is the write req describes: the same key, op and value. A write id
// names one write; a second write under the same id is refused
// (stream.ErrWriteIDReused), never answered with the first one's revision.
func (w *Writer) sameWrite(m *jetstream.RawStreamMsg, req stream.WriteRequest) bool {
	e, err := stream.DecodeMessage(w.stream.Subject(), m.Subject, m.Header, m.Data)
	return err == nil && e.Op == req.Op && e.Key == req.Key && bytes.Equal(e.Value, req.Value)
}

// stored returns the revision of the message at seq that carries req's
// write id, after checking that it is req's write.
func (w *Writer) stored(ctx context.Context, req stream.WriteRequest, id string, seq uint64, m *jetstream.RawStreamMsg) (uint64, error) {
	if m == nil {
		var err error
		if m, err = w.getMsg(ctx, seq, ""); err != nil {
			return 0, err
		}
	}
	if m == nil || !w.sameWrite(m, req) {
		return 0, reused(id, seq)
	}
	return seq, nil
}

func reused(id string, seq uint64) error {
	return stream.Errorf(stream.ErrWriteIDReused,
		"write id %q already names a different write (revision %d); use a new write id for a new write", id, seq)
}
