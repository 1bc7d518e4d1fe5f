package replica

import (
	"github.com/tidemark/tidemark/wire"

	"context"
	"encoding/json"
	"time"
)

// Advertising defaults.
const (
	// DefaultAdvertiseMin is the shortest interval between two status
	// advertisements: under load, one per interval; idle, none.
	DefaultAdvertiseMin = 5 * time.Millisecond
	// DefaultAdvertiseMax is the longest: a heartbeat even when idle, so
	// routers know the replica is alive.
	DefaultAdvertiseMax = time.Second
)

// advertise publishes the replica's status on its status subject whenever
// applied moves (at most every DefaultAdvertiseMin) and at least every
// DefaultAdvertiseMax, until ctx ends. It waits on the replicator's own
// signal, so an idle replica does no work between heartbeats.
func (r *Replica) advertise(ctx context.Context) error {
	subject := r.cfg.Subjects.Status(r.cfg.ID)
	var (
		last     uint64
		lastTime = time.Now()
		rate     float64
	)
	for {
		wctx, cancel := context.WithTimeout(ctx, DefaultAdvertiseMax)
		_ = r.repl.WaitApplied(wctx, last+1)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		applied := r.repl.Applied()
		if dt := now.Sub(lastTime).Seconds(); dt > 0 && applied >= last {
			inst := float64(applied-last) / dt
			rate = 0.7*rate + 0.3*inst // smoothed over the last few advertisements
		}
		last, lastTime = applied, now
		state, reason := r.State()
		ad := wire.ReplicaStatus{
			Replica: r.cfg.ID, Stream: r.cfg.Stream.ID(), Applied: applied, Rate: rate, Ready: r.Ready() == nil,
			State: state, Reason: reason,
		}
		if n := r.repl.Stats().Tombstones; n >= 0 {
			ad.Tombstones = &n
		}
		if cs := r.CompactStatus(); cs.Leader {
			ad.CompactPoint = max(cs.Point, 1)
		}
		b, _ := json.Marshal(ad)
		if err := r.cfg.Conn.Publish(subject, b); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Debug().Err(err).Msg("advertise status")
		}
		if r.repl.Err() != nil {
			// A replica that stopped applying keeps saying so, slowly.
			select {
			case <-time.After(DefaultAdvertiseMax):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		select {
		case <-time.After(DefaultAdvertiseMin):
		case <-ctx.Done():
			return nil
		}
	}
}
