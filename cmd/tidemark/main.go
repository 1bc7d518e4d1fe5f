// Command tidemark runs Tidemark: `tidemark dev` runs the whole pipeline in
// one process on an embedded NATS server; `tidemark gateway`, `tidemark
// replica` and `tidemark writer` run the pieces separately against a NATS
// server or cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, errUsage):
		os.Exit(2) // the usage is printed already
	case err != nil:
		fmt.Fprintln(os.Stderr, "tidemark:", err)
		os.Exit(1)
	}
}
