package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"time"

	"github.com/rs/zerolog"
)

// Modes of a run.
const (
	// ModeFast runs JetStream without fsync on every write and replicas
	// without fsync on every batch: the `tidemark dev` default.
	ModeFast = "fast"
	// ModeDurable fsyncs every write (sync_interval: always) and every
	// replica batch: production settings.
	ModeDurable = "durable"
	// ModeBoth runs ModeFast, then ModeDurable.
	ModeBoth = "both"
	// ModeRemote labels the results of a run against a running stack,
	// whose durability its servers decide.
	ModeRemote = "remote"
)

// Layouts of the stack the benchmark starts for a mode.
const (
	// StackProcess runs `tidemark dev` in a process of its own (Command
	// must be set) and measures it from the benchmark's process, as
	// clients and servers are deployed: each process gets its share of the
	// CPUs from the operating system.
	StackProcess = "process"
	// StackInProcess runs the NATS server, the pipeline and the load in
	// the benchmark's own process, sharing one Go scheduler.
	StackInProcess = "inprocess"
)

// Defaults of Config.
const (
	DefaultMode        = ModeBoth
	DefaultConcurrency = 64
	DefaultDuration    = 5 * time.Second
	DefaultSize        = 128
	DefaultKeys        = 1000
	DefaultCatchUp     = 1_000_000
	DefaultMemoryKeys  = 1_000_000
	DefaultRepeat      = 1
	DefaultReplicas    = 2
	// DefaultWindow is how many asynchronous publishes await their ack at
	// once in the raw async baseline.
	DefaultWindow = 1024
)

// Config configures a benchmark run. New fills in the defaults.
type Config struct {
	// NATSURL, when set, measures the stack running on that NATS server
	// instead of starting an embedded one; GatewayURL is its gateway.
	NATSURL    string
	GatewayURL string
	// Mode is ModeFast, ModeDurable or ModeBoth (embedded only).
	Mode string
	// Concurrency is the number of concurrent callers of closed-loop phases.
	Concurrency int
	// Duration bounds each phase; Ops, when > 0, ends a phase after that
	// many operations, whichever comes first.
	Duration time.Duration
	Ops      int
	// Size is the value size in bytes.
	Size int
	// Keys is the number of keys the read phases read.
	Keys int
	// CatchUp is how many messages behind the catch-up replica starts.
	CatchUp int
	// MemoryKeys is how many keys the replica of the memory phase holds.
	MemoryKeys int
	// Repeat is how many times each mode is measured; the report shows
	// medians.
	Repeat int
	// Replicas is the number of replicas of the embedded stack.
	Replicas int
	// Stack is StackProcess (the default when Command is set) or
	// StackInProcess.
	Stack string
	// Window bounds the raw async baseline's publishes awaiting an ack.
	Window int
	// Only, when not empty, runs only these sections (writes, ryw, reads,
	// sizes, txn, apply, catchup, memory, soak). The soak runs only when
	// named, and alone.
	Only []string
	// Dir is where temporary directories go; "" is the system's.
	Dir string
	// Command returns the command that runs the tidemark binary with args:
	// `tidemark dev` for StackProcess, and `tidemark replica` for the
	// memory phase, which needs a process of its own (nil skips it).
	Command func(args ...string) *exec.Cmd
	// Progress receives a line as each phase starts; nil discards them.
	Progress io.Writer
	// Logger receives the components' logs.
	Logger zerolog.Logger
	// Soak configures the soak section.
	Soak SoakConfig

	devProcess bool // NATSURL and GatewayURL are a `tidemark dev` this run started
}

// Sections of a run, in the order they run.
var Sections = []string{"writes", "ryw", "reads", "sizes", "txn", "apply", "catchup", "memory", "soak"}

// New returns cfg with defaults for the zero fields.
func New(cfg Config) Config {
	if cfg.Mode == "" {
		cfg.Mode = DefaultMode
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Duration <= 0 && cfg.Ops <= 0 {
		cfg.Duration = DefaultDuration
	}
	if cfg.Size < 0 {
		cfg.Size = 0
	} else if cfg.Size == 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Keys <= 0 {
		cfg.Keys = DefaultKeys
	}
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = DefaultCatchUp
	}
	if cfg.MemoryKeys <= 0 {
		cfg.MemoryKeys = DefaultMemoryKeys
	}
	if cfg.Repeat <= 0 {
		cfg.Repeat = DefaultRepeat
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = DefaultReplicas
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Stack == "" {
		cfg.Stack = StackInProcess
		if cfg.Command != nil {
			cfg.Stack = StackProcess
		}
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	return cfg
}

// ErrConfig reports a configuration the benchmark cannot run.
var ErrConfig = errors.New("bench: invalid configuration")

func (c Config) validate() error {
	switch c.Mode {
	case ModeFast, ModeDurable, ModeBoth:
	default:
		return fmt.Errorf("%w: mode %q: want %s, %s or %s", ErrConfig, c.Mode, ModeFast, ModeDurable, ModeBoth)
	}
	for _, s := range c.Only {
		if !contains(Sections, s) {
			return fmt.Errorf("%w: section %q: want one of %v", ErrConfig, s, Sections)
		}
	}
	if contains(c.Only, "soak") && !c.soakOnly() {
		return fmt.Errorf("%w: the soak runs alone (--only soak)", ErrConfig)
	}
	if c.soakOnly() && c.NATSURL != "" {
		return fmt.Errorf("%w: the soak starts stacks of its own; it cannot measure a running one", ErrConfig)
	}
	switch {
	case c.Stack != StackProcess && c.Stack != StackInProcess:
		return fmt.Errorf("%w: stack %q: want %s or %s", ErrConfig, c.Stack, StackProcess, StackInProcess)
	case c.Stack == StackProcess && c.Command == nil && c.NATSURL == "":
		return fmt.Errorf("%w: stack %s needs the tidemark command", ErrConfig, StackProcess)
	}
	if c.Size > 1<<20 {
		return fmt.Errorf("%w: size %d: at most 1 MiB", ErrConfig, c.Size)
	}
	return nil
}

func (c Config) modes() []string {
	switch {
	case c.NATSURL != "":
		return []string{ModeRemote}
	case c.Mode == ModeBoth:
		return []string{ModeFast, ModeDurable}
	}
	return []string{c.Mode}
}

func (c Config) runs(section string) bool {
	return (len(c.Only) == 0 && section != "soak") || contains(c.Only, section)
}

// Run measures Tidemark and its baselines in every mode of cfg (see New
// for the defaults) and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = New(cfg)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now().UTC(), Settings: Settings{
		CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Concurrency: cfg.Concurrency,
		Ops: cfg.Ops, Size: cfg.Size, Keys: cfg.Keys, CatchUp: cfg.CatchUp, MemoryKeys: cfg.MemoryKeys,
		Repeat: cfg.Repeat, Remote: cfg.NATSURL != "",
	}}
	if !rep.Settings.Remote {
		rep.Settings.Stack = cfg.Stack
	}
	if cfg.soakOnly() {
		sc := cfg.Soak.withDefaults()
		rep.Settings.Soak = &sc
	}
	if cfg.Duration > 0 {
		rep.Settings.Duration = cfg.Duration.String()
	}
	for _, mode := range cfg.modes() {
		var runs [][]Row
		var soak []SoakSample
		for i := 0; i < cfg.Repeat; i++ {
			fmt.Fprintf(cfg.Progress, "mode %s, run %d of %d\n", mode, i+1, cfg.Repeat)
			var rows []Row
			var err error
			if cfg.soakOnly() {
				var samples []SoakSample
				rows, samples, err = runSoak(ctx, cfg, mode)
				if soak == nil {
					soak = samples
				}
			} else {
				rows, err = runMode(ctx, cfg, mode)
			}
			if err != nil {
				return rep, fmt.Errorf("mode %s: %w", mode, err)
			}
			runs = append(runs, rows)
		}
		rep.Modes = append(rep.Modes, ModeReport{Mode: mode, Rows: median(runs), Soak: soak})
	}
	return rep, nil
}

// runMode measures one run of one mode on a fresh system.
func runMode(ctx context.Context, cfg Config, mode string) ([]Row, error) {
	if mode != ModeRemote && cfg.Stack == StackProcess {
		dev, err := startDev(ctx, cfg, mode)
		if err != nil {
			return nil, err
		}
		defer dev.stop()
		cfg.NATSURL, cfg.GatewayURL, cfg.devProcess = dev.natsURL, dev.gatewayURL, true
	}
	e, err := startEnv(ctx, cfg, mode)
	if err != nil {
		return nil, err
	}
	defer e.close()
	ph := &phases{e: e, cfg: cfg, value: value(cfg.Size)}
	steps := []struct {
		section string
		run     func(context.Context) error
	}{
		{"writes", ph.writes},
		{"ryw", ph.ryw},
		{"reads", ph.reads},
		{"sizes", ph.sizes},
		{"txn", ph.txns}, // txn.go
		{"apply", ph.apply},
		{"catchup", ph.catchUp},
		{"memory", ph.memory},
	}
	for _, s := range steps {
		if !cfg.runs(s.section) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.run(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.section, err)
		}
	}
	against(ph.rows)
	for i := range ph.rows {
		ph.rows[i].finish()
	}
	return ph.rows, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
