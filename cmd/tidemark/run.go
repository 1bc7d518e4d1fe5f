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

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// errUsage reports a command line that could not be understood; the usage
// has been printed already.
var errUsage = cli.ErrUsage

const usage = `Tidemark: session consistency over eventually consistent replicas.

Usage:
  tidemark dev       [flags]   whole pipeline in one process, embedded NATS (start here)
  tidemark gateway   [flags]   HTTP gateway, against a NATS server or cluster
  tidemark replica   [flags]   one replica (replicator + reader over its own Badger directory)
  tidemark writer    [flags]   the writer service
  tidemark version             print the version
  tidemark health    URL       exit 0 if URL answers 2xx (container health checks)

Every command takes --config FILE (or TIDEMARK_CONFIG), TIDEMARK_* environment
variables and --set name=value; flags win over the environment, which wins over
the file. 'tidemark <command> -h' lists a command's flags.

The measurements and the fault campaign are tools of their own:
tidemark-bench and tidemark-chaos (make build builds them into bin/).
`

type command struct {
	name string
	help string // one line: what the command does
	// examples are command lines `tidemark <command> -h` shows.
	examples []string
	flags    map[string]string // flag name -> config field
	run      func(ctx context.Context, cfg config.Config, env *cmdEnv) error
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
}

// tools are the commands that became binaries of their own, and those
// binaries' names.
var tools = map[string]string{"bench": "tidemark-bench", "chaos": "tidemark-chaos"}

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
	if tool, ok := tools[args[0]]; ok {
		fmt.Fprintf(stderr, "tidemark %s is a tool of its own: run %s instead (make build builds it into bin/; or go run ./cmd/%s)\n", args[0], tool, tool)
		return errUsage
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
			env := &cmdEnv{stdout: stdout, stderr: stderr, log: cli.NewLogger(cfg.Log, c.name == "dev", stderr)}
			cli.WarnUnknownEnv(env.log, os.Environ())
			err = c.run(ctx, cfg, env)
			cli.LogStopped(env.log, c.name, err)
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
	cf := cli.AddConfigFlags(fs)
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
	return cf.Load(os.Environ(), func(cfg *config.Config) error {
		var ferr error
		fs.Visit(func(f *flag.Flag) {
			if field, ok := c.flags[f.Name]; ok && ferr == nil {
				ferr = cfg.Set(field, f.Value.String())
			}
		})
		return ferr
	})
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
