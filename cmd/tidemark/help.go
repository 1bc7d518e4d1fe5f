package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tidemark/tidemark/config"
)

// fieldHelp describes the configuration fields that commands take as
// flags, for `tidemark <command> -h`.
func fieldHelp(field string) string {
	switch field {
	case "gateway.http":
		return "the gateway's HTTP listen address, host:port"
	case "nats.url":
		return "NATS server URL, or a comma-separated list of a cluster's"
	case "nats.creds":
		return "NATS credentials (JWT) file"
	case "nats.nkey":
		return "NATS nkey seed file"
	case "nats.tls_cert":
		return "TLS client certificate file"
	case "nats.tls_key":
		return "TLS client certificate's key file"
	case "nats.tls_ca":
		return "CA certificates to trust for the NATS servers' TLS"
	case "replica.id":
		return "the replica's id, unique among the live replicas (the hostname when empty)"
	case "replica.data":
		return "the replica's Badger directory"
	case "replica.http":
		return "listen address for the replica's /healthz, /readyz and /metrics; empty is off"
	case "writer.http":
		return "listen address for the writer's /healthz, /readyz and /metrics; empty is off"
	case "dev.replicas":
		return fmt.Sprintf("how many replicas to start, an `int` from 1 to %d", config.MaxDevReplicas)
	case "dev.nats_listen":
		return "the embedded NATS server's listen address, host:port"
	case "dev.data":
		return "directory for the stream and the replicas' data"
	case "dev.durable":
		return "fsync every write, as in production (slower)"
	}
	return ""
}

// flagUsage is the description of a flag that sets field.
func flagUsage(field string) string {
	s := "sets " + field + " (" + config.EnvName(field) + ")"
	if h := fieldHelp(field); h != "" {
		s = h + "; " + s
	}
	return s
}

// intFlag is a flag holding a whole number from min to max, for an
// integer configuration field; out of range, the flag is refused with a
// message naming the bounds and the field.
type intFlag struct {
	field    string
	value    int
	min, max int
}

func (f *intFlag) String() string {
	if f == nil {
		return "0"
	}
	return strconv.Itoa(f.value)
}

func (f *intFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("want a whole number from %d to %d (%s), got %q", f.min, f.max, f.field, s)
	}
	if n < f.min || n > f.max {
		return fmt.Errorf("want %d to %d (%s), got %d", f.min, f.max, f.field, n)
	}
	f.value = n
	return nil
}

// intFlagRange returns the bounds of an integer field taken as a flag.
func intFlagRange(field string) (min, max int, ok bool) {
	switch field {
	case "dev.replicas":
		return 1, config.MaxDevReplicas, true
	}
	return 0, 0, false
}

// printCommandHelp writes `tidemark <command> -h`: what the command does,
// its usage, its flags and examples.
func printCommandHelp(w io.Writer, c command, fs *flag.FlagSet) {
	var b strings.Builder
	fmt.Fprintf(&b, "tidemark %s: %s\n\nUsage:\n  tidemark %s [flags]\n\nFlags:\n", c.name, c.help, c.name)
	out := fs.Output()
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(out)
	if len(c.examples) > 0 {
		b.WriteString("\nExamples:\n")
		for _, e := range c.examples {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	_, _ = io.WriteString(w, b.String())
}
