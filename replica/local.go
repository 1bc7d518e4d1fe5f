package replica

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Local serves reads from replicas in this process, as the gateway's reader
// in `tidemark dev` or in an application that embeds its replicas: no NATS
// round trip. A read that names a replica goes to it; a strong read goes to
// the freshest serving replica; any other read to a serving replica that
// has applied its token (round robin), or else to the freshest. A read
// that names a replica not in this process is api.ErrUnknownReplica.
// With Forward, a read whose replica (named or chosen) timed out waiting
// for the token or is not serving is tried once more on the freshest other
// replica with the last quarter of the wait (api.SplitForward), as the
// NATS client does. It is safe for concurrent use.
type Local struct {
	rs   []*Replica
	next atomic.Uint32
}

// NewLocal returns a Local over rs.
func NewLocal(rs ...*Replica) *Local { return &Local{rs: rs} }

// pick chooses the replica for a read that names id (or none) and needs
// seq; freshest asks for the most advanced one; not is skipped.
func (l *Local) pick(id string, seq uint64, freshest bool, not *Replica) (*Replica, error) {
	if id != "" {
		for _, r := range l.rs {
			if r.ID() == id {
				return r, nil
			}
		}
		return nil, api.Errorf(api.ErrUnknownReplica, "no replica %q in this process", id)
	}
	n := uint32(len(l.rs))
	start := l.next.Add(1)
	var best *Replica
	for i := range n {
		r := l.rs[(start+i)%n]
		if r == not || r.Ready() != nil {
			continue
		}
		if !freshest && r.Applied() >= seq {
			return r, nil
		}
		if best == nil || r.Applied() > best.Applied() {
			best = r
		}
	}
	if best == nil {
		return nil, api.Errorf(api.ErrUnavailable, "no replica in this process is serving")
	}
	return best, nil
}

// do runs read on the replica chosen for a read of the given id, token,
// consistency, wait and forward, forwarding it once on a token timeout.
func (l *Local) do(id string, tok api.Token, c api.Consistency, wait time.Duration, forward bool,
	read func(r *Replica, wait time.Duration) error) error {
	r, err := l.pick(id, tok.Seq, c == api.Strong, nil)
	if err != nil {
		return err
	}
	if !forward || len(l.rs) < 2 {
		return read(r, wait)
	}
	first, rest := api.SplitForward(r.rd.Wait(wait))
	err = read(r, first)
	if !errors.Is(err, api.ErrTokenWaitTimeout) && !errors.Is(err, api.ErrUnavailable) {
		return err
	}
	other, perr := l.pick("", tok.Seq, true, r)
	if perr != nil {
		return err
	}
	return read(other, rest)
}

// Get implements the gateway's Reader.
func (l *Local) Get(ctx context.Context, req api.GetRequest) (api.GetResult, error) {
	res := api.GetResult{Record: api.Record{Key: req.Key}, Token: req.Token}
	err := l.do(req.Replica, req.Token, req.Consistency, req.Wait, req.Forward, func(r *Replica, wait time.Duration) error {
		q := req
		q.Wait = wait
		var err error
		res, err = r.Get(ctx, q)
		return err
	})
	return res, err
}

// Scan implements the gateway's Reader.
func (l *Local) Scan(ctx context.Context, req api.ScanRequest) (api.ScanResult, error) {
	res := api.ScanResult{Token: req.Token}
	err := l.do(req.Replica, req.Token, req.Consistency, req.Wait, req.Forward, func(r *Replica, wait time.Duration) error {
		q := req
		q.Wait = wait
		var err error
		res, err = r.Scan(ctx, q)
		return err
	})
	return res, err
}
