package replicator

import (
	"github.com/tidemark/tidemark/internal/backoff"

	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go/jetstream"
)

// Bootstrap defaults.
const (
	// DefaultBootstrapBackoffMin and DefaultBootstrapBackoffMax bound the
	// wait between two bootstrap attempts.
	DefaultBootstrapBackoffMin = time.Second
	DefaultBootstrapBackoffMax = 30 * time.Second
)

// A Bootstrapper provides snapshots of other replicas of the same stream
// (Config.Bootstrap), for a replicator that found a gap: the stream no
// longer holds the next sequence it needs.
type Bootstrapper interface {
	// Bootstrap finds a snapshot whose applied sequence is at least need,
	// hands its bytes to restore (once) and returns restore's error, if
	// any. restore reads to the end and fails with ErrBadSnapshot if the
	// snapshot is corrupt or of another stream, or if it is older than
	// need. The replicator calls Bootstrap again, after a backoff, when it
	// fails.
	Bootstrap(ctx context.Context, need uint64, restore func(io.Reader) (applied uint64, err error)) error
}

// runBootstrapping is run, bootstrapping from a snapshot (Config.Bootstrap)
// whenever run stops at a gap, and going on from the snapshot's applied
// sequence. Without a Bootstrapper it is run.
//
// It also recovers from what must not be served: after ErrDiverged,
// ErrAhead or ErrCorrupt it discards the state and goes on from empty
// (reset.go), and after ErrDiskFull it waits for space and goes on.
func (r *Replicator) runBootstrapping(ctx context.Context, db *badger.DB) error {
	b := resetBackoff()
	resets := 0
	for {
		err := r.run(ctx, db)
		switch {
		case err == nil || ctx.Err() != nil:
			return nil
		case resettable(err):
			if resets++; resets > 1 {
				if err := b.Wait(ctx); err != nil {
					return nil
				}
			}
			if db, err = r.reset(ctx, err); err != nil {
				return nilOnDone(ctx, err)
			}
		case errors.Is(err, ErrDiskFull):
			if err := r.waitSpace(ctx); err != nil {
				return nil
			}
		case r.cfg.Bootstrap != nil && errors.Is(err, ErrGap):
			if db, err = r.bootstrap(ctx, err); err != nil {
				return nilOnDone(ctx, err)
			}
		default:
			return err
		}
	}
}

// Bootstrapping returns an error that wraps ErrBootstrapping and says how
// far the replicator has got while it restores a snapshot, with the bytes
// of the snapshot received so far ("received 12.5 MiB of 40.0 MiB of the
// snapshot") while it downloads one, or nil.
func (r *Replicator) Bootstrapping() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.boot == nil || r.dl == nil {
		return r.boot
	}
	detail := strings.TrimPrefix(r.boot.Error(), ErrBootstrapping.Error()+": ")
	return fmt.Errorf("%w: received %s of the snapshot; %s", ErrBootstrapping, r.dl.Progress(), detail)
}

func (r *Replicator) setDownload(d *download) {
	r.mu.Lock()
	r.dl = d
	r.mu.Unlock()
}

func (r *Replicator) setBootstrapping(err error) {
	r.mu.Lock()
	r.boot = err
	r.mu.Unlock()
}

// errInstall marks a failure to put a restored directory in place: the
// replica's directory is in an unknown state, so Run stops.
var errInstall = errors.New("install snapshot")

// bootstrap asks the Bootstrapper for a snapshot until one is restored and
// installed, or ctx ends, and returns the new database. Reads keep being
// served meanwhile from the old state, which has no hole (it stops at
// applied); waiters are woken once the snapshot is in place.
func (r *Replicator) bootstrap(ctx context.Context, gap error) (*badger.DB, error) {
	start := time.Now()
	from := r.Applied()
	r.log.Warn().Err(gap).Uint64("applied", from).Msg("bootstrapping from a snapshot")
	r.setBootstrapping(fmt.Errorf("%w: applied %d, the stream no longer holds %d", ErrBootstrapping, from, from+1))
	defer r.setBootstrapping(nil)
	r.removeLeftovers()
	b := backoff.Backoff{Min: DefaultBootstrapBackoffMin, Max: DefaultBootstrapBackoffMax}
	var last error
	for attempt := 1; ; attempt++ {
		applied := r.Applied()
		need, err := r.bootstrapNeed(ctx, applied)
		if err == nil && need <= applied {
			// The stream holds applied + 1 after all: apply from it.
			r.log.Info().Uint64("applied", applied).Msg("no gap found; not bootstrapping")
			r.dbMu.RLock()
			db := r.db
			r.dbMu.RUnlock()
			return db, b.Wait(ctx)
		}
		if err == nil {
			status := fmt.Errorf("%w: applied %d, the stream now starts after %d; attempt %d", ErrBootstrapping, applied, need, attempt)
			if last != nil {
				status = fmt.Errorf("%w (last attempt: %v)", status, last)
			}
			r.setBootstrapping(status)
			var db *badger.DB
			if db, err = r.bootstrapOnce(ctx, need); err == nil {
				r.log.Info().Uint64("from", from).Uint64("applied", r.Applied()).Str("took", time.Since(start).Round(time.Millisecond).String()).
					Int("attempts", attempt).Msg("bootstrapped from a snapshot; applying the stream from there")
				return db, nil
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, errInstall) {
			return nil, err
		}
		last = err
		r.log.Warn().Err(err).Int("attempt", attempt).Msg("bootstrap failed; retrying")
		if err := b.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

// bootstrapNeed returns the lowest applied sequence from which the stream
// holds everything that follows: one before the first message it still has
// after applied, or its last sequence when it has none.
func (r *Replicator) bootstrapNeed(ctx context.Context, applied uint64) (uint64, error) {
	msg, err := r.cfg.Stream.Handle().GetMsg(ctx, applied+1, jetstream.WithGetMsgSubject(r.cfg.Stream.Subject()+".>"))
	if err == nil {
		return msg.Sequence - 1, nil
	}
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, fmt.Errorf("find the stream's next message after %d: %w", applied, err)
	}
	info, err := r.cfg.Stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// bootstrapOnce restores one snapshot into a directory inside the
// replica's and installs it in place of the replica's database.
func (r *Replicator) bootstrapOnce(ctx context.Context, need uint64) (*badger.DB, error) {
	tmp, err := r.workDir(restorePrefix)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // gone already once installed
	var restored uint64
	err = r.cfg.Bootstrap.Bootstrap(ctx, need, func(rd io.Reader) (uint64, error) {
		if restored != 0 {
			return 0, errors.New("restore called twice")
		}
		dl := newDownload(rd, r.log)
		r.setDownload(dl)
		defer r.setDownload(nil)
		applied, err := restore(tmp, dl, r.cfg.Stream.ID(), r.log)
		if err != nil {
			return 0, err
		}
		r.log.Info().Str("received", dl.Progress()).Int64("received_bytes", dl.got.Load()).
			Str("took", time.Since(dl.start).Round(time.Millisecond).String()).Uint64("applied", applied).Msg("snapshot received and restored")
		if applied < need || applied <= r.Applied() {
			_ = os.RemoveAll(tmp)
			return 0, fmt.Errorf("%w: it holds sequences up to %d, the stream now starts after %d", ErrBadSnapshot, applied, need)
		}
		restored = applied
		return applied, nil
	})
	if err != nil {
		return nil, err
	}
	if restored == 0 {
		return nil, errors.New("bootstrapper returned without restoring a snapshot")
	}
	return r.install(tmp)
}

// Names inside the replica's directory that are not Badger's: Badger reads
// only the files it knows, so they live next to its files, on the same
// file system even when the directory is a mount point.
const (
	// restorePrefix names the directories snapshots are restored into.
	restorePrefix = ".restore-"
	// replacedPrefix names the directory the replaced files move to.
	replacedPrefix = ".replaced-"
	// installMarker exists while install moves files: a directory that
	// holds it is in an unknown state.
	installMarker = ".installing"
	// SnapshotFilePrefix names the files a replica may write snapshots to
	// inside its directory before it sends them on; install leaves them.
	SnapshotFilePrefix = ".snapshot-"
)

// ours reports whether name, in the replica's directory, is not Badger's.
func ours(name string) bool {
	return strings.HasPrefix(name, restorePrefix) || strings.HasPrefix(name, replacedPrefix) ||
		strings.HasPrefix(name, SnapshotFilePrefix) || strings.HasPrefix(name, corruptPrefix) || name == installMarker
}

// install closes the database, replaces its files with the restored
// directory tmp's, opens it and wakes the waiters it satisfies. A marker
// file exists while files move: Open finds it after a crash midway and
// empties the directory, so that the replica bootstraps again rather than
// open a mix of two databases.
func (r *Replicator) install(tmp string) (*badger.DB, error) {
	r.dbMu.Lock()
	defer r.dbMu.Unlock()
	if r.db != nil {
		if err := r.db.Close(); err != nil {
			r.log.Warn().Err(err).Msg("close badger before installing a snapshot")
		}
		r.db = nil
	}
	dir := r.cfg.Dir
	marker := filepath.Join(dir, installMarker)
	if err := writeMarker(marker); err != nil {
		if db, oerr := badger.Open(r.badgerOptions()); oerr == nil {
			r.db = db // the old state, untouched
		}
		return nil, fmt.Errorf("%w: %w", errInstall, err)
	}
	old, err := r.workDir(replacedPrefix)
	if err == nil {
		err = moveEntries(dir, old, func(name string) bool { return !ours(name) })
	}
	if err == nil {
		err = moveEntries(tmp, dir, func(string) bool { return true })
	}
	if err == nil {
		syncDir(dir)
		err = os.Remove(marker)
		syncDir(dir)
	}
	if err != nil {
		// The directory is in an unknown state; Open empties it.
		return nil, fmt.Errorf("%w: %w; restart the replica to bootstrap again", errInstall, err)
	}
	for _, d := range []string{old, tmp} {
		if err := os.RemoveAll(d); err != nil {
			r.log.Warn().Err(err).Str("dir", d).Msg("remove what a snapshot install left")
		}
	}
	db, applied, h, known, err := r.openChecked()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInstall, err)
	}
	r.db = db
	r.cache.reset()
	// The snapshot's head is what Run verifies against the stream before
	// it serves the restored state (history.go).
	r.setHead(h, known)
	r.cfg.Stream.ObserveLast(applied)
	r.feed.reset(applied)
	r.advance(applied)
	return db, nil
}

// recoverInstall empties the replica's directory if an install was
// interrupted, and removes what an interrupted bootstrap left. Open calls it
// before it opens Badger.
func (r *Replicator) recoverInstall() error {
	dir := r.cfg.Dir
	marker := filepath.Join(dir, installMarker)
	if _, err := os.Stat(marker); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	r.log.Warn().Str("dir", dir).Msg("a snapshot install was interrupted; emptying the directory to bootstrap again")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != installMarker {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("empty %s after an interrupted install: %w", dir, err)
			}
		}
	}
	syncDir(dir)
	if err := os.Remove(marker); err != nil {
		return fmt.Errorf("empty %s after an interrupted install: %w", dir, err)
	}
	syncDir(dir)
	return nil
}

func writeMarker(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

// moveEntries renames the entries of from that keep selects into to.
func moveEntries(from, to string, keep func(name string) bool) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if keep(e.Name()) {
			if err := os.Rename(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// workDir creates a new directory inside the replica's, named by prefix.
func (r *Replicator) workDir(prefix string) (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	dir := filepath.Join(r.cfg.Dir, prefix+hex.EncodeToString(b[:]))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	return dir, nil
}

// removeLeftovers removes the directories an interrupted bootstrap left in
// the replica's directory.
func (r *Replicator) removeLeftovers() {
	entries, err := os.ReadDir(r.cfg.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if name := e.Name(); e.IsDir() && (strings.HasPrefix(name, restorePrefix) || strings.HasPrefix(name, replacedPrefix)) {
			path := filepath.Join(r.cfg.Dir, name)
			if err := os.RemoveAll(path); err != nil {
				r.log.Warn().Err(err).Str("dir", path).Msg("remove what an interrupted bootstrap left")
			}
		}
	}
}

// syncDir makes renames in dir durable, where the platform allows.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
}
