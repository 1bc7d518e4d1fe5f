package replicator

import (
	"cmp"
	"fmt"
	"strings"
	"unicode/utf8"

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
		WithValueThreshold(cmp.Or(r.cfg.ValueThreshold, DefaultValueThreshold)).
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
// level, Badger's chatter at debug and trace. A message of several lines
// (Badger's level and table dumps) becomes one line, see msg.
type badgerLogger struct{ l zerolog.Logger }

// maxBadgerMessage bounds the length of one Badger message in the log, in
// bytes, before the note of how many lines it had.
const maxBadgerMessage = 512

// msg formats a Badger message as one line: its non-blank lines, trimmed,
// joined with " | ", cut at maxBadgerMessage bytes with a note saying how
// many lines the message had.
func msg(format string, v []any) string {
	text := strings.TrimSpace(fmt.Sprintf(format, v...))
	if !strings.ContainsAny(text, "\r\n") {
		return text
	}
	var lines []string
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	out := strings.Join(lines, " | ")
	if len(out) <= maxBadgerMessage {
		return out
	}
	cut := maxBadgerMessage
	for cut > 0 && !utf8.RuneStart(out[cut]) {
		cut--
	}
	return fmt.Sprintf("%s ... (cut; %d lines in all)", out[:cut], len(lines))
}

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
