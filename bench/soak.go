package bench

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/stream"
)

// Defaults of the soak (SoakConfig).
const (
	DefaultSoakWrites  = 10_000_000
	DefaultSoakKeys    = 100_000
	DefaultSoakEvery   = 1_000_000
	DefaultSoakSize    = 256
	DefaultSoakCompare = 2_000_000
)

// Targets of the soak.
const (
	// soakFlat bounds the spread of each size over the samples the
	// flatness target looks at: the largest within 1.2x the smallest.
	soakFlat = 1.2
	// soakStreamBound bounds the stream's bytes as a multiple of the live
	// data set (keys x (key + value bytes)).
	soakStreamBound = 4.0
	// soakThroughput is the least write rate with compaction on, as a
	// fraction of the rate with it off over the same writes.
	soakThroughput = 0.9
)

// SoakConfig configures the soak section, which runs only when asked for
// (Config.Only): it writes Writes values of Size bytes over Keys keys through
// the gateway of a `tidemark dev` with compaction on, and samples the sizes
// every Every writes; then it writes the first Compare of them to a fresh
// `tidemark dev` with compaction off, for the throughput cost. Set holds
// configuration settings (key=value, as `tidemark dev --set` takes them) for
// both stacks, such as a shorter compaction cycle.
type SoakConfig struct {
	Writes, Keys, Every, Size, Compare int
	Set                                []string
}

func (s SoakConfig) withDefaults() SoakConfig {
	if s.Writes <= 0 {
		s.Writes = DefaultSoakWrites
	}
	if s.Keys <= 0 {
		s.Keys = DefaultSoakKeys
	}
	if s.Every <= 0 {
		s.Every = min(DefaultSoakEvery, s.Writes)
	}
	if s.Size <= 0 {
		s.Size = DefaultSoakSize
	}
	if s.Compare <= 0 {
		s.Compare = DefaultSoakCompare
	}
	s.Compare = min(s.Compare, s.Writes)
	return s
}

// SoakSample is the state of the stack after Writes writes of the soak.
type SoakSample struct {
	Writes         int     `json:"writes"`
	StreamBytes    uint64  `json:"stream_bytes"`
	StreamMessages uint64  `json:"stream_messages"`
	StreamFirst    uint64  `json:"stream_first_seq"`
	BadgerBytes    int64   `json:"badger_bytes"`
	RSSBytes       int64   `json:"rss_bytes"`
	Rate           float64 `json:"writes_per_s"`
}

// soakOnly reports whether the run is the soak alone, which starts its own
// stacks.
func (c Config) soakOnly() bool { return len(c.Only) == 1 && c.Only[0] == "soak" }

// soakKey is the key of the soak's i-th write.
func soakKey(i, keys int) string { return fmt.Sprintf("soak/%06d", i%keys) }

// runSoak runs the soak in mode on stacks of its own and returns its rows
// and samples.
func runSoak(ctx context.Context, cfg Config, mode string) ([]Row, []SoakSample, error) {
	if cfg.Command == nil {
		return nil, nil, fmt.Errorf("%w: the soak runs tidemark dev and needs the tidemark command", ErrConfig)
	}
	sc := cfg.Soak.withDefaults()
	on, samples, err := soakStack(ctx, cfg, mode, sc, true, sc.Writes)
	if err != nil {
		return nil, samples, fmt.Errorf("compaction on: %w", err)
	}
	off, _, err := soakStack(ctx, cfg, mode, sc, false, sc.Compare)
	if err != nil {
		return nil, samples, fmt.Errorf("compaction off: %w", err)
	}
	return soakRows(sc, on, off, samples), samples, nil
}

// soakRun is what one soak stack measured: the write rate over its first
// Compare writes.
type soakRun struct {
	rate float64
	errs int
}

// soakStack writes n values to a fresh `tidemark dev` with compaction on or
// off, sampling every sc.Every writes.
func soakStack(ctx context.Context, cfg Config, mode string, sc SoakConfig, compaction bool, n int) (soakRun, []SoakSample, error) {
	fmt.Fprintf(cfg.Progress, "  soak: %d writes of %d bytes over %d keys, compaction %v\n", n, sc.Size, sc.Keys, compaction)
	args := []string{"--set", "compaction.enabled=" + strconv.FormatBool(compaction)}
	for _, kv := range sc.Set {
		args = append(args, "--set", kv)
	}
	dev, err := startDev(ctx, cfg, mode, args...)
	if err != nil {
		return soakRun{}, nil, err
	}
	defer dev.stop()
	nc, err := nats.Connect(dev.natsURL)
	if err != nil {
		return soakRun{}, nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return soakRun{}, nil, err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency, MaxConnsPerHost: cfg.Concurrency}}
	defer client.CloseIdleConnections()
	p := &phases{e: &env{http: client}, cfg: cfg}
	val := value(sc.Size)
	put := func(base int) op {
		return func(ctx context.Context, i int) error {
			_, err := p.httpPut(ctx, dev.gatewayURL, soakKey(base+i, sc.Keys), val, "")
			return err
		}
	}
	var (
		run      soakRun
		samples  []SoakSample
		elapsed  time.Duration
		cmpTime  time.Duration
		cmpWrote int
	)
	for done := 0; done < n; {
		chunk := min(sc.Every, n-done)
		s := closedLoop(ctx, load{workers: cfg.Concurrency, ops: chunk}, put(done))
		if err := ctx.Err(); err != nil {
			return run, samples, err
		}
		run.errs += s.errs
		if s.errs > chunk/100 {
			return run, samples, fmt.Errorf("writes %d-%d: %s", done, done+chunk, errNote(s))
		}
		done += chunk
		elapsed += s.elapsed
		if cmpWrote < sc.Compare {
			cmpWrote += chunk
			cmpTime += s.elapsed
		}
		smp, err := sampleSoak(ctx, js, dev)
		if err != nil {
			return run, samples, err
		}
		smp.Writes, smp.Rate = done, float64(chunk-s.errs)/s.elapsed.Seconds()
		samples = append(samples, smp)
		fmt.Fprintf(cfg.Progress, "  soak: %d writes, stream %s in %d messages, badger %s, rss %s, %.0f writes/s\n",
			done, mib(int64(smp.StreamBytes)), smp.StreamMessages, mib(smp.BadgerBytes), mib(smp.RSSBytes), smp.Rate)
	}
	run.rate = float64(cmpWrote) / cmpTime.Seconds()
	return run, samples, nil
}

// sampleSoak reads the sizes of dev's stream, replicas and process.
func sampleSoak(ctx context.Context, js jetstream.JetStream, dev *devProcess) (SoakSample, error) {
	s, err := js.Stream(ctx, stream.DefaultName)
	if err != nil {
		return SoakSample{}, fmt.Errorf("stream: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return SoakSample{}, fmt.Errorf("stream info: %w", err)
	}
	smp := SoakSample{StreamBytes: info.State.Bytes, StreamMessages: info.State.Msgs, StreamFirst: info.State.FirstSeq}
	dirs, err := filepath.Glob(filepath.Join(dev.dir, "data", "replica-*"))
	if err != nil {
		return smp, err
	}
	for _, d := range dirs {
		n, err := dirBytes(d)
		if err != nil {
			return smp, err
		}
		smp.BadgerBytes += n
	}
	if _, smp.RSSBytes, err = procMemory(dev.proc.Pid()); err != nil {
		return smp, err
	}
	return smp, nil
}

// dirBytes is the disk space the files under dir take (allocated blocks:
// Badger's memory-mapped files are sparse).
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed while walking (compaction, value log GC)
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		n += allocated(info)
		return nil
	})
	return n, err
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// soakRows turns the soak's measurements into rows with their targets.
func soakRows(sc SoakConfig, on, off soakRun, samples []SoakSample) []Row {
	const sec = "soak"
	live := float64(sc.Keys) * float64(sc.Size+len(soakKey(0, sc.Keys)))
	rows := []Row{
		{Section: sec, Name: fmt.Sprintf("compaction off: first %d writes", sc.Compare), Value: off.rate, Unit: "writes/s", Errors: off.errs},
		{Section: sec, Name: fmt.Sprintf("compaction on: first %d writes", sc.Compare), Value: on.rate, Unit: "writes/s", Errors: on.errs,
			goal: goal{minRatio: soakThroughput}},
	}
	compare(&rows[1], rows[0])
	if len(samples) == 0 {
		return rows
	}
	last := samples[len(samples)-1]
	rows = append(rows, Row{
		Section: sec, Name: "stream bytes at the end / live data", Value: float64(last.StreamBytes) / live, Unit: "x",
		goal: goal{maxValue: soakStreamBound},
		Note: fmt.Sprintf("live data: %d keys of %d-byte values, %s", sc.Keys, sc.Size, mib(int64(live))),
	})
	at := flatPoints(sc, samples)
	if len(at) < 2 {
		return rows
	}
	var points []string
	for _, s := range at {
		points = append(points, strconv.Itoa(s.Writes))
	}
	for _, f := range []struct {
		name string
		of   func(SoakSample) float64
	}{
		{"stream bytes", func(s SoakSample) float64 { return float64(s.StreamBytes) }},
		{"stream messages", func(s SoakSample) float64 { return float64(s.StreamMessages) }},
		{"badger bytes", func(s SoakSample) float64 { return float64(s.BadgerBytes) }},
		{"rss", func(s SoakSample) float64 { return float64(s.RSSBytes) }},
	} {
		lo, hi := math.Inf(1), 0.0
		for _, s := range at {
			lo, hi = min(lo, f.of(s)), max(hi, f.of(s))
		}
		spread := math.Inf(1)
		if lo > 0 {
			spread = hi / lo
		}
		rows = append(rows, Row{
			Section: sec, Name: f.name + ": largest / smallest", Value: spread, Unit: "x",
			goal: goal{maxValue: soakFlat}, Note: "at " + strings.Join(points, ", ") + " writes",
		})
	}
	return rows
}

// flatPoints are the samples the flatness target compares: those nearest
// to 20%, 50% and 100% of the writes (2 M, 5 M and 10 M of the full soak).
func flatPoints(sc SoakConfig, samples []SoakSample) []SoakSample {
	var at []SoakSample
	for _, frac := range []float64{0.2, 0.5, 1} {
		want := int(frac * float64(sc.Writes))
		best := samples[0]
		for _, s := range samples {
			if abs(s.Writes-want) < abs(best.Writes-want) {
				best = s
			}
		}
		if len(at) == 0 || at[len(at)-1].Writes != best.Writes {
			at = append(at, best)
		}
	}
	return at
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// allocated is the disk space a file takes: its allocated blocks where the
// file system says, else its size.
func allocated(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return info.Size()
}
