// Command tidemark-bench measures Tidemark next to raw JetStream and NATS
// KV on the same NATS server, prints a table and writes JSON. By default it
// runs `tidemark dev` in a process of its own, so it needs the tidemark
// binary (--tidemark, or tidemark next to this binary or on PATH).
package main

import "github.com/tidemark/tidemark/internal/cli"

func main() { cli.Main("tidemark-bench", run) }
