package writer

import (
	"cmp"
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"strconv"
	"sync"
	"time"

	"github.com/tidemark/tidemark/stream"
)

// DefaultMaxSessions bounds how many sessions a writer remembers; idle ones
// are forgotten first.
const DefaultMaxSessions = 100_000

// sessionIdle is how long a session must be idle before the writer may
// forget it to make room.
const sessionIdle = time.Minute

// maxClaimRounds bounds how often a write claims its session number again
// after losing the claim to a concurrent write of the same session.
const maxClaimRounds = 5

// Monotonic writes are kept by the stream, for every writer at once. Each
// session has a subject of its own (stream.SessionSubject) that holds its
// order markers. A session's write numbered n first claims n: the writer
// reads the session's last marker (numbered m, at stream sequence L), and
// publishes a marker numbered n only if n > m, expecting the subject's last
// sequence to be L, so that of two writers claiming at once only one gets
// through. Then the write itself is published expecting the session
// subject's last sequence to be its own marker's: it is stored only while
// no later write of the session has claimed a number. So the stream holds
// each session's writes in increasing order, every replica applies all of
// them (their session rule never has to leave one out), and a write that
// would land out of order is refused with api.ErrOutOfOrder.
//
// A conditional write of a session needs two expectations at once (the
// key's and the session's), which one message cannot carry: its marker and
// the write go to the stream as one atomic batch.

// sessions serializes each session's writes through this writer, so that
// they do not race each other for their claims, and remembers each
// session's last marker, which saves a lookup per write. What it remembers
// is only a guess: the stream's expectation decides.
type sessions struct {
	max int

	mu sync.Mutex
	m  map[string]*session
}

type session struct {
	mu   sync.Mutex // held for the whole of one write of the session
	last marker     // the session's last marker, when known
	used time.Time
	refs int // writes holding or waiting for mu; guarded by sessions.mu
}

// marker is a session order marker in the stream.
type marker struct {
	seq uint64 // its stream sequence; 0 when the session has no marker
	n   uint64 // the write number it claims
	id  string // its message id
	ok  bool   // known
}

// acquire locks the session id; release must follow.
func (s *sessions) acquire(id string) *session {
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]*session)
	}
	ss := s.m[id]
	if ss == nil {
		if len(s.m) >= s.max {
			s.evict()
		}
		ss = &session{}
		s.m[id] = ss
	}
	ss.refs++
	s.mu.Unlock()
	ss.mu.Lock()
	return ss
}

// release unlocks ss.
func (s *sessions) release(ss *session) {
	ss.used = time.Now()
	ss.mu.Unlock()
	s.mu.Lock()
	ss.refs--
	s.mu.Unlock()
}

// evict forgets idle sessions; s.mu is held.
func (s *sessions) evict() {
	cutoff := time.Now().Add(-sessionIdle)
	for id, ss := range s.m {
		if ss.refs == 0 && ss.used.Before(cutoff) {
			delete(s.m, id)
		}
	}
}

// MarkerID is the message id of the order marker that the session write
// with write id id publishes.
func MarkerID(id string) string { return "session:" + id }

// lastMarker reads the session's last marker from the stream.
func (w *Writer) lastMarker(ctx context.Context, session string) (marker, error) {
	m, err := w.lastMsg(ctx, stream.SessionSubject(w.stream.Subject(), session))
	if err != nil || m == nil {
		return marker{ok: err == nil}, err
	}
	n, err := strconv.ParseUint(m.Header.Get(api.HeaderSessionSeq), 10, 64)
	if err != nil {
		return marker{}, api.Errorf(api.ErrInternal, "session %s: marker at %d has a bad number %q", session, m.Sequence, m.Header.Get(api.HeaderSessionSeq))
	}
	return marker{seq: m.Sequence, n: n, id: msgID(m), ok: true}, nil
}

// claim is the state of one session write's claim on its number.
type claim struct {
	subject string // the session's marker subject
	last    marker // the marker the claim expects to follow (or is, once claimed)
	mine    bool   // last is this write's own marker
}

// order decides whether req may claim its number after the session's last
// marker (looked up when ss does not know it): it returns the claim to
// make, or one already made by an earlier attempt of this write.
func (w *Writer) order(ctx context.Context, req api.WriteRequest, id string, ss *session) (*claim, error) {
	fresh := false
	for {
		if !ss.last.ok {
			last, err := w.lastMarker(ctx, req.Session)
			if err != nil {
				return nil, err
			}
			ss.last, fresh = last, true
		}
		last := ss.last
		switch {
		case last.seq != 0 && last.id == MarkerID(id):
			if last.n != req.SessionSeq {
				return nil, reused(id, last.seq)
			}
			return &claim{subject: stream.SessionSubject(w.stream.Subject(), req.Session), last: last, mine: true}, nil
		case last.seq == 0 && !fresh:
			ss.last.ok = false // no marker known: the stream may have removed it
			continue
		case last.seq == 0:
			if err := w.orderAfterRemoved(ctx, req); err != nil {
				return nil, err
			}
			return &claim{subject: stream.SessionSubject(w.stream.Subject(), req.Session), last: last}, nil
		case req.SessionSeq > last.n:
			return &claim{subject: stream.SessionSubject(w.stream.Subject(), req.Session), last: last}, nil
		case !fresh:
			ss.last.ok = false // decide on what the stream says
			continue
		case req.SessionSeq == last.n:
			return nil, api.Errorf(api.ErrOutOfOrder,
				"session %s: write %d was already claimed by another write id; a retry must reuse the write id", req.Session, req.SessionSeq)
		default:
			return nil, api.Errorf(api.ErrOutOfOrder,
				"session %s: write %d arrived after write %d of the same session; it is not applied", req.Session, req.SessionSeq, last.n)
		}
	}
}

// orderAfterRemoved checks a session write that found no order marker of
// its session: when the stream has removed history (compaction, limits),
// the session's markers may be gone while the replicas still hold its
// record, which would make them leave this write out. So the writer reads
// the session's highest applied number from a replica, with strong
// consistency, and refuses numbers not above it; the claim then expects
// no marker, as for a new session.
func (w *Writer) orderAfterRemoved(ctx context.Context, req api.WriteRequest) error {
	// The session's record comes with a point read, which names a key: the
	// write's, or for a transaction's step, which has none, the session's
	// id (a valid key; its record is not looked at).
	key := cmp.Or(req.Key, req.Session)
	res, removed, err := w.readRemoved(ctx, api.GetRequest{Key: key, Session: req.Session}, "session "+req.Session)
	switch {
	case err != nil || !removed:
		return err
	case req.SessionSeq <= res.SessionSeq:
		return api.Errorf(api.ErrOutOfOrder,
			"session %s: write %d arrived after write %d of the same session; it is not applied", req.Session, req.SessionSeq, res.SessionSeq)
	}
	return nil
}

// claimNumber publishes the marker of c unless it is already claimed, and
// returns the marker the write must follow.
func (w *Writer) claimNumber(ctx context.Context, req api.WriteRequest, id string, ss *session) (*claim, error) {
	for round := 1; ; round++ {
		c, err := w.order(ctx, req, id, ss)
		if err != nil || c.mine {
			return c, err
		}
		ack, err := w.publishMsg(ctx, req, stream.MarkerMsg(w.stream.Subject(), req.Session, req.SessionSeq), MarkerID(id), expectLast(c.last.seq))
		if err == nil && ack.Duplicate {
			// An earlier attempt of this write id stored a marker: it must
			// be this write's.
			ss.last.ok = false
			m, err := w.msgAt(ctx, ack.Sequence, MarkerID(id))
			if err != nil {
				return nil, err
			}
			if m.Header.Get(api.HeaderSessionSeq) != strconv.FormatUint(req.SessionSeq, 10) || m.Subject != c.subject {
				return nil, reused(id, ack.Sequence)
			}
		}
		switch {
		case err == nil:
			ss.last = marker{seq: ack.Sequence, n: req.SessionSeq, id: MarkerID(id), ok: true}
			c.last, c.mine = ss.last, true
			return c, nil
		case wire.WrongLastSeq(err) && round < maxClaimRounds:
			ss.last.ok = false // another writer claimed: look again
		case wire.WrongLastSeq(err):
			return nil, api.Errorf(api.ErrUnavailable, "session %s: write %d lost its claim %d times to concurrent writes of the session", req.Session, req.SessionSeq, round)
		default:
			ss.last.ok = false
			return nil, w.publishError(req, err)
		}
	}
}

// overtaken answers a session write whose publish found a later marker of
// its session: an earlier attempt of this very write may have been stored
// before that marker (it is the first message of the key with this write id
// after c's marker and before the next one); otherwise the write is out of
// order.
func (w *Writer) overtaken(ctx context.Context, req api.WriteRequest, id string, c *claim) (placed, error) {
	next, err := w.getMsg(ctx, c.last.seq+1, c.subject)
	if err != nil {
		return placed{}, err
	}
	subject := w.stream.KeySubject(req.Key)
	for from := c.last.seq + 1; next != nil; {
		m, err := w.getMsg(ctx, from, subject)
		if err != nil {
			return placed{}, err
		}
		if m == nil || m.Sequence > next.Sequence {
			break
		}
		if msgID(m) == id {
			return w.stored(ctx, req, id, m.Sequence, m)
		}
		from = m.Sequence + 1
	}
	return placed{}, api.Errorf(api.ErrOutOfOrder,
		"session %s: a later write of the session was claimed before write %d was stored; it is not applied", req.Session, req.SessionSeq)
}
