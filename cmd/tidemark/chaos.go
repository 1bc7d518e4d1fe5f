package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/tidemark/tidemark/chaos"
	"github.com/tidemark/tidemark/config"
)

// chaosOptions are the flags of `tidemark chaos`; each, when set, wins over
// its CHAOS_* environment variable.
type chaosOptions struct {
	seeds, duration, topologies, faults, sessions, report, natsServer, sessionOrder, probes string
}

var chaosOpts chaosOptions

// chaosFlags declares the flags of `tidemark chaos` on fs.
func chaosFlags(fs *flag.FlagSet) {
	o := &chaosOpts
	fs.StringVar(&o.seeds, "seeds", "", "comma-separated seeds (default "+chaos.DefaultSeeds+", or "+chaos.EnvSeeds+")")
	fs.StringVar(&o.duration, "duration", "", "workload and faults per run (default "+chaos.DefaultCampaign.String()+", or "+chaos.EnvDuration+")")
	fs.StringVar(&o.topologies, "topologies", "", "single and/or cluster (default "+chaos.DefaultTopologies+", or "+chaos.EnvTopologies+")")
	fs.StringVar(&o.faults, "faults", "", "comma-separated fault kinds, or all (default all, or "+chaos.EnvFaults+")")
	fs.StringVar(&o.probes, "probes", "", "comma-separated probe clients ("+chaos.ProbeSessionRace+", "+chaos.ProbeWriteIDReuse+"), all or none (default all, or "+chaos.EnvProbes+")")
	fs.StringVar(&o.sessions, "sessions", "", "concurrent client sessions per run (or "+chaos.EnvSessions+")")
	fs.StringVar(&o.sessionOrder, "session-order", "", "true or false: send writes with session ordering (default true, or "+chaos.EnvSessionOrder+")")
	fs.StringVar(&o.report, "report", "", "directory for the runs and report.json / report.txt (default "+chaos.DefaultReportDir+", or "+chaos.EnvReport+")")
	fs.StringVar(&o.natsServer, "nats-server", "", "nats-server binary (default: "+chaos.EnvNATSServer+", next to this binary, or on PATH)")
}

// runChaos is `tidemark chaos`: the long fault campaign. It runs this
// binary's roles and nats-server as separate processes, injects faults,
// checks the histories, prints the report table and fails if any run found
// a violation.
func runChaos(ctx context.Context, _ config.Config, env *cmdEnv) error {
	o := chaosOpts
	environ := os.Environ()
	for k, v := range map[string]string{
		chaos.EnvSeeds: o.seeds, chaos.EnvDuration: o.duration, chaos.EnvTopologies: o.topologies,
		chaos.EnvFaults: o.faults, chaos.EnvSessions: o.sessions, chaos.EnvReport: o.report, chaos.EnvSessionOrder: o.sessionOrder,
		chaos.EnvProbes: o.probes,
	} {
		if v != "" {
			environ = append(environ, k+"="+v)
		}
	}
	c, err := chaos.CampaignFromEnv(environ)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	ns, err := natsServerBinary(o.natsServer, self)
	if err != nil {
		return err
	}
	c.Binaries = chaos.Binaries{Tidemark: self, NATSServer: ns}
	c.Logger = env.log
	rep, err := chaos.RunCampaign(ctx, c)
	if rep != nil {
		rep.WriteTable(env.stdout)
		fmt.Fprintf(env.stdout, "report: %s\n", filepath.Join(c.Dir, "report.txt"))
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
func natsServerBinary(flagValue, self string) (string, error) {
	for _, p := range []string{flagValue, os.Getenv(chaos.EnvNATSServer), filepath.Join(filepath.Dir(self), "nats-server")} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p, nil
	}
	return "", errors.New("chaos: no nats-server binary: pass --nats-server, set " + chaos.EnvNATSServer +
		", or build one next to this binary (make chaos does)")
}
