package replicator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
)

// Damaged Badger files show in three ways: a checksum mismatch (Badger
// verifies every table block and value it reads, see badgerOptions), a
// panic inside Badger while it decodes a block it trusted, and a table
// that fails to open. Every call into Badger on a read or apply path runs
// under guard, which turns a panic into an error that wraps ErrCorrupt, and
// storeFailed classifies what Badger returns. A corrupt store stops serving
// at once and the apply loop rebuilds it (reset.go); Open moves a store
// that does not open aside and starts empty. Badger's own background
// goroutines (compaction, memtable flushes) are beyond reach: a panic there
// ends the process, and the next Open finds the damage.

// Damage that appears while the replica runs is the hard case: Badger v4
// drops a block's read error in point lookups and iterators (a failing
// block reads as holding no keys), so such a block is answered as missing
// keys rather than as an error. scrub verifies every table's blocks every
// Config.ScrubInterval and turns what it finds into ErrCorrupt; blocks in
// Badger's cache are correct copies and keep being served from it.

// guard recovers a panic inside Badger into *err, as ErrCorrupt.
func guard(what string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%w: %s: badger panicked: %v", ErrCorrupt, what, p)
	}
}

// classify wraps err in ErrCorrupt when Badger reports damaged data, and in
// ErrDiskFull when the file system is full; other errors pass unchanged.
func classify(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrCorrupt), errors.Is(err, ErrDiskFull):
		return err
	case errors.Is(err, y.ErrChecksumMismatch):
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return err
}

// storeFailed classifies err from a read or an apply and, when it means
// the store is damaged or full, stops serving and tells the apply loop.
func (r *Replicator) storeFailed(err error) error {
	err = classify(err)
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrDiskFull) {
		if r.hold(err) {
			r.log.Error().Err(err).Uint64("applied", r.Applied()).Msg("replica store failed; not serving")
		}
		select {
		case r.corruptCh <- err:
		default: // the apply loop has been told already
		}
	}
	return err
}

// openFailedCorrupt reports whether badger.Open's err means the files are
// damaged, rather than held by another process or not accessible.
func openFailedCorrupt(err error) bool {
	switch {
	case errors.Is(err, ErrCorrupt), errors.Is(err, y.ErrChecksumMismatch):
		return true
	case errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.EWOULDBLOCK),
		errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EROFS),
		errors.Is(err, syscall.EIO), errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENOMEM),
		errors.Is(err, badger.ErrInvalidRequest):
		return false
	}
	return true
}

// openBadger opens the replica's directory, with panics as ErrCorrupt. It
// verifies every table first (verifyTables).
func (r *Replicator) openBadger() (db *badger.DB, err error) {
	opts := r.badgerOptions()
	if err := verifyTables(r.cfg.Dir, opts); err != nil {
		return nil, err
	}
	defer guard("open", &err)
	return badger.Open(opts)
}

// verifyTables checks the checksums of every table file in dir. Badger
// could check them itself when it opens them (options.OnTableRead), but it
// does so on goroutines of its own, where a table damaged in its index
// makes it panic (the process dies: no recover reaches there), and it
// opens the database without a table whose checksum fails, serving what
// that table held as missing. Here a damaged table is an error; Badger
// then checks every block it reads (badgerOptions).
func verifyTables(dir string, opts badger.Options) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := verifyTable(f, opts); err != nil {
			return fmt.Errorf("%w: table %s: %w", ErrCorrupt, filepath.Base(f), err)
		}
	}
	return nil
}

func verifyTable(path string, opts badger.Options) (err error) {
	// A damaged index can send Badger's decoder to an address outside the
	// mapping: a fault that, on this goroutine, panics instead of ending
	// the process.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer guard("verify table", &err)
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	t, err := table.OpenTable(mf, table.Options{
		ReadOnly:           true,
		ChkMode:            options.OnTableRead,
		Compression:        opts.Compression,
		BlockSize:          opts.BlockSize,
		BloomFalsePositive: opts.BloomFalsePositive,
		TableSize:          uint64(opts.BaseTableSize),
	})
	if err != nil {
		return err // OpenTable unmapped the file
	}
	return t.MmapFile.Close(-1)
}

// closeBadger closes db, with panics as ErrCorrupt.
func closeBadger(db *badger.DB) (err error) {
	defer guard("close", &err)
	return db.Close()
}

// scrub verifies the checksums of every table of db every
// Config.ScrubInterval, and reports damage as ErrCorrupt (storeFailed).
func (r *Replicator) scrub(ctx context.Context, db *badger.DB) {
	every(ctx, r.cfg.ScrubInterval, func() bool {
		if err := verifyChecksums(db); err != nil {
			_ = r.storeFailed(fmt.Errorf("%w: %w", ErrCorrupt, err))
			return false
		}
		return true
	})
}

func verifyChecksums(db *badger.DB) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer guard("verify checksums", &err)
	return db.VerifyChecksum()
}
