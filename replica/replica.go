// Package replica puts a replicator and a reader together over one Badger
// directory: what `tidemark replica` runs, and what a Go service embeds to
// get a local read model with read-your-writes against tokens from anywhere.
//
//	r := replica.New(replica.Config{ID: "orders-1", Dir: "./orders-replica", Stream: st})
//	if err := r.Open(); err != nil { ... }
//	defer r.Close()
//	go r.Run(ctx)
//	res, err := r.Get(ctx, api.GetRequest{Key: "order/42", ReadSpec: api.ReadSpec{Token: tok}})
package replica

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/reader"
	"github.com/tidemark/tidemark/replicator"
	"github.com/tidemark/tidemark/stream"
)

// Config configures a Replica.
type Config struct {
	// ID names the replica; it becomes a subject token of its own endpoints.
	ID string
	// Dir is the Badger directory.
	Dir string
	// SyncWrites makes Badger fsync every applied batch; no guarantee
	// needs it (replicator.Config.SyncWrites).
	SyncWrites bool
	// Stream is the stream to replicate.
	Stream *stream.Stream
	// Conn, when set, serves the replica's reads over NATS as a micro
	// service; an embedded replica that only reads locally leaves it nil.
	Conn *nats.Conn
	// Subjects are the service subjects (when Conn is set).
	Subjects wire.Subjects
	// DefaultWait and MaxWait bound how long a read waits for its token.
	DefaultWait, MaxWait time.Duration
	// Logger receives the replica's log lines.
	Logger zerolog.Logger
	// CacheBytes bounds the cache of current records point reads are served
	// from; 0 means replicator.DefaultCacheBytes, negative turns it off.
	CacheBytes int64
	// WatchWindow and WatchWindowBytes bound the recent changes kept for
	// watches (replicator.Config.WatchWindow); 0 means the defaults.
	WatchWindow      int
	WatchWindowBytes int64
	// WatchClientTimeout is how long a watch is kept whose watcher sends
	// nothing; 0 means reader.DefaultWatchClientTimeout. WatchUnacked is the
	// most events sent beyond what a watcher acknowledged; 0 means
	// reader.DefaultWatchUnacked.
	WatchClientTimeout time.Duration
	WatchUnacked       int
	// Bootstrap lets a replica that finds the stream no longer holds what
	// it needs (limits, a purge) restore a snapshot of a ready replica,
	// carried by a JetStream object store, and go on from there; without
	// it the replica stops with replicator.ErrGap. See bootstrap.go.
	Bootstrap bool
	// Compaction runs the compactor in this replica (compact.go; it needs
	// Conn).
	Compaction Compaction
	// TombstoneHorizon is how long, in stream time, a deleted key's
	// tombstone is kept (replicator.Config.TombstoneHorizon).
	TombstoneHorizon time.Duration
	// SweepInterval is how often tombstones and expired session records
	// are collected (replicator.Config.SweepInterval); 0 is the default.
	SweepInterval time.Duration
}

// Replica is a replicator and a reader over one Badger directory.
type Replica struct {
	cfg     Config
	repl    *replicator.Replicator
	rd      *reader.Reader
	compact *compactor                     // nil: compaction off
	svc     atomic.Pointer[reader.Service] // while Run serves over NATS
}

// New returns a replica; Open opens its directory.
func New(cfg Config) *Replica {
	// Snapshot bootstrap (bootstrap.go): a nil interface when off.
	var boot replicator.Bootstrapper
	if cfg.Bootstrap {
		boot = &fetcher{id: cfg.ID, st: cfg.Stream, subjects: cfg.Subjects, nc: cfg.Conn, log: cfg.Logger.With().Str("replica", cfg.ID).Logger()}
	}
	repl := replicator.New(replicator.Config{ID: cfg.ID, Dir: cfg.Dir, SyncWrites: cfg.SyncWrites, Stream: cfg.Stream, Logger: cfg.Logger, Bootstrap: boot,
		CacheBytes: cfg.CacheBytes, TombstoneHorizon: cfg.TombstoneHorizon, SweepInterval: cfg.SweepInterval,
		WatchWindow: cfg.WatchWindow, WatchWindowBytes: cfg.WatchWindowBytes})
	rd := reader.New(reader.Config{Replica: cfg.ID, Store: repl, Stream: cfg.Stream, DefaultWait: cfg.DefaultWait, MaxWait: cfg.MaxWait, Logger: cfg.Logger})
	r := &Replica{cfg: cfg, repl: repl, rd: rd}
	if cfg.Compaction.Enabled && cfg.Conn != nil {
		cc := cfg.Compaction
		cc.setDefaults()
		r.compact = &compactor{r: r, cfg: cc, log: cfg.Logger.With().Str("replica", cfg.ID).Logger(),
			heard: map[string]heardStatus{}, since: time.Now()}
	}
	return r
}

// Open validates the configuration and opens the Badger directory.
func (r *Replica) Open() error {
	if !api.ValidID(r.cfg.ID) {
		return fmt.Errorf("replica id %q: want 1 to 64 letters, digits, '-' or '_'", r.cfg.ID)
	}
	if err := r.repl.Open(); err != nil {
		return fmt.Errorf("replica %s: %w", r.cfg.ID, err)
	}
	return nil
}

// Run applies the stream and, when a connection is configured, serves
// reads over NATS, until ctx ends. A replica that stops applying (a gap in
// the stream, a foreign message) keeps running, serving nothing, so that
// its readiness says why; the error is logged.
func (r *Replica) Run(ctx context.Context) error {
	if r.cfg.Conn != nil {
		if err := r.checkIDFree(ctx); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := r.repl.Run(gctx)
		if err != nil && gctx.Err() == nil {
			r.cfg.Logger.Error().Err(err).Str("replica", r.cfg.ID).Msg("replica stopped applying; not serving")
		}
		return nil
	})
	if r.cfg.Conn != nil {
		svc := reader.NewService(r.cfg.Conn, r.cfg.Subjects, r.rd, r.cfg.Logger)
		svc.Ready = r.repl.WaitReady
		r.svc.Store(svc)
		if r.cfg.WatchClientTimeout > 0 {
			svc.WatchClientTimeout = r.cfg.WatchClientTimeout
		}
		if r.cfg.WatchUnacked > 0 {
			svc.WatchUnacked = r.cfg.WatchUnacked
		}
		g.Go(func() error { return svc.Run(gctx) })
		g.Go(func() error { return r.advertise(gctx) })
		g.Go(func() error { return r.serveSnapshots(gctx) }) // snapshots for bootstrapping replicas (bootstrap.go)
	}
	if r.compact != nil {
		g.Go(func() error { return r.compact.run(gctx) }) // compact.go
	}
	return g.Wait()
}

// idProbeTimeout bounds the wait for an answer to checkIDFree's probe.
const idProbeTimeout = 2 * time.Second

// checkIDFree makes sure that no other replica serves this replica's id:
// two replicas of one id would share subjects and metric labels, and reads
// pinned to the id would land on either. It sends a request on the id's
// own read subject: no responders means the id is free, and any answer
// means a live replica has it. No answer in time is let pass with a
// warning: it is what a subscription the server has not yet dropped looks
// like after this very replica's previous process was killed.
func (r *Replica) checkIDFree(ctx context.Context) error {
	subject := r.cfg.Subjects.ReplicaGet(r.cfg.ID)
	ctx, cancel := context.WithTimeout(ctx, idProbeTimeout)
	defer cancel()
	_, err := r.cfg.Conn.RequestWithContext(ctx, subject, nil)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil
	case err == nil:
		return fmt.Errorf("replica id %q is in use: another replica answers on %s; give each replica its own id (--id)", r.cfg.ID, subject)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		r.cfg.Logger.Warn().Str("replica", r.cfg.ID).Str("subject", subject).
			Msg("a process is subscribed to this replica's subject but does not answer (a previous run not yet dropped by the server, or a stopped duplicate); starting anyway")
		return nil
	default:
		return fmt.Errorf("replica %s: check that its id is free: %w", r.cfg.ID, err)
	}
}

// Watches returns how many watches the replica serves over NATS now.
func (r *Replica) Watches() int64 {
	if svc := r.svc.Load(); svc != nil {
		return svc.ActiveWatches()
	}
	return 0
}

// Close closes the Badger directory; call it after Run has returned.
func (r *Replica) Close() error { return r.repl.Close() }

// ID returns the replica's id.
func (r *Replica) ID() string { return r.cfg.ID }

// Get reads a key, waiting for the request's token.
func (r *Replica) Get(ctx context.Context, req api.GetRequest) (api.GetResult, error) {
	return r.rd.Get(ctx, req)
}

// Scan reads a page of keys by prefix, waiting for the request's token.
func (r *Replica) Scan(ctx context.Context, req api.ScanRequest) (api.ScanResult, error) {
	return r.rd.Scan(ctx, req)
}

// Applied returns the last applied stream sequence.
func (r *Replica) Applied() uint64 { return r.repl.Applied() }

// WaitReady waits until the replica has caught up with the stream as of
// its start.
func (r *Replica) WaitReady(ctx context.Context) error { return r.repl.WaitReady(ctx) }

// Ready reports nil when the replica serves, or why it does not.
func (r *Replica) Ready() error {
	if err := r.repl.Bootstrapping(); err != nil { // restoring a snapshot (bootstrap.go)
		return err
	}
	if err := r.repl.Err(); err != nil {
		return err
	}
	if !r.repl.Ready() {
		applied, target := r.repl.Applied(), r.repl.Target()
		if target == 0 {
			return fmt.Errorf("catching up: applied %d", applied)
		}
		return fmt.Errorf("catching up: applied %d of %d (%.1f%%)", applied, target, 100*float64(min(applied, target))/float64(target))
	}
	return nil
}

// Replicator returns the replicator, for its Stats and the Pause/Resume
// test hooks.
func (r *Replica) Replicator() *replicator.Replicator { return r.repl }
