package stream

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// identity is what tells one stream from another of the same name: the id
// its tokens carry, and when the server created it.
type identity struct {
	id      string
	created time.Time
}

// watchIdentity marks the identity suspect whenever JetStream announces
// that a stream of this name was created or deleted, and whenever the
// connection comes back (the server may have restarted on an older copy of
// its store), so that the next token check and the next write read the
// stream's state again (Refresh). The subscriptions end with the
// connection.
func (s *Stream) watchIdentity() {
	nc := s.js.Conn()
	if nc == nil {
		return
	}
	if !nc.IsClosed() {
		status := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
		go func() {
			for st := range status {
				if st == nats.CLOSED {
					return
				}
				s.suspect.Store(true)
			}
		}()
	}
	for _, event := range []string{"CREATED", "DELETED"} {
		// A failed subscription leaves only the other signals (an ack
		// whose sequence goes back); nothing else to do about it here.
		_, _ = nc.Subscribe("$JS.EVENT.ADVISORY.STREAM."+event+"."+s.cfg.Name, func(*nats.Msg) { s.suspect.Store(true) })
	}
}

// Suspect marks the stream's identity as possibly changed: a write was
// acknowledged at a sequence below one already seen, as a recreated stream
// does.
func (s *Stream) Suspect() { s.suspect.Store(true) }

// Suspected reports whether the identity must be verified before a write's
// token is handed out.
func (s *Stream) Suspected() bool { return s.suspect.Load() }

// Refresh reads the stream's identity from the server, after a sign that
// the stream may have been deleted and recreated (Suspected). A stream
// recreated under the same name has a new identity, which the handle takes
// on: its tokens name the new stream from then on, and its known last
// sequence is the new stream's. A caller that had a write in flight checks
// that the write is in the new stream before answering it (see package
// writer).
func (s *Stream) Refresh(ctx context.Context) error {
	info, err := s.handle.Info(ctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return api.Errorf(api.ErrUnavailable, "stream %s was deleted", s.cfg.Name)
	case err != nil:
		return api.Errorf(api.ErrUnavailable, "stream %s: read its identity: %w", s.cfg.Name, err)
	}
	id := info.Config.Metadata[metaID]
	if !api.ValidStreamID(id) {
		return api.Errorf(api.ErrUnavailable, "stream %s has no Tidemark identity (metadata %s); was it recreated by another tool?", s.cfg.Name, metaID)
	}
	s.suspect.Store(false)
	cur := s.ident.Load()
	if id == cur.id && info.Created.Equal(cur.created) {
		// The server's last sequence, even below what was seen: a store
		// restored from an older copy lost its tail, and tokens past its
		// end must be checked again, not taken as known. (Lower than the
		// truth only costs such a check.)
		s.lastMu.Lock()
		s.last = info.State.LastSeq
		s.lastMu.Unlock()
		return nil
	}
	if s.ident.CompareAndSwap(cur, &identity{id: id, created: info.Created}) {
		s.lastMu.Lock()
		s.last = info.State.LastSeq // the new stream's: the old one's is gone
		s.lastMu.Unlock()
	}
	return nil
}
