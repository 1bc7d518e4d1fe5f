package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// errUsage reports a command line that could not be understood; the usage
// has been printed already.
var errUsage = errors.New("usage")

const usage = `Tidemark: session consistency over eventually consistent replicas.

Usage:
  tidemark dev       [flags]   whole pipeline in one process, embedded NATS (start here)
  tidemark gateway   [flags]   HTTP gateway, against a NATS server or cluster
  tidemark replica   [flags]   one replica (replicator + reader over its own Badger directory)
  tidemark writer    [flags]   the writer service
  tidemark bench     [flags]   measure Tidemark next to raw JetStream and NATS KV
  tidemark chaos     [flags]   fault campaign on real processes, checked against the session guarantees
  tidemark version             print the version
  tidemark health    URL       exit 0 if URL answers 2xx (container health checks)

Every command takes --config FILE (or TIDEMARK_CONFIG), TIDEMARK_* environment
variables and --set name=value; flags win over the environment, which wins over
the file. 'tidemark <command> -h' lists a command's flags.
`

type command struct {
	name string
	help string // one line: what the command does
	// examples are command lines `tidemark <command> -h` shows.
	examples []string
	flags    map[string]string // flag name -> config field
	run      func(ctx context.Context, cfg config.Config, env *cmdEnv) error
	// own, when set, declares flags of the command's own, beyond the
	// configuration fields.
	own func(fs *flag.FlagSet)
}

// cmdEnv is what a command gets besides its configuration.
type cmdEnv struct {
	stdout, stderr io.Writer
	log            zerolog.Logger
}

var commands = []command{
	{name: "dev", help: "run the whole pipeline in one process on an embedded NATS server", run: runDev, flags: map[string]string{
		"http": "gateway.http", "nats-listen": "dev.nats_listen", "data": "dev.data", "replicas": "dev.replicas", "durable": "dev.durable",
	}, examples: []string{
		"tidemark dev",
		"tidemark dev --replicas 3 --durable --data ./my-data --http 127.0.0.1:9090",
	}},
	{name: "gateway", help: "run the HTTP gateway", run: runGateway, flags: withNATS(map[string]string{
		"http": "gateway.http",
	}), examples: []string{
		"tidemark gateway --nats nats://127.0.0.1:4222 --http :8080",
		"tidemark gateway --nats nats://a:4222,nats://b:4222 --set gateway.access_log=true",
	}},
	{name: "replica", help: "run one replica", run: runReplica, flags: withNATS(map[string]string{
		"id": "replica.id", "data": "replica.data", "http": "replica.http",
	}), examples: []string{
		"tidemark replica --nats nats://127.0.0.1:4222 --id r1 --data ./r1 --http :9101",
	}},
	{name: "writer", help: "run the writer service", run: runWriter, flags: withNATS(map[string]string{
		"http": "writer.http",
	}), examples: []string{
		"tidemark writer --nats nats://127.0.0.1:4222 --http :9100",
		"tidemark writer --nats nats://a:4222,nats://b:4222,nats://c:4222 --set stream.replicas=3",
	}},
	{name: "bench", help: "measure Tidemark next to raw JetStream and NATS KV", run: runBench, own: benchFlags, examples: []string{
		"tidemark bench",
		"tidemark bench --mode both --repeat 3 --json bin/bench.json",
	}},
	{name: "chaos", help: "run the fault campaign: real processes, faults, a history checker", run: runChaos, own: chaosFlags, examples: []string{
		"tidemark chaos --seeds 1,2,3 --duration 3m --topologies single,cluster --report chaos-report",
		"tidemark chaos --faults all --nats-server bin/nats-server",
	}},
}

// withNATS adds the flags that say how to reach NATS to a command's flags.
func withNATS(flags map[string]string) map[string]string {
	out := map[string]string{
		"nats": "nats.url", "creds": "nats.creds", "nkey": "nats.nkey",
		"tls-cert": "nats.tls_cert", "tls-key": "nats.tls_key", "tls-ca": "nats.tls_ca",
	}
	for k, v := range flags {
		out[k] = v
	}
	return out
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(stdout, "tidemark", buildVersion())
		return nil
	}
	if args[0] == "health" {
		return runHealth(ctx, args[1:], stdout, stderr)
	}
	for _, c := range commands {
		if c.name == args[0] {
			cfg, err := loadConfig(c, args[1:], stdout, stderr)
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			if err != nil {
				return err
			}
			env := &cmdEnv{stdout: stdout, stderr: stderr, log: newLogger(cfg.Log, c.name == "dev", stderr)}
			for _, key := range config.UnknownEnv(os.Environ()) {
				env.log.Warn().Str("variable", key).Msg("environment variable names no setting; ignored")
			}
			err = c.run(ctx, cfg, env)
			ev := env.log.Info()
			if err != nil {
				ev = env.log.Error().Err(err)
			}
			ev.Str("role", c.name).Msg("stopped")
			return err
		}
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// loadConfig builds a command's configuration: defaults, then the file,
// then the environment, then flags; and validates the result. -h prints
// the command's help to stdout and returns flag.ErrHelp.
func loadConfig(c command, args []string, stdout, stderr io.Writer) (config.Config, error) {
	fs := flag.NewFlagSet("tidemark "+c.name, flag.ContinueOnError)
	// Parse's own messages are left out: a bad flag is the returned
	// error, which points at -h, and -h prints to stdout.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	file := fs.String("config", os.Getenv("TIDEMARK_CONFIG"), "YAML configuration file")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error")
	var sets []string
	fs.Func("set", "set any configuration field, `name=value` (repeatable; see the README for names)", func(s string) error {
		if !strings.Contains(s, "=") {
			return fmt.Errorf("want name=value, got %q", s)
		}
		sets = append(sets, s)
		return nil
	})
	if c.own != nil {
		c.own(fs)
	}
	def := config.Default()
	for name, field := range c.flags {
		d, _ := def.Get(field)
		if min, max, ok := intFlagRange(field); ok {
			n, _ := strconv.Atoi(d)
			fs.Var(&intFlag{field: field, value: n, min: min, max: max}, name, flagUsage(field))
		} else if d == "true" || d == "false" {
			fs.Bool(name, d == "true", flagUsage(field))
		} else {
			fs.String(name, d, flagUsage(field))
		}
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		printCommandHelp(stdout, c, fs)
		return config.Config{}, err
	} else if err != nil {
		return config.Config{}, fmt.Errorf("%w ('tidemark %s -h' lists its flags)", err, c.name)
	}
	if fs.NArg() > 0 {
		return config.Config{}, fmt.Errorf("tidemark %s: unexpected argument %q", c.name, fs.Arg(0))
	}
	cfg, err := config.Load(*file, os.Environ())
	if err != nil {
		return config.Config{}, err
	}
	for _, s := range sets {
		name, value, _ := strings.Cut(s, "=")
		if err := cfg.Set(name, value); err != nil {
			return config.Config{}, fmt.Errorf("--set %s: %w", name, err)
		}
	}
	var ferr error
	fs.Visit(func(f *flag.Flag) {
		if field, ok := c.flags[f.Name]; ok && ferr == nil {
			ferr = cfg.Set(field, f.Value.String())
		}
	})
	if ferr != nil {
		return config.Config{}, ferr
	}
	if *logLevel != "" {
		if err := cfg.Set("log.level", *logLevel); err != nil {
			return config.Config{}, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return config.Config{}, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	// Built from a checkout without version stamping: the commit.
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if rev != "" {
		return "dev-" + rev + dirty
	}
	return "dev"
}

// newLogger returns a zerolog logger: human-readable console output for
// dev (unless the configuration says json), JSON otherwise.
func newLogger(c config.LogConfig, dev bool, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil || c.Level == "" {
		level = zerolog.InfoLevel
	}
	format := c.Format
	if format == "" {
		format = config.LogFormatJSON
		if dev {
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
