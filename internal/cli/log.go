package cli

import (
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/config"
)

// NewLogger returns a zerolog logger: human-readable console output when
// console is set (unless the configuration says json), JSON otherwise.
func NewLogger(c config.LogConfig, console bool, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil || c.Level == "" {
		level = zerolog.InfoLevel
	}
	format := c.Format
	if format == "" {
		format = config.LogFormatJSON
		if console {
			format = config.LogFormatConsole
		}
	}
	if format == config.LogFormatConsole {
		// Colours only for a terminal: not in files, pipes or CI logs.
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: !isTerminal(w)}
	}
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// WarnUnknownEnv logs a warning for each TIDEMARK_* variable of environ
// that names no setting.
func WarnUnknownEnv(log zerolog.Logger, environ []string) {
	for _, key := range config.UnknownEnv(environ) {
		log.Warn().Str("variable", key).Msg("environment variable names no setting; ignored")
	}
}

// LogStopped logs that the command role has ended, and with what error.
func LogStopped(log zerolog.Logger, role string, err error) {
	ev := log.Info()
	if err != nil {
		ev = log.Error().Err(err)
	}
	ev.Str("role", role).Msg("stopped")
}
