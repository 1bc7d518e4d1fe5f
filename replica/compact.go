package replica

import (
	"github.com/tidemark/tidemark/wire"

	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/stream"
)

// Compaction keeps the stream bounded. The compactor of a replica stores a
// base snapshot of its state in the object store wire.BaseBucket on a
// schedule, and purges the stream below the purge point
//
//	P = min(the base snapshot's applied,
//	        the applied of every live replica (as it advertises it),
//	        last - WindowMessages + 1,
//	        the first message of the stream's duplicate window)
//
// keeping the message at P itself (a replica that restores the base
// snapshot, or resumes at P, verifies its history against it). A replica
// that finds its next message purged bootstraps, from the base snapshot
// when it reaches where the stream starts, so it comes back even when no
// other replica runs.
//
// Only the ready replica with the lowest id among the ready replicas it
// hears compacts. Two compacting at once is harmless: a purge below a
// sequence only ever removes messages every replica, the base snapshot and
// the window no longer need, a second purge below a lower point removes
// nothing, and a base snapshot only replaces an older one.

// Compaction defaults.
const (
	// DefaultSnapshotMessages is how many messages applied since the
	// newest base snapshot call for a new one.
	DefaultSnapshotMessages int64 = 100_000
	// DefaultSnapshotAge is how old the newest base snapshot may get while
	// the stream moves.
	DefaultSnapshotAge = 10 * time.Minute
	// DefaultWindowMessages is how many of the newest messages are always
	// kept, for replicas that were briefly down.
	DefaultWindowMessages int64 = 50_000
	// DefaultCompactInterval is how often the compactor looks.
	DefaultCompactInterval = 10 * time.Second
	// liveAfter is how long a replica counts as live after its last status.
	liveAfter = 3 * DefaultAdvertiseMax
)

// Compaction configures a replica's compactor.
type Compaction struct {
	// Enabled runs the compactor (it needs Config.Conn).
	Enabled bool
	// SnapshotMessages, SnapshotAge, WindowMessages and Interval: see the
	// defaults of the same names, used for zero values. A negative
	// WindowMessages keeps no window.
	SnapshotMessages int64
	SnapshotAge      time.Duration
	WindowMessages   int64
	Interval         time.Duration
}

func (c *Compaction) setDefaults() {
	if c.SnapshotMessages <= 0 {
		c.SnapshotMessages = DefaultSnapshotMessages
	}
	if c.SnapshotAge <= 0 {
		c.SnapshotAge = DefaultSnapshotAge
	}
	switch {
	case c.WindowMessages == 0:
		c.WindowMessages = DefaultWindowMessages
	case c.WindowMessages < 0:
		c.WindowMessages = 0 // no window
	}
	if c.Interval <= 0 {
		c.Interval = DefaultCompactInterval
	}
}

// BaseSnapshot describes the stored base snapshot.
type BaseSnapshot struct {
	// Applied is the stream sequence it holds everything up to.
	Applied uint64
	// Stream is the identity of its stream; Replica whose state it is.
	Stream, Replica string
	// Bytes is its size; Created when it was stored.
	Bytes   uint64
	Created time.Time
}

// CompactStatus is what a replica's compactor did last.
type CompactStatus struct {
	// Leader reports whether this replica is the one that compacts.
	Leader bool
	// Point is the last purge point: the stream starts at or after it.
	Point uint64
	// Base is the newest base snapshot this compactor knows of.
	Base *BaseSnapshot
	// Compactions counts purges; Removed and RemovedBytes what they removed.
	Compactions, Removed, RemovedBytes uint64
	// StreamFirst, StreamMessages and StreamBytes are the stream's state
	// as the compactor last saw it (while it leads), zero before.
	StreamFirst, StreamMessages, StreamBytes uint64
}

// baseBucketConfig is the object store of base snapshots: file storage,
// replicated like the stream, no expiry.
func baseBucketConfig(st *stream.Stream) jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{
		Bucket:      wire.BaseBucket(st.Name()),
		Description: "Tidemark base snapshot: new and lagging replicas bootstrap from it",
		Storage:     jetstream.FileStorage,
		Replicas:    st.Replicas(),
	}
}

// readBase returns the base snapshot stored for st, or nil when there is
// none (or it is of another stream).
func readBase(ctx context.Context, st *stream.Stream) (*BaseSnapshot, error) {
	obs, err := st.JetStream().ObjectStore(ctx, wire.BaseBucket(st.Name()))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("base snapshot bucket: %w", err)
	}
	info, err := obs.GetInfo(ctx, wire.BaseObject)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("base snapshot: %w", err)
	}
	b, err := baseOf(info)
	if err != nil || b.Stream != st.ID() {
		return nil, err
	}
	return b, nil
}

// baseOf reads a base snapshot's description from its object metadata.
func baseOf(info *jetstream.ObjectInfo) (*BaseSnapshot, error) {
	applied, created, err := wire.BaseMeta(info.Metadata)
	if err != nil {
		return nil, fmt.Errorf("base snapshot: %w", err)
	}
	return &BaseSnapshot{Applied: applied, Stream: info.Metadata[wire.MetaStream], Replica: info.Metadata[wire.MetaReplica],
		Bytes: info.Size, Created: created}, nil
}

// compactor is a replica's compactor; see Compaction.
type compactor struct {
	r   *Replica
	cfg Compaction
	log zerolog.Logger

	mu     sync.Mutex // guards heard and status
	heard  map[string]heardStatus
	status CompactStatus
	since  time.Time // when the base snapshot's age counts from without one
}

type heardStatus struct {
	ad   wire.ReplicaStatus
	seen time.Time
}

// CompactStatus returns what the replica's compactor did last; the zero
// value when it runs none.
func (r *Replica) CompactStatus() CompactStatus {
	if r.compact == nil {
		return CompactStatus{}
	}
	r.compact.mu.Lock()
	defer r.compact.mu.Unlock()
	st := r.compact.status
	if st.Base != nil {
		b := *st.Base
		st.Base = &b
	}
	return st
}

// run listens to the replicas' statuses and compacts every Interval until
// ctx ends.
func (c *compactor) run(ctx context.Context) error {
	sub, err := c.r.cfg.Conn.Subscribe(c.r.cfg.Subjects.StatusAll(), func(m *nats.Msg) {
		ad, err := wire.DecodeStatus(m.Data)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.heard[ad.Replica] = heardStatus{ad: ad, seen: time.Now()}
		c.mu.Unlock()
	})
	if err != nil {
		c.log.Error().Err(err).Msg("compactor: listen to replica statuses; not compacting")
		return nil
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.r.repl.WaitReady(ctx); err != nil {
		return nil
	}
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := c.once(ctx)
		switch {
		case err == nil:
			failing = false
		case ctx.Err() != nil:
			return nil
		case !failing: // once per run of failures
			failing = true
			c.log.Warn().Err(err).Msg("compaction failed; trying again")
		default:
			c.log.Debug().Err(err).Msg("compaction failed")
		}
	}
}

// live returns the replicas of the stream heard within liveAfter, this one
// included.
func (c *compactor) live() []wire.ReplicaStatus {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []wire.ReplicaStatus
	for id, h := range c.heard {
		if now.Sub(h.seen) > liveAfter {
			delete(c.heard, id)
			continue
		}
		if h.ad.Stream == c.r.cfg.Stream.ID() && id != c.r.cfg.ID {
			out = append(out, h.ad)
		}
	}
	out = append(out, wire.ReplicaStatus{Replica: c.r.cfg.ID, Stream: c.r.cfg.Stream.ID(), Applied: c.r.Applied(), Ready: c.r.Ready() == nil})
	sort.Slice(out, func(i, j int) bool { return out[i].Replica < out[j].Replica })
	return out
}

// leads reports whether this replica is the ready one with the lowest id
// among the live ones.
func leads(self string, live []wire.ReplicaStatus) bool {
	for _, ad := range live {
		if ad.Ready {
			return ad.Replica == self
		}
	}
	return false
}

// once snapshots and purges as the schedule says, if this replica leads.
func (c *compactor) once(ctx context.Context) error {
	live := c.live()
	lead := c.r.Ready() == nil && leads(c.r.cfg.ID, live)
	c.mu.Lock()
	c.status.Leader = lead
	c.mu.Unlock()
	if !lead {
		return nil
	}
	st := c.r.cfg.Stream
	base, err := readBase(ctx, st)
	if err != nil {
		return err
	}
	applied := c.r.Applied()
	since := c.since
	if base != nil {
		since = base.Created
	}
	var floor uint64
	if base != nil {
		floor = base.Applied
	}
	due := applied > floor && (applied-floor >= uint64(c.cfg.SnapshotMessages) || time.Since(since) >= c.cfg.SnapshotAge)
	if due {
		if base, err = c.storeBase(ctx, base); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.status.Base = base
	c.mu.Unlock()
	if base == nil {
		return nil
	}
	return c.purge(ctx, base, live)
}

// storeBase stores a base snapshot of this replica's state in place of
// old, once it is complete, and returns it.
func (c *compactor) storeBase(ctx context.Context, old *BaseSnapshot) (*BaseSnapshot, error) {
	start := time.Now()
	f, applied, err := c.r.snapshotFile(ctx)
	if err != nil {
		return old, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if old != nil && applied <= old.Applied {
		return old, nil // another compactor stored a newer one meanwhile
	}
	st := c.r.cfg.Stream
	obs, err := st.JetStream().CreateOrUpdateObjectStore(ctx, baseBucketConfig(st))
	if err != nil {
		return old, fmt.Errorf("base snapshot bucket: %w", err)
	}
	now := time.Now().UTC()
	// Put writes the new object's chunks first and replaces the old one
	// only once they are all stored: a reader always finds a whole one.
	info, err := obs.Put(ctx, jetstream.ObjectMeta{
		Name:        wire.BaseObject,
		Description: fmt.Sprintf("base snapshot of replica %s at sequence %d", c.r.cfg.ID, applied),
		Metadata: map[string]string{
			wire.MetaStream:  st.ID(),
			wire.MetaApplied: strconv.FormatUint(applied, 10),
			wire.MetaReplica: c.r.cfg.ID,
			wire.MetaCreated: now.Format(time.RFC3339Nano),
		},
	}, f)
	if err != nil {
		return old, fmt.Errorf("store base snapshot: %w", err)
	}
	b, err := baseOf(info)
	if err != nil {
		return old, err
	}
	c.log.Info().Uint64("applied", applied).Uint64("bytes", info.Size).
		Str("took", time.Since(start).Round(time.Millisecond).String()).Msg("base snapshot stored")
	return b, nil
}

// purge purges the stream below the purge point, when that is above where
// the stream starts.
func (c *compactor) purge(ctx context.Context, base *BaseSnapshot, live []wire.ReplicaStatus) error {
	st := c.r.cfg.Stream
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	p := base.Applied
	for _, ad := range live {
		// A replica already behind where the stream starts bootstraps
		// anyway; the others resume from their applied + 1, and history
		// verification reads the message at their applied.
		if ad.Applied+1 >= first {
			p = min(p, max(ad.Applied, 1))
		}
	}
	if w := uint64(c.cfg.WindowMessages); last+1 > w {
		p = min(p, last+1-w)
	} else {
		p = 0
	}
	if info.Config.Duplicates > 0 && p > first {
		d, err := firstSince(ctx, st, first, p, time.Now().Add(-info.Config.Duplicates))
		if err != nil {
			return err
		}
		p = min(p, d)
	}
	c.mu.Lock()
	c.status.Point = max(c.status.Point, first)
	c.status.StreamFirst, c.status.StreamMessages, c.status.StreamBytes = first, info.State.Msgs, info.State.Bytes
	c.mu.Unlock()
	if p <= first {
		return nil
	}
	if err := st.Handle().Purge(ctx, jetstream.WithPurgeSequence(p)); err != nil {
		return fmt.Errorf("purge below %d: %w", p, err)
	}
	// What the purge removed, as far as the writes since the first look
	// let tell.
	var resp, bytes uint64
	newFirst := p
	if after, err := st.Info(ctx); err == nil {
		// Messages stored since the first look count at the mean size.
		added := after.State.LastSeq - min(last, after.State.LastSeq)
		var mean uint64
		if info.State.Msgs > 0 {
			mean = info.State.Bytes / info.State.Msgs
		}
		if n := info.State.Msgs + added; n > after.State.Msgs {
			resp = n - after.State.Msgs
		}
		if b := info.State.Bytes + added*mean; b > after.State.Bytes {
			bytes = b - after.State.Bytes
		}
		newFirst = after.State.FirstSeq
	}
	c.mu.Lock()
	c.status.Point = max(c.status.Point, p)
	c.status.StreamFirst, c.status.StreamBytes = newFirst, c.status.StreamBytes-min(c.status.StreamBytes, bytes)
	c.status.StreamMessages -= min(c.status.StreamMessages, resp)
	c.status.Compactions++
	c.status.Removed += resp
	c.status.RemovedBytes += bytes
	c.mu.Unlock()
	c.log.Info().Uint64("messages", resp).Uint64("bytes", bytes).Uint64("first", newFirst).
		Uint64("base", base.Applied).Uint64("last", last).Msg("compacted")
	return nil
}

// firstSince returns the lowest sequence in [lo, hi] whose message the
// stream stored at or after t (hi when every message before hi is older):
// JetStream's timestamps grow with the sequence, so a binary search finds
// it in a few direct gets.
func firstSince(ctx context.Context, st *stream.Stream, lo, hi uint64, t time.Time) (uint64, error) {
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := st.Handle().GetMsg(ctx, mid, jetstream.WithGetMsgSubject(st.Subject()+".>"))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return lo, nil // purged meanwhile: keep everything from lo
		case err != nil:
			return 0, fmt.Errorf("find the duplicate window's start: %w", err)
		}
		if !m.Time.Before(t) {
			hi = mid
		} else {
			lo = max(mid, m.Sequence) + 1
		}
	}
	return hi, nil
}
