package replicator

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/y"
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

// openBadger opens the replica's directory, with panics as ErrCorrupt.
func (r *Replicator) openBadger() (db *badger.DB, err error) {
	defer guard("open", &err)
	return badger.Open(r.badgerOptions())
}

// closeBadger closes db, with panics as ErrCorrupt.
func closeBadger(db *badger.DB) (err error) {
	defer guard("close", &err)
	return db.Close()
}
