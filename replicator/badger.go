package replicator

import (
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/rs/zerolog"
)

// badgerOptions are modest settings, so that several replicas fit in one
// process: small memtables and caches, large values in the value log.
func (r *Replicator) badgerOptions() badger.Options {
	return badger.DefaultOptions(r.cfg.Dir).
		WithSyncWrites(r.cfg.SyncWrites).
		WithLogger(badgerLogger{r.log.With().Str("component", "badger").Logger()}).
		WithMemTableSize(DefaultMemTableSize).
		WithNumMemtables(DefaultNumMemTables).
		WithBlockCacheSize(DefaultBlockCacheSize).
		WithIndexCacheSize(DefaultIndexCacheSize).
		WithValueThreshold(DefaultValueThreshold).
		WithValueLogFileSize(DefaultValueLogFileSize).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		// A damaged file must never serve a wrong value: every table is
		// checked before Badger opens it (verifyTables), every block when
		// read, every value log entry when read (corrupt.go). See the
		// README for the cost.
		WithChecksumVerificationMode(options.OnBlockRead).
		WithVerifyValueChecksum(true).
		// The apply loop is the only writer: no conflicts to detect.
		WithDetectConflicts(false)
}

// badgerLogger routes Badger's log to zerolog: errors and warnings at their
// level, Badger's chatter at debug and trace.
type badgerLogger struct{ l zerolog.Logger }

func msg(format string, v []any) string { return strings.TrimSpace(fmt.Sprintf(format, v...)) }

func (b badgerLogger) Errorf(f string, v ...any)   { b.l.Error().Msg(msg(f, v)) }
func (b badgerLogger) Warningf(f string, v ...any) { b.l.Warn().Msg(msg(f, v)) }

func (b badgerLogger) Infof(f string, v ...any) {
	if e := b.l.Debug(); e.Enabled() {
		e.Msg(msg(f, v))
	}
}

func (b badgerLogger) Debugf(f string, v ...any) {
	if e := b.l.Trace(); e.Enabled() {
		e.Msg(msg(f, v))
	}
}
