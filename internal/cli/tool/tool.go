// Package tool is how the tools tidemark-bench and tidemark-chaos start:
// their command line and where they find the tidemark binary they run. It
// is apart from package cli so that the server binary links none of it.
package tool

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/internal/cli"
	"github.com/tidemark/tidemark/internal/proc"
)

// Run runs a tool (tidemark-bench, tidemark-chaos) called name with
// the command line args: declare declares the tool's own flags, the
// configuration flags are added, the configuration is loaded and the
// logger made (JSON on stderr), and then do runs. Its end is logged with
// role. -h prints the flags and succeeds.
func Run(name, role string, args []string, stderr io.Writer, declare func(*flag.FlagSet), do func(config.Config, zerolog.Logger) error) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	declare(fs)
	cfg, log, err := parseTool(fs, args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	err = do(cfg, log)
	cli.LogStopped(log, role, err)
	return err
}

// parseTool parses a tool's command line on fs, which holds the tool's own
// flags and gets the configuration flags here; then it loads the
// configuration and makes the logger.
func parseTool(fs *flag.FlagSet, args []string, stderr io.Writer) (config.Config, zerolog.Logger, error) {
	fs.SetOutput(stderr)
	cf := cli.AddConfigFlags(fs)
	if err := fs.Parse(args); err != nil {
		return config.Config{}, zerolog.Nop(), err
	}
	if fs.NArg() > 0 {
		return config.Config{}, zerolog.Nop(), fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	cfg, err := cf.Load(os.Environ(), nil)
	if err != nil {
		return config.Config{}, zerolog.Nop(), err
	}
	log := cli.NewLogger(cfg.Log, false, stderr)
	cli.WarnUnknownEnv(log, os.Environ())
	return cfg, log, nil
}

// TidemarkFlag declares --tidemark, the tidemark binary a tool runs, on fs.
func TidemarkFlag(fs *flag.FlagSet) *string {
	return fs.String("tidemark", "", "the tidemark binary to run (default: tidemark next to this binary, or on PATH)")
}

// TidemarkBinary finds the tidemark binary for the tool named tool: the
// --tidemark value when set, else tidemark next to the tool's executable,
// else tidemark on PATH.
func TidemarkBinary(tool, flagValue string) (string, error) {
	p, err := proc.Binary("tidemark", flagValue, proc.NextToSelf("tidemark"))
	if errors.Is(err, proc.ErrNoBinary) {
		return "", fmt.Errorf("no tidemark binary: pass --tidemark PATH, build one next to %s (make build does), or put one on PATH", tool)
	}
	if err != nil {
		return "", fmt.Errorf("--tidemark: %w", err)
	}
	return p, nil
}
