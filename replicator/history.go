package replicator

import (
	"github.com/tidemark/tidemark/api"

	"github.com/tidemark/tidemark/internal/backoff"

	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/stream"
)

// A replica serves a token only if the stream it applied is the stream that
// issued the token and the messages it applied are the ones the stream
// holds now. The second half cannot be seen from sequences alone: a stream
// restored from an older copy of its store, or a server that crashed before
// it synced its tail, holds fewer messages than the replica applied, and the
// next writes reuse the sequences the replica applied with other content.
//
// So the replica remembers which message it applied last: m/head holds the
// applied sequence and a SHA-256 sum over that message's stream timestamp
// (nanoseconds), subject, write id (Nats-Msg-Id), op header, time to live
// header (stream.HeaderTTL, when set) and data,
// written in the same Badger transaction as m/applied. The timestamp is
// assigned by the stream when it stores a message, so a message published
// again at the same sequence has another sum even with the same content;
// the sum covers the bytes that make the applied state. One message is
// enough: sequences only grow, so a stream whose message at applied is the
// very message the replica applied holds the same history up to it (a lost
// tail shows as a last sequence below applied or as another message at
// applied). A rolling checksum over every message applied would say more,
// but the stream cannot answer it without reading everything again.
//
// verify compares m/head with a direct get of that sequence, and checks
// the stream's identity, creation time and last sequence. Run verifies
// before it consumes, before the first message of every new consumer (the
// ordered consumer replaces its server-side consumer on a reconnect), at
// once when the NATS connection comes back, when JetStream announces that
// the stream was deleted or created, and every Config.CheckInterval. While
// the connection is down the replica does not serve (ErrUnverified): the
// server it comes back to may hold another history.

// keyHead is the Badger key of the applied message's identity.
var keyHead = []byte("m/head")

// streamIDMeta is the stream metadata key that holds the stream identity
// (stream.Stream.ID).
const streamIDMeta = "tidemark_id"

// head identifies the message at seq; seq 0 is the empty history.
type head struct {
	seq uint64
	sum [sha256.Size]byte
}

// headLen is the stored size of a head.
const headLen = 8 + sha256.Size

func (h head) encode() []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, headLen), h.seq), h.sum[:]...)
}

func decodeHead(b []byte) (head, error) {
	if len(b) != headLen {
		return head{}, fmt.Errorf("%w: m/head of %d bytes", ErrCorrupt, len(b))
	}
	h := head{seq: binary.BigEndian.Uint64(b)}
	copy(h.sum[:], b[8:])
	return h, nil
}

// messageSum is the identity of a stream message (see above).
func messageSum(t time.Time, subject string, hdr nats.Header, data []byte) [sha256.Size]byte {
	s := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
	s.Write(b[:])
	fields := []string{subject, hdr.Get(nats.MsgIdHdr), hdr.Get(api.HeaderOp)}
	if ttl := hdr.Get(stream.HeaderTTL); ttl != "" {
		// Only when set, so that the sums of messages without it stay
		// what they were.
		fields = append(fields, ttl)
	}
	for _, f := range fields {
		binary.BigEndian.PutUint64(b[:], uint64(len(f)))
		s.Write(b[:])
		s.Write([]byte(f))
	}
	s.Write(data)
	var sum [sha256.Size]byte
	s.Sum(sum[:0])
	return sum
}

// readHead reads m/head in txn. ok is false when none is stored (a
// database written before heads were kept).
func readHead(txn *badger.Txn) (h head, ok bool, err error) {
	item, err := txn.Get(keyHead)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return head{}, false, nil
	}
	if err != nil {
		return head{}, false, fmt.Errorf("read m/head: %w", err)
	}
	err = item.Value(func(b []byte) error {
		h, err = decodeHead(b)
		return err
	})
	return h, err == nil, err
}

// setHead records the head the apply loop committed.
func (r *Replicator) setHead(h head, known bool) {
	r.headMu.Lock()
	r.head, r.headKnown = h, known
	r.headMu.Unlock()
}

func (r *Replicator) currentHead() (head, bool) {
	r.headMu.Lock()
	defer r.headMu.Unlock()
	return r.head, r.headKnown
}

// verify checks that the stream is the one the replica applied and still
// holds the message the replica applied last. created, when not zero, is
// the stream's creation time when Run started. A mismatch wraps
// ErrStreamMismatch (another stream identity: this replica's tokens cannot
// be served from it), or ErrDiverged or ErrAhead (the state must be
// rebuilt); other errors mean the stream could not be asked.
func (r *Replicator) verify(ctx context.Context, created time.Time) error {
	h, known := r.currentHead()
	applied := r.Applied()
	info, err := r.cfg.Stream.Info(ctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("%w: the stream %s was deleted", ErrDiverged, r.cfg.Stream.Name())
	case err != nil:
		return err
	}
	if id := info.Config.Metadata[streamIDMeta]; id != r.StreamID() {
		return fmt.Errorf("%w: the stream %s now has id %q, this replica's state is of %s (it was deleted and recreated)",
			ErrDiverged, r.cfg.Stream.Name(), id, r.StreamID())
	}
	if !created.IsZero() && !info.Created.Equal(created) {
		return fmt.Errorf("%w: the stream %s was recreated at %v with the same id", ErrDiverged, r.cfg.Stream.Name(), info.Created)
	}
	if last := info.State.LastSeq; last < applied {
		return fmt.Errorf("%w: applied %d, the stream's last sequence is %d (it lost its tail: restored from an older copy, or a crash before it synced)", ErrAhead, applied, last)
	}
	if !known || h.seq == 0 || info.State.FirstSeq > h.seq {
		// Nothing to compare: the empty history, a database from before
		// heads, or a message removed by limits since.
		return nil
	}
	msg, err := r.cfg.Stream.Handle().GetMsg(ctx, h.seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Removed by limits meanwhile or by a subject purge, or a direct
		// get answered by a follower that has not stored it yet: nothing
		// to compare. (A stream that lost it with its tail has a last
		// sequence below it, caught above.)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get message %d: %w", h.seq, err)
	}
	if messageSum(msg.Time, msg.Subject, msg.Header, msg.Data) != h.sum {
		return fmt.Errorf("%w: the stream's message %d (subject %s, stored %v) is not the one the replica applied; the stream lost its tail and took other writes since",
			ErrDiverged, h.seq, msg.Subject, msg.Time.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// mismatch reports whether err from verify means the replica's state does
// not belong to the stream (rather than that the stream was unreachable).
func mismatch(err error) bool {
	return errors.Is(err, ErrStreamMismatch) || errors.Is(err, ErrDiverged) || errors.Is(err, ErrAhead)
}

// verifyRetrying is verify, retrying with backoff while the stream cannot
// be asked.
func (r *Replicator) verifyRetrying(ctx context.Context, created time.Time) error {
	var b backoff.Backoff
	for attempt := 0; ; attempt++ {
		err := r.verify(ctx, created)
		if err == nil || mismatch(err) || ctx.Err() != nil {
			return err
		}
		r.retryLog(attempt).Err(err).Msg("verify the stream's history; retrying")
		if err := b.Wait(ctx); err != nil {
			return err
		}
	}
}

// watchStream verifies the history every CheckInterval, at once when the
// NATS connection comes back and when JetStream announces that the stream
// was deleted or created. It suspends serving (ErrUnverified) while the
// connection is down, also in the middle of a check (check). On a mismatch
// it stops serving and hands the reason to the apply loop through lost.
func (r *Replicator) watchStream(ctx context.Context, created time.Time, lost chan<- error) {
	nc := r.cfg.Stream.JetStream().Conn()
	status := nc.StatusChanged(nats.CONNECTED, nats.DISCONNECTED, nats.RECONNECTING)
	defer nc.RemoveStatusListener(status)
	adv := make(chan *nats.Msg, 1)
	for _, ev := range []string{"DELETED", "CREATED"} {
		sub, err := nc.ChanSubscribe("$JS.EVENT.ADVISORY.STREAM."+ev+"."+r.cfg.Stream.Name(), adv)
		if err != nil {
			r.log.Debug().Err(err).Msg("subscribe to stream advisories")
			continue
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	if !nc.IsConnected() {
		r.suspend()
	}
	t := time.NewTicker(r.cfg.CheckInterval)
	defer t.Stop()
	for again := false; ; {
		if !again {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-adv:
			case s := <-status:
				if s != nats.CONNECTED {
					r.suspend()
					continue
				}
			}
		}
		current, err := r.check(ctx, created, status)
		if ctx.Err() != nil {
			return
		}
		if mismatch(err) {
			r.hold(err)
			select {
			case lost <- err:
			case <-ctx.Done():
			}
			return
		}
		if current && err == nil {
			r.release(ErrUnverified)
		}
		// A check that the connection's loss or return overtook says
		// nothing of the server the connection is on now: check again at
		// once, or when the connection is back. Otherwise an error means
		// the stream is unreachable for now: the consumer retries on its
		// own, and a lost connection has suspended serving.
		again = !current && nc.IsConnected()
	}
}

// check is verify, following the connection's status meanwhile: a check in
// flight when the connection drops can wait for an answer that never comes
// (its request went to a server that is gone) until the request times out,
// and the replica must stop serving at once, not then. A change of status
// suspends serving if the connection is down and cancels the check. current
// is false then, and also when the connection was lost and came back under
// the check: its answer may be the old server's and says nothing of the one
// the connection is on now. A mismatch is one whether current or not (the
// stream did not hold the replica's history at some point).
func (r *Replicator) check(ctx context.Context, created time.Time, status <-chan nats.Status) (current bool, err error) {
	nc := r.cfg.Stream.JetStream().Conn()
	reconnects := nc.Stats().Reconnects
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- r.verify(cctx, created) }()
	select {
	case err := <-res:
		return nc.IsConnected() && nc.Stats().Reconnects == reconnects, err
	case s := <-status:
		if s != nats.CONNECTED {
			r.suspend()
		}
		cancel()
		return false, <-res
	}
}

// suspend stops serving until the history is verified again.
func (r *Replicator) suspend() {
	if r.hold(fmt.Errorf("%w: replica %s", ErrUnverified, r.cfg.ID)) {
		r.log.Warn().Uint64("applied", r.Applied()).Msg("connection to NATS lost; not serving until the stream's history is verified again")
	}
}
