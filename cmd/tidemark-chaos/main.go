// Command tidemark-chaos runs the long fault campaign: the tidemark roles
// and nats-server as separate processes, faults injected into them, and
// every run's history checked against the session guarantees. It needs the
// tidemark binary (--tidemark, or tidemark next to this binary or on PATH)
// and a nats-server binary (--nats-server).
package main

import "github.com/tidemark/tidemark/internal/cli"

func main() { cli.Main("tidemark-chaos", run) }
