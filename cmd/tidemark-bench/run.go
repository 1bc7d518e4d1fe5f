package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/bench"
	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/internal/cli/tool"
)

// name is the tool's name, in its messages and its report's command line.
const name = "tidemark-bench"

// options are the flags of tidemark-bench, which are not configuration
// fields.
type options struct {
	fs          *flag.FlagSet
	nats        string
	gateway     string
	mode        string
	concurrency int
	duration    time.Duration
	ops         int
	size        int
	keys        int
	catchUp     int
	memoryKeys  int
	repeat      int
	only        string
	json        string
	stack       string
	soak        bench.SoakConfig
	soakSet     string
	tidemark    *string
}

// declare declares the flags of tidemark-bench on fs, into a new options.
func declare(fs *flag.FlagSet) *options {
	o := &options{fs: fs}
	fs.StringVar(&o.nats, "nats", "", "measure the stack running on this NATS server; empty starts an embedded one")
	fs.StringVar(&o.gateway, "gateway", "", "the running stack's gateway base URL, with --nats (e.g. http://127.0.0.1:8080)")
	fs.StringVar(&o.mode, "mode", bench.DefaultMode, "fast, durable or both (embedded only)")
	fs.IntVar(&o.concurrency, "concurrency", bench.DefaultConcurrency, "concurrent callers in each phase")
	fs.DurationVar(&o.duration, "duration", bench.DefaultDuration, "length of each phase")
	fs.IntVar(&o.ops, "ops", 0, "end each phase after this many operations, if sooner than --duration")
	fs.IntVar(&o.size, "size", bench.DefaultSize, "value size in bytes")
	fs.IntVar(&o.keys, "keys", bench.DefaultKeys, "keys read by the read phases")
	fs.IntVar(&o.catchUp, "catchup", bench.DefaultCatchUp, "messages behind the catch-up replica starts")
	fs.IntVar(&o.memoryKeys, "memory-keys", bench.DefaultMemoryKeys, "keys held by the replica process of the memory phase")
	fs.IntVar(&o.repeat, "repeat", bench.DefaultRepeat, "runs of each mode; the report shows medians")
	fs.StringVar(&o.only, "only", "", "comma-separated sections to run: "+strings.Join(bench.Sections, ","))
	fs.StringVar(&o.json, "json", "", "also write the report as JSON to this file")
	fs.StringVar(&o.stack, "stack", "", "where the embedded stack runs: process (tidemark dev in a process of its own; the default) or inprocess (in the benchmark's process)")
	fs.IntVar(&o.soak.Writes, "soak-writes", bench.DefaultSoakWrites, "soak: values written with compaction on")
	fs.IntVar(&o.soak.Keys, "soak-keys", bench.DefaultSoakKeys, "soak: keys the values are written over")
	fs.IntVar(&o.soak.Every, "soak-every", bench.DefaultSoakEvery, "soak: writes between samples of the sizes")
	fs.IntVar(&o.soak.Size, "soak-size", bench.DefaultSoakSize, "soak: value size in bytes")
	fs.IntVar(&o.soak.Compare, "soak-compare", bench.DefaultSoakCompare, "soak: writes measured with compaction off, and compared with as many with it on")
	fs.StringVar(&o.soakSet, "soak-set", "", "soak: comma-separated configuration settings key=value for its stacks (e.g. compaction.snapshot_messages=20000)")
	o.tidemark = tool.TidemarkFlag(fs)
	return o
}

// run is tidemark-bench with the command line args.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o *options
	return tool.Run(name, "bench", args, stderr, func(fs *flag.FlagSet) { o = declare(fs) },
		func(cfg config.Config, log zerolog.Logger) error { return measure(ctx, cfg, o, log, stdout, stderr) })
}

// measure runs the benchmark o asks for, prints its table to stdout and,
// with --json, writes the report.
func measure(ctx context.Context, c config.Config, o *options, log zerolog.Logger, stdout, stderr io.Writer) error {
	if c.Log.Level == config.DefaultLogLevel {
		// The components' start-up lines, and the requests cut short at the
		// end of each phase, would drown the progress.
		log = log.Level(zerolog.ErrorLevel)
	}
	tidemark, err := tool.TidemarkBinary(name, *o.tidemark)
	if err != nil {
		return err
	}
	cfg := bench.Config{
		NATSURL: o.nats, GatewayURL: o.gateway, Mode: o.mode, Concurrency: o.concurrency,
		Duration: o.duration, Ops: o.ops, Size: o.size, Keys: o.keys, CatchUp: o.catchUp,
		MemoryKeys: o.memoryKeys, Repeat: o.repeat, Stack: o.stack, Soak: o.soak, Progress: stderr, Logger: log,
		Command: func(args ...string) *exec.Cmd { return exec.Command(tidemark, args...) },
	}
	if o.only != "" {
		cfg.Only = strings.Split(o.only, ",")
	}
	if o.soakSet != "" {
		cfg.Soak.Set = strings.Split(o.soakSet, ",")
	}
	rep, err := bench.Run(ctx, cfg)
	if rep != nil {
		rep.Command = commandLine(o.fs)
		if terr := rep.WriteTable(stdout); terr != nil && err == nil {
			err = terr
		}
		if o.json != "" {
			if jerr := writeJSONReport(o.json, rep); jerr != nil && err == nil {
				err = jerr
			}
		}
	}
	return err
}

// commandLine rebuilds the command line from the flags that were set.
func commandLine(fs *flag.FlagSet) string {
	parts := []string{name}
	fs.Visit(func(f *flag.Flag) { parts = append(parts, "--"+f.Name+"="+f.Value.String()) })
	return strings.Join(parts, " ")
}

func writeJSONReport(path string, rep *bench.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("json report: %w", err)
	}
	if err := rep.WriteJSON(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("json report %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("json report %s: %w", path, err)
	}
	return nil
}
