package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/chaos"
	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/internal/cli/tool"
	"github.com/tidemark/tidemark/internal/proc"
)

// name is the tool's name, in its messages.
const name = "tidemark-chaos"

// options are the flags of tidemark-chaos; each, when set, wins over its
// CHAOS_* environment variable.
type options struct {
	seeds, duration, topologies, faults, sessions, report, natsServer, sessionOrder, probes, watchers string
	tidemark                                                                                          *string
}

// declare declares the flags of tidemark-chaos on fs, into a new options.
func declare(fs *flag.FlagSet) *options {
	o := &options{}
	fs.StringVar(&o.seeds, "seeds", "", "comma-separated seeds (default "+chaos.DefaultSeeds+", or "+chaos.EnvSeeds+")")
	fs.StringVar(&o.duration, "duration", "", "workload and faults per run (default "+chaos.DefaultCampaign.String()+", or "+chaos.EnvDuration+")")
	fs.StringVar(&o.topologies, "topologies", "", "single and/or cluster (default "+chaos.DefaultTopologies+", or "+chaos.EnvTopologies+")")
	fs.StringVar(&o.faults, "faults", "", "comma-separated fault kinds, or all (default all, or "+chaos.EnvFaults+")")
	fs.StringVar(&o.probes, "probes", "", "comma-separated probe clients ("+chaos.ProbeSessionRace+", "+chaos.ProbeWriteIDReuse+"), all or none (default all, or "+chaos.EnvProbes+")")
	fs.StringVar(&o.watchers, "watchers", "", "watchers per run, checked against the history (default "+strconv.Itoa(chaos.DefaultWatchers)+", or "+chaos.EnvWatchers+")")
	fs.StringVar(&o.sessions, "sessions", "", "concurrent client sessions per run (or "+chaos.EnvSessions+")")
	fs.StringVar(&o.sessionOrder, "session-order", "", "true or false: send writes with session ordering (default true, or "+chaos.EnvSessionOrder+")")
	fs.StringVar(&o.report, "report", "", "directory for the runs and report.json / report.txt (default "+chaos.DefaultReportDir+", or "+chaos.EnvReport+")")
	fs.StringVar(&o.natsServer, "nats-server", "", "nats-server binary (default: "+chaos.EnvNATSServer+", next to this binary, or on PATH)")
	o.tidemark = tool.TidemarkFlag(fs)
	return o
}

// run is tidemark-chaos with the command line args.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o *options
	return tool.Run(name, "chaos", args, stderr, func(fs *flag.FlagSet) { o = declare(fs) },
		func(_ config.Config, log zerolog.Logger) error { return campaign(ctx, o, log, stdout) })
}

// campaign runs the fault campaign o asks for: the tidemark roles and
// nats-server as separate processes, faults, the histories checked; it
// prints the report table and fails if any run found a violation.
func campaign(ctx context.Context, o *options, log zerolog.Logger, stdout io.Writer) error {
	environ := os.Environ()
	for k, v := range map[string]string{
		chaos.EnvSeeds: o.seeds, chaos.EnvDuration: o.duration, chaos.EnvTopologies: o.topologies,
		chaos.EnvFaults: o.faults, chaos.EnvSessions: o.sessions, chaos.EnvReport: o.report, chaos.EnvSessionOrder: o.sessionOrder,
		chaos.EnvProbes: o.probes, chaos.EnvWatchers: o.watchers,
	} {
		if v != "" {
			environ = append(environ, k+"="+v)
		}
	}
	c, err := chaos.CampaignFromEnv(environ)
	if err != nil {
		return err
	}
	tidemark, err := tool.TidemarkBinary(name, *o.tidemark)
	if err != nil {
		return err
	}
	ns, err := natsServerBinary(o.natsServer)
	if err != nil {
		return err
	}
	c.Binaries = chaos.Binaries{Tidemark: tidemark, NATSServer: ns}
	c.Logger = log
	rep, err := chaos.RunCampaign(ctx, c)
	if rep != nil {
		rep.WriteTable(stdout)
		fmt.Fprintf(stdout, "report: %s\n", filepath.Join(c.Dir, "report.txt"))
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		return errors.New("chaos: a run found violations or failed; see the report")
	}
	return nil
}

// natsServerBinary finds the nats-server binary: the flag, the
// environment, next to this binary, or on PATH.
func natsServerBinary(flagValue string) (string, error) {
	p, err := proc.Binary("nats-server", "", flagValue, os.Getenv(chaos.EnvNATSServer), proc.NextToSelf("nats-server"))
	if err != nil {
		return "", errors.New("chaos: no nats-server binary: pass --nats-server, set " + chaos.EnvNATSServer +
			", or build one next to this binary (make chaos does)")
	}
	return p, nil
}
