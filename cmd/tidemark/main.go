// Command tidemark runs Tidemark: `tidemark dev` runs the whole pipeline in
// one process on an embedded NATS server; `tidemark gateway`, `tidemark
// replica` and `tidemark writer` run the pieces separately against a NATS
// server or cluster.
package main

import "github.com/tidemark/tidemark/internal/cli"

func main() { cli.Main("tidemark", run) }
