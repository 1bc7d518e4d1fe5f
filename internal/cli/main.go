package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// ErrUsage reports a command line that could not be understood; the usage
// has been printed already.
var ErrUsage = errors.New("usage")

// Main runs a command's run function with the program's arguments until
// it returns or SIGINT or SIGTERM cancels its context, and exits: 0 on
// success, 2 for ErrUsage, and 1 after printing any other error to
// stderr, prefixed with name.
func Main(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, ErrUsage):
		os.Exit(2) // the usage is printed already
	case err != nil:
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
