package writer

import (
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

// sessions serializes each session's writes through this writer and
// remembers the highest write sequence it published for each, so that a
// write that arrives after a later write of its session fails at once with
// stream.ErrOutOfOrder instead of being published only for every replica
// to leave it out. The replicas' rule is the authority (it also covers
// writes that went through other writers); this is the fast, explicit
// answer for the common case.
type sessions struct {
	max int

	mu sync.Mutex
	m  map[string]*session
}

type session struct {
	mu      sync.Mutex // held for the whole of one write of the session
	seq     uint64     // highest sequence published through this writer
	writeID string     // its write id: a retry of it is not out of order
	used    time.Time
	refs    int // writes holding or waiting for mu; guarded by sessions.mu
}

// acquire locks the session of req and checks its order; release must
// follow with whether the write was published.
func (s *sessions) acquire(req stream.WriteRequest, writeID string) (*session, error) {
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]*session)
	}
	ss := s.m[req.Session]
	if ss == nil {
		if len(s.m) >= s.max {
			s.evict()
		}
		ss = &session{}
		s.m[req.Session] = ss
	}
	ss.refs++
	s.mu.Unlock()

	ss.mu.Lock()
	switch seq := ss.seq; {
	case req.SessionSeq < seq:
		s.release(req.Session, ss, false, "", 0)
		return nil, stream.Errorf(stream.ErrOutOfOrder,
			"session %s: write %d arrived after write %d of the same session was stored; it is not applied", req.Session, req.SessionSeq, seq)
	case req.SessionSeq == seq && writeID != ss.writeID:
		s.release(req.Session, ss, false, "", 0)
		return nil, stream.Errorf(stream.ErrOutOfOrder,
			"session %s: write %d was already stored with another write id; a retry must reuse the write id", req.Session, seq)
	}
	return ss, nil
}

// release unlocks ss, recording seq and writeID when the write was published.
func (s *sessions) release(id string, ss *session, published bool, writeID string, seq uint64) {
	if published && seq > ss.seq {
		ss.seq, ss.writeID = seq, writeID
	}
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
