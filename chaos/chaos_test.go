package chaos_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/chaos"
)

var (
	flagBin     = flag.String("chaos.bin", "", "directory with prebuilt tidemark and nats-server binaries (default: build them)")
	flagVerbose = flag.Bool("chaos.v", false, "log the harness's progress")
	flagDir     = flag.String("chaos.dir", "", "keep each run's data, logs and history under this directory")
	flagLong    = flag.Bool("chaos.long", false, "run the long fault campaign (TestFaultsLong), configured by the CHAOS_* environment")
)

func binaries(t *testing.T) chaos.Binaries {
	t.Helper()
	if *flagBin != "" {
		return chaos.Binaries{Tidemark: filepath.Join(*flagBin, "tidemark"), NATSServer: filepath.Join(*flagBin, "nats-server")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b, err := chaos.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func logger() zerolog.Logger {
	if *flagVerbose {
		return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

func runDir(t *testing.T) string {
	t.Helper()
	if *flagDir == "" {
		return t.TempDir()
	}
	d, err := os.MkdirTemp(*flagDir, t.Name()+"-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestFaultsShort is the short fault run: the real processes on one NATS
// server (two writers, three replicas, two gateways), a workload of eight
// sessions for about forty seconds, and every single-server fault injected
// at least once. It must end with no violation, nothing lost, no process
// crashed, and the replicas converged.
func TestFaultsShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes for about a minute")
	}
	res := shortRun(t, chaos.Options{Sessions: 8, SessionOrder: true, Watchers: 2,
		Faults: []chaos.FaultKind{chaos.KillReplica, chaos.KillReplicaMidBatch, chaos.KillGateway, chaos.KillWriter,
			chaos.KillNATS, chaos.Pause, chaos.PartitionReplica}})
	for _, f := range res.Faults {
		if f.Error != "" {
			t.Errorf("fault %s on %s: %s", f.Kind, f.Target, f.Error)
		}
	}
	if got, want := res.Check.Writes["ok"], 500; got < want {
		t.Fatalf("%d acknowledged writes, want at least %d: the workload did not get going", got, want)
	}
	if got, want := res.Check.Txns, 20; got < want {
		t.Fatalf("%d acknowledged transactions, want at least %d", got, want)
	}
	t.Logf("%d acknowledged transactions", res.Check.Txns)
}

// TestFaultsStreamHistory is the short run of the faults that change the
// stream's history or a replica's files under it (tail-loss,
// recreate-stream, corrupt-sst) with the probe clients (racing same-session
// writes through two gateways, reused write ids): one NATS server, about
// forty seconds, every one of those faults at least once. It must end with
// no violation, nothing lost but what a restored store lost, no crash and
// the replicas converged.
func TestFaultsStreamHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes for about a minute")
	}
	res := shortRun(t, chaos.Options{Sessions: 8, SessionOrder: true, RacePairs: 1, Reusers: 1,
		Faults: []chaos.FaultKind{chaos.TailLoss, chaos.RecreateStream, chaos.CorruptSST}})
	if res.Check.FinalReads == 0 {
		t.Fatal("no final strong reads")
	}
}

// TestFaultsCompaction is the short fault run with aggressive compaction
// (a base snapshot every 50 messages, a window of 20, a look every 200ms),
// so that replicas killed or cut off come back from the stream or from a
// base snapshot, and with keys that have a time to live: it must end with
// no violation, nothing lost, the replicas converged, the stream compacted
// and keys expired.
func TestFaultsCompaction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes for about a minute")
	}
	res := shortRun(t, chaos.Options{Sessions: 8, SessionOrder: true, Compaction: true, TTL: true, Watchers: 2,
		Faults: []chaos.FaultKind{chaos.KillReplica, chaos.KillReplicaMidBatch, chaos.KillGateway, chaos.KillWriter,
			chaos.KillNATS, chaos.Pause, chaos.PartitionReplica}})
	if res.Compacted == 0 {
		t.Fatal("the stream was never compacted")
	}
	if res.Expired == 0 {
		t.Fatal("no key expired")
	}
	t.Logf("compaction removed the stream's first %d messages; %d keys expired", res.Compacted, res.Expired)
}

// shortRun runs seed 1 on one NATS server for forty seconds with opts'
// workload and faults, and fails unless it found nothing and injected
// every one of the faults at least once.
func shortRun(t *testing.T, opts chaos.Options) *chaos.Result {
	t.Helper()
	opts.Seed, opts.Dir, opts.Binaries, opts.Topology = 1, runDir(t), binaries(t), chaos.Single
	opts.Duration = 40 * time.Second
	opts.MinGap, opts.MaxGap, opts.MaxHold = 500*time.Millisecond, 1500*time.Millisecond, 2*time.Second
	opts.Logger = logger()
	res, err := chaos.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	rep := &chaos.Report{Results: []*chaos.Result{res}}
	var table bytes.Buffer
	rep.WriteTable(&table)
	t.Logf("\n%s", table.String())
	for _, f := range res.Faults {
		t.Logf("fault %s on %s at %v, held %v, recovered in %v %s", f.Kind, f.Target, f.At.Round(time.Millisecond),
			f.Held.Round(time.Millisecond), f.Recovered.Round(time.Millisecond), f.Error)
	}
	if !res.OK() {
		t.Fatalf("the fault run failed (history in %s):\n%s", res.History, table.String())
	}
	kinds := map[chaos.FaultKind]bool{}
	for _, f := range res.Faults {
		kinds[f.Kind] = true
	}
	if got, want := len(kinds), len(opts.Faults); got != want {
		t.Fatalf("%d fault kinds injected, want %d", got, want)
	}
	if got := len(res.Check.WatchChanges); got != opts.Watchers {
		t.Fatalf("%d watchers checked, want %d", got, opts.Watchers)
	}
	for i, n := range res.Check.WatchChanges {
		if n == 0 {
			t.Fatalf("watcher %d saw no change event", i)
		}
	}
	t.Logf("%d watch events checked, change events per watcher %v", res.Check.WatchEvents, res.Check.WatchChanges)
	// The writers fsync every write (sync_interval: always) and batch it
	// by group commit: the run must have gone through the batches.
	t.Logf("%d messages stored by group commit", res.GroupCommitted)
	if res.GroupCommitted == 0 {
		t.Fatal("no message was stored by group commit: the run did not exercise it")
	}
	return res
}

// TestFaultsLong is the long campaign (make chaos): every seed of
// CHAOS_SEEDS on one server and on a three-server cluster, CHAOS_DURATION
// each, every fault. It writes report.json and report.txt into
// CHAOS_REPORT. It runs only with -chaos.long.
func TestFaultsLong(t *testing.T) {
	if !*flagLong {
		t.Skip("the long fault campaign runs with -chaos.long (make chaos)")
	}
	c, err := chaos.CampaignFromEnv(os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	c.Binaries, c.Logger = binaries(t), logger()
	rep, err := chaos.RunCampaign(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	t.Logf("report in %s\n%s", c.Dir, table.String())
	if !rep.OK() {
		t.Fatal("the campaign found violations or failed")
	}
}

func TestCampaignFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		ok      bool
		seeds   int
		topos   int
		faults  int
		minutes time.Duration
	}{
		{"defaults", nil, true, 3, 2, len(chaos.AllFaults), 3},
		{"set", []string{"CHAOS_SEEDS=4,5", "CHAOS_TOPOLOGIES=cluster", "CHAOS_FAULTS=kill-nats,pause", "CHAOS_DURATION=1m", "PATH=/bin"}, true, 2, 1, 2, 1},
		{"bad seed", []string{"CHAOS_SEEDS=x"}, false, 0, 0, 0, 0},
		{"bad topology", []string{"CHAOS_TOPOLOGIES=mesh"}, false, 0, 0, 0, 0},
		{"bad fault", []string{"CHAOS_FAULTS=meteor"}, false, 0, 0, 0, 0},
		{"probes", []string{"CHAOS_PROBES=session-race"}, true, 3, 2, len(chaos.AllFaults), 3},
		{"no probes", []string{"CHAOS_PROBES=none"}, true, 3, 2, len(chaos.AllFaults), 3},
		{"bad probe", []string{"CHAOS_PROBES=gremlin"}, false, 0, 0, 0, 0},
		{"bad duration", []string{"CHAOS_DURATION=-1s"}, false, 0, 0, 0, 0},
		{"bad sessions", []string{"CHAOS_SESSIONS=0"}, false, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := chaos.CampaignFromEnv(tt.env)
			if got, want := err == nil, tt.ok; got != want {
				t.Fatalf("CampaignFromEnv(%q) error=%v, want ok=%v", tt.env, err, want)
			}
			if !tt.ok {
				return
			}
			if len(c.Seeds) != tt.seeds || len(c.Topologies) != tt.topos || len(c.Faults) != tt.faults || c.Duration != tt.minutes*time.Minute {
				t.Fatalf("CampaignFromEnv(%q)=%+v", tt.env, c)
			}
		})
	}
}

// TestCampaignWatchersFromEnv: a campaign runs two watchers unless
// CHAOS_WATCHERS says otherwise.
func TestCampaignWatchersFromEnv(t *testing.T) {
	for _, tt := range []struct {
		env  string
		ok   bool
		want int
	}{{"", true, 2}, {"CHAOS_WATCHERS=5", true, 5}, {"CHAOS_WATCHERS=0", true, 0}, {"CHAOS_WATCHERS=-1", false, 0}, {"CHAOS_WATCHERS=x", false, 0}} {
		c, err := chaos.CampaignFromEnv([]string{tt.env})
		if got := err == nil; got != tt.ok {
			t.Fatalf("CampaignFromEnv(%q) error=%v, want ok=%v", tt.env, err, tt.ok)
		}
		if tt.ok && c.Watchers != tt.want {
			t.Fatalf("CampaignFromEnv(%q).Watchers=%d, want %d", tt.env, c.Watchers, tt.want)
		}
	}
}

// FuzzCampaignFromEnv: the campaign's environment never panics the parser.
func FuzzCampaignFromEnv(f *testing.F) {
	f.Add("1,2,3", "single,cluster", "all", "3m", "8")
	f.Add("", "", "kill-nats", "1s", "x")
	f.Fuzz(func(t *testing.T, seeds, topos, faults, dur, sessions string) {
		c, err := chaos.CampaignFromEnv([]string{"CHAOS_SEEDS=" + seeds, "CHAOS_TOPOLOGIES=" + topos,
			"CHAOS_FAULTS=" + faults, "CHAOS_DURATION=" + dur, "CHAOS_SESSIONS=" + sessions})
		if err == nil && (len(c.Seeds) == 0 || len(c.Topologies) == 0 || c.Duration <= 0 || c.Sessions < 1) {
			t.Fatalf("accepted a campaign that cannot run: %+v", c)
		}
	})
}

func TestParseProbes(t *testing.T) {
	tests := []struct {
		in   string
		want chaos.Probes
		ok   bool
	}{
		{"", chaos.Probes{RacePairs: 1, Reusers: 1}, true},
		{"all", chaos.Probes{RacePairs: 1, Reusers: 1}, true},
		{"none", chaos.Probes{}, true},
		{"session-race", chaos.Probes{RacePairs: 1}, true},
		{"write-id-reuse, session-race", chaos.Probes{RacePairs: 1, Reusers: 1}, true},
		{",", chaos.Probes{}, false},
		{"session-race,x", chaos.Probes{}, false},
	}
	for _, tt := range tests {
		got, err := chaos.ParseProbes(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParseProbes(%q)=%+v, %v; want %+v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
