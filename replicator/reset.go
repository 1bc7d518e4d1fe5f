package replicator

import (
	"github.com/tidemark/tidemark/internal/backoff"

	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go/jetstream"
)

// Reset is how a replica recovers on its own from a state it must not
// serve: a history the stream no longer holds (ErrDiverged, ErrAhead) or
// damaged files (ErrCorrupt). It stops serving with the reason
// (ErrResetting), discards the local state and starts empty; Run then
// applies the stream from its first sequence when the stream holds the
// whole history, or restores a snapshot of another replica (bootstrap.go)
// when it does not, and serves again once it has caught up. Without a
// Bootstrapper and with a stream that no longer starts at 1, the replica
// stays stopped and says why. Discarded data that may be damaged is moved
// aside, never deleted: the directory's entries go to <dir>.corrupt-<time>
// (or, when that cannot be created next to it, a directory of that name
// inside it, which Badger ignores).

// corruptPrefix names a directory inside the replica's that holds the
// files of a corrupt store moved aside.
const corruptPrefix = ".corrupt-"

// resettable reports whether err from run means the state must be rebuilt.
func resettable(err error) bool {
	return errors.Is(err, ErrDiverged) || errors.Is(err, ErrAhead) || errors.Is(err, ErrCorrupt)
}

// reset discards the state after cause and returns the new, empty database.
func (r *Replicator) reset(ctx context.Context, cause error) (*badger.DB, error) {
	r.hold(fmt.Errorf("%w: %w", ErrResetting, cause))
	r.log.Error().Err(cause).Uint64("applied", r.Applied()).Msg("replica state must not be served; not serving; discarding it and rebuilding")
	info, err := r.streamBack(ctx)
	if err != nil {
		return nil, err
	}
	// A stream deleted and recreated has a new identity: the handle takes
	// it on (tokens of the old stream are refused from now on), and the
	// rebuilt state is claimed for it.
	if err := r.cfg.Stream.Refresh(ctx); err != nil {
		return nil, err
	}
	if first := info.State.FirstSeq; first > 1 && info.State.LastSeq > 0 && r.cfg.Bootstrap == nil {
		return nil, fmt.Errorf("%w; cannot rebuild: the stream starts at %d and bootstrap from a snapshot is off", cause, first)
	}
	db, err := r.discard(errors.Is(cause, ErrCorrupt))
	r.drainFailures()
	if err != nil {
		return nil, fmt.Errorf("%w; rebuild: %w", cause, err)
	}
	r.log.Warn().Uint64("first", info.State.FirstSeq).Uint64("last", info.State.LastSeq).Msg("local state discarded; rebuilding from the stream")
	return db, nil
}

// discard closes the database, removes its files (or moves them aside,
// when they may be damaged), opens an empty one in their place and claims
// it for the stream.
func (r *Replicator) discard(aside bool) (*badger.DB, error) {
	r.dbMu.Lock()
	defer r.dbMu.Unlock()
	if r.db != nil {
		if err := closeBadger(r.db); err != nil {
			r.log.Warn().Err(err).Msg("close badger before discarding it")
		}
		r.db = nil
	}
	r.cache.reset()
	if err := r.clearDir(aside); err != nil {
		return nil, err
	}
	db, err := r.openBadger()
	if err != nil {
		return nil, fmt.Errorf("open badger %s: %w", r.cfg.Dir, err)
	}
	id := r.cfg.Stream.ID()
	if err := writeIdentity(db, id); err != nil {
		_ = closeBadger(db)
		return nil, fmt.Errorf("badger %s: write stream id: %w", r.cfg.Dir, err)
	}
	r.streamID.Store(&id)
	r.db = db
	r.setHead(head{}, true)
	r.applied.Store(0)
	r.feed.reset(0)
	return db, nil
}

// clearDir empties the replica's directory of Badger's files, moving them
// aside when aside is set.
func (r *Replicator) clearDir(aside bool) error {
	dir := r.cfg.Dir
	keep := func(name string) bool { return !ours(name) }
	if !aside {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if keep(e.Name()) {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
		}
		syncDir(dir)
		return nil
	}
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	to := filepath.Clean(dir) + corruptPrefix + stamp
	if err := os.Mkdir(to, 0o755); err != nil {
		to = filepath.Join(dir, corruptPrefix+stamp)
		if err := os.Mkdir(to, 0o755); err != nil {
			return fmt.Errorf("move the corrupt store aside: %w", err)
		}
	}
	if err := moveEntries(dir, to, keep); err != nil {
		if !errors.Is(err, os.ErrExist) {
			// A rename across file systems (dir is a mount point): keep
			// the files inside the directory instead.
			inside := filepath.Join(dir, corruptPrefix+stamp)
			if merr := os.Mkdir(inside, 0o755); merr == nil {
				err = moveEntries(dir, inside, keep)
				to = inside
			}
		}
		if err != nil {
			return fmt.Errorf("move the corrupt store aside to %s: %w", to, err)
		}
	}
	syncDir(dir)
	syncDir(filepath.Dir(to))
	r.log.Error().Str("dir", dir).Str("moved_to", to).
		Msg("CORRUPT REPLICA STORE MOVED ASIDE: the replica rebuilds from the stream; inspect or remove the moved files")
	return nil
}

// streamBack returns the stream's info, waiting (with backoff, and saying
// so once) while the stream does not exist: a deleted stream is usually
// created again by a writer, and the replica then rebuilds from it.
func (r *Replicator) streamBack(ctx context.Context) (*jetstream.StreamInfo, error) {
	b := resetBackoff()
	for logged := false; ; {
		info, err := r.streamInfo(ctx)
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return info, err
		}
		if !logged {
			r.log.Warn().Str("stream", r.cfg.Stream.Name()).Msg("the stream does not exist; waiting for it to be created again")
			logged = true
		}
		if err := b.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

// waitSpace waits, checking every DefaultSpaceRecheck, until the replica's
// file system has room to apply again, or ctx ends.
func (r *Replicator) waitSpace(ctx context.Context) error {
	t := time.NewTicker(DefaultSpaceRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if r.checkSpace(true) == nil {
			r.drainFailures()
			r.log.Info().Msg("disk space available again; resuming")
			return nil
		}
	}
}

// resetBackoff spaces out resets that keep failing (a snapshot of the same
// wrong history, say).
func resetBackoff() backoff.Backoff {
	return backoff.Backoff{Min: DefaultBootstrapBackoffMin, Max: DefaultBootstrapBackoffMax}
}

// drainFailures forgets a store failure that a read reported for the state
// just replaced or recovered (storeFailed).
func (r *Replicator) drainFailures() {
	select {
	case <-r.corruptCh:
	default:
	}
}
