package client

import (
	"errors"

	"github.com/tidemark/tidemark/wire"

	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultStatusTTL is how long a replica's advertisement counts; a replica
// not heard from for longer is not routed to.
const DefaultStatusTTL = 3 * time.Second

// Router picks the replica a read goes to, from the status every replica
// advertises on NATS: one that has already reached the read's token when
// there is one (chosen at random among them, to spread load), otherwise the
// one expected to reach it first (the smallest distance over apply rate).
// It also learns from the replies it sees. It is safe for concurrent use.
type Router struct {
	// TTL is how long an advertisement counts; DefaultStatusTTL when 0.
	TTL time.Duration

	sub *nats.Subscription

	mu       sync.Mutex
	replicas map[string]*routeState
	now      func() time.Time
}

type routeState struct {
	applied uint64
	rate    float64
	ready   bool
	seen    time.Time
}

// NewRouter subscribes to the replicas' status advertisements on nc.
func NewRouter(nc *nats.Conn, subjects wire.Subjects) (*Router, error) {
	r := &Router{TTL: DefaultStatusTTL, replicas: map[string]*routeState{}, now: time.Now}
	sub, err := nc.Subscribe(subjects.StatusAll(), func(m *nats.Msg) {
		st, err := wire.DecodeStatus(m.Data)
		if err != nil {
			return // not ours to judge; a bad advertisement routes nothing
		}
		r.Observe(st.Replica, st.Applied, st.Rate, st.Ready)
	})
	if err != nil {
		return nil, err
	}
	r.sub = sub
	return r, nil
}

// Close stops listening to advertisements.
func (r *Router) Close() error {
	if r.sub == nil {
		return nil
	}
	err := r.sub.Unsubscribe()
	if errors.Is(err, nats.ErrBadSubscription) || errors.Is(err, nats.ErrConnectionClosed) {
		return nil // closed already, or with its connection
	}
	return err
}

// Observe records what is known of a replica: its applied sequence, apply
// rate and readiness. Applied only moves forward. A rate below zero keeps
// the rate known before.
func (r *Router) Observe(id string, applied uint64, rate float64, ready bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.replicas[id]
	if st == nil {
		st = &routeState{}
		r.replicas[id] = st
	}
	st.applied = max(st.applied, applied)
	if rate >= 0 {
		st.rate = rate
	}
	st.ready, st.seen = ready, r.now()
}

// Forget drops a replica, for example one that did not answer.
func (r *Router) Forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.replicas, id)
}

// Pick returns the replica a read that needs sequence seq should go to,
// other than exclude, or "" when no ready replica has been heard from
// lately (the caller then uses the shared subject).
func (r *Router) Pick(seq uint64, exclude string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	now, ttl := r.now(), r.ttl()
	var (
		reached []string
		best    string
		bestETA = -1.0
	)
	for id, st := range r.replicas {
		if id == exclude || !st.ready || now.Sub(st.seen) > ttl {
			continue
		}
		if st.applied >= seq {
			reached = append(reached, id)
			continue
		}
		eta := float64(seq-st.applied) / max(st.rate, 1)
		if bestETA < 0 || eta < bestETA {
			best, bestETA = id, eta
		}
	}
	if len(reached) > 0 {
		return reached[rand.IntN(len(reached))]
	}
	return best
}

// Freshest returns the ready replica with the highest applied sequence,
// other than exclude, or "".
func (r *Router) Freshest(exclude string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	best, bestApplied := "", uint64(0)
	for id, st := range r.replicas {
		if id == exclude || !st.ready || now.Sub(st.seen) > r.ttl() {
			continue
		}
		if best == "" || st.applied > bestApplied {
			best, bestApplied = id, st.applied
		}
	}
	return best
}

func (r *Router) ttl() time.Duration {
	if r.TTL <= 0 {
		return DefaultStatusTTL
	}
	return r.TTL
}
