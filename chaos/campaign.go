package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/chaos/checker"
)

// Topologies of a campaign, by name.
var (
	// Single is one NATS server, as `tidemark dev` runs it (the stream is R1).
	Single = Topology{NATS: 1, Writers: 2, Replicas: 3, Gateways: 2}
	// Cluster3 is a three-server JetStream cluster (the stream is R3).
	Cluster3 = Topology{NATS: 3, Writers: 2, Replicas: 3, Gateways: 2}
)

// ParseTopologies parses a comma-separated list of "single" and "cluster".
func ParseTopologies(s string) ([]Topology, error) {
	var out []Topology
	for _, f := range splitList(s) {
		switch f {
		case "single":
			out = append(out, Single)
		case "cluster":
			out = append(out, Cluster3)
		default:
			return nil, fmt.Errorf("unknown topology %q: want single or cluster", f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no topology in %q", s)
	}
	return out, nil
}

// Campaign is a set of runs: every seed on every topology.
type Campaign struct {
	// Seeds and Topologies are crossed.
	Seeds      []uint64
	Topologies []Topology
	// Duration, Sessions, Faults and SessionOrder apply to every run.
	Duration     time.Duration
	Sessions     int
	Faults       []FaultKind
	SessionOrder bool
	// Probes are the extra clients of every run (ParseProbes).
	Probes Probes
	// Watchers is the number of watchers of every run (Options.Watchers).
	Watchers int
	// Compaction runs every run with aggressive compaction and TTL keys
	// (Options.Compaction, Options.TTL), leaving out the faults that
	// replace the stream's history.
	Compaction bool
	// Dir receives one directory per run, report.json and report.txt.
	Dir string
	// Binaries are the programs to run.
	Binaries Binaries
	// Logger receives progress.
	Logger zerolog.Logger
}

// Environment variables that configure a campaign (CampaignFromEnv).
const (
	EnvSeeds        = "CHAOS_SEEDS"
	EnvDuration     = "CHAOS_DURATION"
	EnvTopologies   = "CHAOS_TOPOLOGIES"
	EnvFaults       = "CHAOS_FAULTS"
	EnvSessions     = "CHAOS_SESSIONS"
	EnvSessionOrder = "CHAOS_SESSION_ORDER" // default true
	EnvReport       = "CHAOS_REPORT"
	EnvNATSServer   = "CHAOS_NATS_SERVER"
	EnvProbes       = "CHAOS_PROBES"     // default all
	EnvCompaction   = "CHAOS_COMPACTION" // default false
	EnvWatchers     = "CHAOS_WATCHERS"   // default DefaultWatchers
)

// Probe kinds: extra clients that run besides the sessions.
const (
	// ProbeSessionRace is a pair of clients writing with one session and
	// the same or adjacent session sequences, at once, through two gateways.
	ProbeSessionRace = "session-race"
	// ProbeWriteIDReuse is a client that sends a write id again with other
	// content and again with the same.
	ProbeWriteIDReuse = "write-id-reuse"
)

// Probes are how many of each probe client a run has.
type Probes struct {
	RacePairs, Reusers int
}

// ParseProbes parses a comma-separated list of probe kinds; "all" is every
// kind and "none" none. Each kind runs one client (one pair for the race).
func ParseProbes(s string) (Probes, error) {
	switch s {
	case "", "all":
		return Probes{RacePairs: 1, Reusers: 1}, nil
	case "none":
		return Probes{}, nil
	}
	var p Probes
	for _, f := range splitList(s) {
		switch f {
		case ProbeSessionRace:
			p.RacePairs = 1
		case ProbeWriteIDReuse:
			p.Reusers = 1
		default:
			return Probes{}, fmt.Errorf("unknown probe %q: want %s, %s, all or none", f, ProbeSessionRace, ProbeWriteIDReuse)
		}
	}
	if p == (Probes{}) {
		return p, fmt.Errorf("no probe in %q (use none)", s)
	}
	return p, nil
}

// Defaults of a campaign.
const (
	DefaultSeeds      = "1,2,3"
	DefaultTopologies = "single,cluster"
	DefaultCampaign   = 3 * time.Minute
	DefaultReportDir  = "chaos-report"
	DefaultWatchers   = 2
)

// CampaignFromEnv reads a campaign from "KEY=value" entries such as
// os.Environ returns; unset variables keep their defaults. The binaries
// are left for the caller.
func CampaignFromEnv(environ []string) (Campaign, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CHAOS_") {
			env[k] = v
		}
	}
	get := func(k, def string) string {
		if v, ok := env[k]; ok && v != "" {
			return v
		}
		return def
	}
	c := Campaign{Duration: DefaultCampaign, Sessions: DefaultSessions, SessionOrder: true, Watchers: DefaultWatchers, Dir: get(EnvReport, DefaultReportDir)}
	var err error
	if c.Seeds, err = ParseSeeds(get(EnvSeeds, DefaultSeeds)); err != nil {
		return c, fmt.Errorf("%s: %w", EnvSeeds, err)
	}
	if c.Topologies, err = ParseTopologies(get(EnvTopologies, DefaultTopologies)); err != nil {
		return c, fmt.Errorf("%s: %w", EnvTopologies, err)
	}
	if c.Faults, err = ParseFaults(get(EnvFaults, "all")); err != nil {
		return c, fmt.Errorf("%s: %w", EnvFaults, err)
	}
	if c.Probes, err = ParseProbes(get(EnvProbes, "all")); err != nil {
		return c, fmt.Errorf("%s: %w", EnvProbes, err)
	}
	if s := get(EnvDuration, ""); s != "" {
		if c.Duration, err = time.ParseDuration(s); err != nil || c.Duration <= 0 {
			return c, fmt.Errorf("%s: %q is not a positive duration", EnvDuration, s)
		}
	}
	if s := get(EnvSessions, ""); s != "" {
		if c.Sessions, err = strconv.Atoi(s); err != nil || c.Sessions < 1 || c.Sessions > 1000 {
			return c, fmt.Errorf("%s: %q: want 1 to 1000", EnvSessions, s)
		}
	}
	if s := get(EnvWatchers, ""); s != "" {
		if c.Watchers, err = strconv.Atoi(s); err != nil || c.Watchers < 0 || c.Watchers > 1000 {
			return c, fmt.Errorf("%s: %q: want 0 to 1000", EnvWatchers, s)
		}
	}
	if s := get(EnvSessionOrder, ""); s != "" {
		if c.SessionOrder, err = strconv.ParseBool(s); err != nil {
			return c, fmt.Errorf("%s: %q: want true or false", EnvSessionOrder, s)
		}
	}
	if s := get(EnvCompaction, ""); s != "" {
		if c.Compaction, err = strconv.ParseBool(s); err != nil {
			return c, fmt.Errorf("%s: %q: want true or false", EnvCompaction, s)
		}
	}
	if c.Compaction {
		c.Faults = slices.DeleteFunc(c.Faults, func(f FaultKind) bool { return !recordable(f) })
	}
	return c, nil
}

// Report is the outcome of a campaign.
type Report struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	Results  []*Result     `json:"results"`
}

// OK reports whether every run finished with no violation.
func (r *Report) OK() bool {
	for _, res := range r.Results {
		if !res.OK() {
			return false
		}
	}
	return len(r.Results) > 0
}

// RunCampaign runs every seed on every topology, one after the other, and
// writes report.json and report.txt into c.Dir. A run whose harness fails
// is recorded as failed and the campaign goes on.
func RunCampaign(ctx context.Context, c Campaign) (*Report, error) {
	rep := &Report{Started: time.Now()}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	for _, topo := range c.Topologies {
		for _, seed := range c.Seeds {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			name := fmt.Sprintf("%s-seed%d", topoName(topo), seed)
			res, err := Run(ctx, Options{
				Seed: seed, Dir: filepath.Join(c.Dir, name), Binaries: c.Binaries, Topology: topo,
				Sessions: c.Sessions, Duration: c.Duration, Faults: c.Faults, SessionOrder: c.SessionOrder,
				RacePairs: c.Probes.RacePairs, Reusers: c.Probes.Reusers, Watchers: c.Watchers,
				Compaction: c.Compaction, TTL: c.Compaction,
				Logger: c.Logger,
			})
			if err != nil {
				res = &Result{Seed: seed, Topology: topo.String(), Error: err.Error()}
			}
			rep.Results = append(rep.Results, res)
			c.Logger.Info().Str("run", name).Bool("ok", res.OK()).Msg("run done")
			rep.Duration = time.Since(rep.Started)
			if err := rep.write(c.Dir); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

func topoName(t Topology) string {
	if t.NATS > 1 {
		return "cluster"
	}
	return "single"
}

func (r *Report) write(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "report.txt"))
	if err != nil {
		return err
	}
	r.WriteTable(f)
	return f.Close()
}

// WriteTable writes the report as a readable table: one line per run,
// then the faults injected and the violations found, by kind.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "seed\ttopology\tduration\tops\twrites ok/indet/failed\tfaults\tviolations\tlost\tduplicated\tgroup-committed\tcatch-up max\tconverge\tresult")
	faults := map[FaultKind]int{}
	kinds := map[checker.Kind]int{}
	var ops, violations, lost, dups, lostByFault, watchEvents int
	var worst, worstCatch time.Duration
	for _, res := range r.Results {
		var catch time.Duration
		for _, f := range res.Faults {
			faults[f.Kind]++
			catch = max(catch, f.CaughtUp)
		}
		worstCatch = max(worstCatch, catch)
		verdict := "ok"
		if !res.OK() {
			verdict = "FAIL"
			if res.Error != "" {
				verdict += ": " + res.Error
			}
			if len(res.Crashes) > 0 {
				verdict += fmt.Sprintf(" (%d crashes)", len(res.Crashes))
			}
			if n := res.FaultErrors(); n > 0 {
				verdict += fmt.Sprintf(" (%d faults did not recover)", n)
			}
		}
		worst = max(worst, res.Converge)
		c := res.Check
		if c == nil {
			fmt.Fprintf(tw, "%d\t%s\t%v\t-\t-\t%d\t-\t-\t-\t%d\t%v\t%v\t%s\n", res.Seed, res.Topology, res.Duration.Round(time.Second),
				len(res.Faults), res.GroupCommitted, catch.Round(time.Millisecond), res.Converge.Round(time.Millisecond), verdict)
			continue
		}
		for k, n := range c.Counts {
			kinds[k] += n
		}
		ops, violations, lost, dups = ops+c.Ops, violations+c.Violations(), lost+c.Lost, dups+c.Duplicated
		lostByFault += c.LostByFault
		watchEvents += c.WatchEvents
		fmt.Fprintf(tw, "%d\t%s\t%v\t%d\t%d/%d/%d\t%d\t%d\t%d\t%d\t%d\t%v\t%v\t%s\n", res.Seed, res.Topology,
			res.Duration.Round(time.Second), c.Ops, c.Writes["ok"], c.Writes["indeterminate"], c.Writes["failed"],
			len(res.Faults), c.Violations(), c.Lost, c.Duplicated, res.GroupCommitted, catch.Round(time.Millisecond), res.Converge.Round(time.Millisecond), verdict)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d runs, %d operations, %d violations, %d lost writes, %d duplicated writes, "+
		"slowest catch-up after a fault %v, slowest final convergence %v\n",
		len(r.Results), ops, violations, lost, dups, worstCatch.Round(time.Millisecond), worst.Round(time.Millisecond))
	if watchEvents > 0 {
		fmt.Fprintf(w, "%d watch events checked against the stream\n", watchEvents)
	}
	if lostByFault > 0 {
		fmt.Fprintf(w, "%d acknowledged writes lost by tail-loss faults (a restored store), reported apart from lost writes\n", lostByFault)
	}
	fmt.Fprintf(w, "faults injected: %s\n", counts(faults))
	fmt.Fprintf(w, "violations by kind: %s\n", counts(kinds))
	for _, res := range r.Results {
		for _, c := range res.Crashes {
			fmt.Fprintf(w, "crash (seed %d, %s): %s\n", res.Seed, res.Topology, c)
		}
		for _, f := range res.Faults {
			if f.Error != "" {
				fmt.Fprintf(w, "fault (seed %d, %s): %s on %s at %v: %s\n", res.Seed, res.Topology, f.Kind, f.Target, f.At.Round(time.Second), f.Error)
			}
		}
		if res.Check != nil && !res.Check.OK() {
			fmt.Fprintf(w, "seed %d, %s: %s", res.Seed, res.Topology, res.Check.Summary())
		}
	}
}

func counts[K ~string](m map[K]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[K(k)])
	}
	return strings.Join(parts, ", ")
}
