package replicator

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Badger writes its write-ahead log (.mem files) and value log (.vlog
// files) through memory maps of files it creates sparse at twice their
// configured size, and builds tables the same way. On a full file system
// the kernel cannot back a page the first time it is written, and the
// process gets SIGBUS on whatever goroutine of Badger's touched it: no
// error is returned, nothing can recover it, and the replica crash-loops.
// So the apply loop never lets Badger get there: before it commits, it
// checks that the file system has room for the unallocated rest of those
// files plus DefaultSpaceReserve (a new memtable, its flush, a compaction
// step), and stops with ErrDiskFull (not serving, with the figures) when
// it does not, then waits for space and goes on. The check runs at most
// every DefaultSpaceCheckInterval: what one interval can write is far below
// the reserve. Badger's own compactions may still need more than the
// reserve on a store much larger than its memtables; the reserve cannot
// promise more than that.
const (
	// DefaultSpaceReserve is the free space, beyond what Badger's mapped
	// files still need, below which the replica stops applying.
	DefaultSpaceReserve = 4 * DefaultMemTableSize
	// DefaultSpaceCheckInterval is how often the apply loop checks free space.
	DefaultSpaceCheckInterval = 100 * time.Millisecond
	// DefaultSpaceRecheck is how often a replica stopped by ErrDiskFull
	// looks for space again.
	DefaultSpaceRecheck = time.Second
)

// checkSpace returns ErrDiskFull, and stops serving, when the replica's
// file system lacks the room to apply; now skips the rate limit.
func (r *Replicator) checkSpace(now bool) error {
	if !now && time.Since(r.spaceChecked) < DefaultSpaceCheckInterval {
		return nil
	}
	r.spaceChecked = time.Now()
	free, need, err := r.space()
	if err != nil {
		r.log.Debug().Err(err).Msg("check free space")
		return nil // no figure to act on; Badger's errors still count
	}
	if free >= need {
		return nil
	}
	err = fmt.Errorf("%w: %s has %d bytes free, the replica needs %d to apply safely (Badger's mapped files %d, reserve %d); free some space",
		ErrDiskFull, r.cfg.Dir, free, need, need-DefaultSpaceReserve, DefaultSpaceReserve)
	if r.hold(err) {
		r.log.Error().Err(err).Uint64("applied", r.Applied()).Msg("disk full; not serving")
	}
	return err
}

// space returns the free bytes of the replica's file system and the bytes
// it needs: the unallocated part of Badger's mapped files plus the reserve.
func (r *Replicator) space() (free, need uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(r.cfg.Dir, &st); err != nil {
		return 0, 0, err
	}
	free = st.Bavail * uint64(st.Bsize)
	entries, err := os.ReadDir(r.cfg.Dir)
	if err != nil {
		return 0, 0, err
	}
	need = DefaultSpaceReserve
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".mem") && !strings.HasSuffix(name, ".vlog") {
			continue
		}
		var fs syscall.Stat_t
		if syscall.Stat(filepath.Join(r.cfg.Dir, name), &fs) != nil {
			continue
		}
		if alloc := fs.Blocks * 512; fs.Size > alloc {
			need += uint64(fs.Size - alloc)
		}
	}
	return free, need, nil
}
