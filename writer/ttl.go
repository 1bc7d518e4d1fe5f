package writer

import (
	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/internal/backoff"
	"github.com/tidemark/tidemark/wire"

	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/stream"
)

// Conditional writes and keys with a time to live. A key whose last
// message is a put with a TTL expires at the first stream message at or
// after E, the put's stream time plus its TTL (see package replicator), so
// its state at the stream's current position follows from the stream's
// last message time:
//
//   - E <= the stream's last message time: the key has expired there, before
//     any new write lands. If-None-Match may recreate it, expecting that
//     put's sequence (atomic: it lands only while that put is still the
//     key's last message); If-Match on it fails ("it expired").
//   - E > now by this writer's clock: the key lives. If-None-Match fails;
//     If-Match may write (should the key expire before the write lands, the
//     write replaces it all the same).
//   - otherwise E is due but the stream is idle: the writer publishes the
//     clock tick a replica would (stream.TickMsg), which moves stream time,
//     and looks again.

// ttlState is the state of a key with a time to live at the stream's
// current position.
type ttlState int

const (
	ttlNone    ttlState = iota // the put has no time to live
	ttlLive                    // not expired
	ttlExpired                 // expired at or before the stream's last message
)

// expiryOf returns the expiry time of m, a put, and whether it has a TTL.
func (w *Writer) expiryOf(m *jetstream.RawStreamMsg) (time.Time, bool) {
	e, err := stream.DecodeMessage(w.stream.Subject(), m.Subject, m.Header, m.Data)
	if err != nil || e.Op != api.OpPut || e.TTL == 0 {
		return time.Time{}, false
	}
	return m.Time.Add(e.TTL), true
}

// ttlOf returns the state at the stream's current position of the key whose
// last message is m, a put; for an If-None-Match write (absent), an expiry
// that is due on an idle stream is first made to happen by a clock tick.
func (w *Writer) ttlOf(ctx context.Context, m *jetstream.RawStreamMsg, absent bool) (ttlState, error) {
	at, ok := w.expiryOf(m)
	if !ok {
		return ttlNone, nil
	}
	b := backoff.Backoff{Max: 100 * time.Millisecond}
	for {
		info, err := w.stream.Info(ctx)
		if err != nil {
			return 0, api.Errorf(api.ErrUnavailable, "stream %s: %w", w.stream.Name(), err)
		}
		switch {
		case !at.After(info.State.LastTime):
			return ttlExpired, nil
		case at.After(time.Now()) || !absent:
			return ttlLive, nil
		}
		if err := w.tick(ctx, at, info.State.LastSeq); err != nil {
			return 0, err
		}
		if b.Wait(ctx) != nil {
			return 0, api.Errorf(api.ErrUnavailable, "stream %s: the expiry of %s at %v is due, but the stream's time did not reach it", w.stream.Name(), m.Subject, at.UTC())
		}
	}
}

// tick publishes the clock tick of the expiry at on a stream whose last
// sequence is last; a stream that has moved on meanwhile needs none.
func (w *Writer) tick(ctx context.Context, at time.Time, last uint64) error {
	m := stream.TickMsg(w.stream.Subject(), at.UnixNano(), last)
	err := w.retry(ctx, "publish clock tick", func(ctx context.Context) error {
		_, err := w.stream.JetStream().PublishMsg(ctx, m, noRetries)
		return err
	})
	switch {
	case err == nil || wire.WrongLastSeq(err):
		return nil
	case errors.Is(err, api.ErrUnavailable):
		return err
	}
	return w.requestError("publish clock tick", err)
}
