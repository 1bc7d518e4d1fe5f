package bench

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestParseProcStatus(t *testing.T) {
	status := "Name:\ttidemark\nVmPeak:\t 2000 kB\nVmHWM:\t  1536 kB\nVmRSS:\t  1024 kB\nThreads:\t12\n"
	hwm, rss, err := parseProcStatus(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hwm, int64(1536<<10); got != want {
		t.Fatalf("VmHWM=%d, want %d", got, want)
	}
	if got, want := rss, int64(1024<<10); got != want {
		t.Fatalf("VmRSS=%d, want %d", got, want)
	}
	if _, _, err := parseProcStatus(strings.NewReader("Name:\tx\n")); err == nil {
		t.Fatal("no VmHWM: want an error")
	}
}

func FuzzParseProcStatus(f *testing.F) {
	f.Add("VmHWM:\t  1536 kB\nVmRSS:\t  1024 kB\n")
	f.Add("VmHWM: -1 kB\n")
	f.Fuzz(func(t *testing.T, s string) {
		hwm, rss, err := parseProcStatus(strings.NewReader(s))
		if err == nil && (hwm <= 0 || rss < 0) {
			t.Fatalf("parseProcStatus(%q)=%d, %d without error", s, hwm, rss)
		}
	})
}

func TestMedian(t *testing.T) {
	runs := [][]Row{
		{{Section: "s", Name: "a", Value: 1, Ratio: 0.5, goal: goal{minRatio: 1}}},
		{{Section: "s", Name: "a", Value: 3, Ratio: 1.5, goal: goal{minRatio: 1}}},
		{{Section: "s", Name: "a", Value: 2, Ratio: 1.0, goal: goal{minRatio: 1}}},
	}
	m := median(runs)
	if got, want := len(m), 1; got != want {
		t.Fatalf("rows=%d, want %d", got, want)
	}
	if got, want := m[0].Value, 2.0; got != want {
		t.Fatalf("Value=%v, want %v", got, want)
	}
	if m[0].Met == nil || !*m[0].Met {
		t.Fatalf("Met=%v, want true (median ratio 1.0 >= 1)", m[0].Met)
	}
	if got, want := m[0].Runs, 3; got != want {
		t.Fatalf("Runs=%d, want %d", got, want)
	}
}

func TestGoal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		goal   goal
		row    Row
		text   string
		met    bool
		margin float64
	}{
		{"ratio met", goal{minRatio: 2}, Row{Ratio: 3}, ">= 2x", true, 0.5},
		{"ratio missed", goal{minRatio: 2}, Row{Ratio: 1}, ">= 2x", false, -0.5},
		{"ratio of another row", goal{minRatio: 0.5, of: "HTTP alone: nothing"}, Row{Ratio: 3, TargetRatio: 0.25}, ">= 0.5x HTTP alone", false, -0.5},
		{"value", goal{minValue: 100}, Row{Value: 150}, ">= 100", true, 0.5},
		{"max value met", goal{maxValue: 4}, Row{Value: 3}, "<= 4.00", true, 0.25},
		{"max value missed", goal{maxValue: 4}, Row{Value: 5}, "<= 4.00", false, -0.25},
		{"p99 met", goal{maxP99: time.Millisecond}, Row{Ops: 1, P99: 250}, "p99 < 1ms", true, 0.75},
		{"p99 missed", goal{maxP99: time.Millisecond}, Row{Ops: 1, P99: 3000}, "p99 < 1ms", false, -2},
		{"p99 at the bound", goal{maxP99: time.Millisecond}, Row{Ops: 1, P99: 1000}, "p99 < 1ms", false, 0},
		{"p99 of nothing", goal{maxP99: time.Millisecond}, Row{}, "p99 < 1ms", false, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.row
			r.goal = tc.goal
			r.finish()
			if got, want := r.Target, tc.text; got != want {
				t.Errorf("Target=%q, want %q", got, want)
			}
			if r.Met == nil || *r.Met != tc.met {
				t.Errorf("Met=%v, want %v", r.Met, tc.met)
			}
			if got, want := r.Margin, tc.margin; math.Abs(got-want) > 1e-9 {
				t.Errorf("Margin=%v, want %v", got, want)
			}
		})
	}
}

// TestAgainst: a goal of another row is a ratio to that row of the same
// section, which the table shows next to the verdict.
func TestAgainst(t *testing.T) {
	rows := []Row{
		{Section: "reads", Name: "ceiling", Value: 1000},
		{Section: "writes", Name: "ceiling", Value: 400},
		{Section: "writes", Name: "gateway", Value: 300, Ratio: 3, goal: goal{minRatio: 0.7, of: "ceiling"}},
	}
	against(rows)
	for i := range rows {
		rows[i].finish()
	}
	g := rows[2]
	if got, want := g.TargetRatio, 0.75; got != want {
		t.Fatalf("TargetRatio=%v, want %v (of the writes row, not the reads one)", got, want)
	}
	if got, want := g.TargetBaseline, "ceiling"; got != want {
		t.Fatalf("TargetBaseline=%q, want %q", got, want)
	}
	if g.Met == nil || !*g.Met {
		t.Fatalf("Met=%v, want true (0.75x >= 0.7x)", g.Met)
	}
	var table bytes.Buffer
	rep := &Report{Modes: []ModeReport{{Mode: ModeFast, Rows: rows}}}
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "met by 7% (0.75x)") {
		t.Fatalf("table lacks the verdict and its ratio:\n%s", table.String())
	}
}

func TestPercentiles(t *testing.T) {
	r := &recorder{}
	for i := 1; i <= 1000; i++ {
		r.record(time.Duration(i)*time.Microsecond, nil)
	}
	s := merge(time.Second, []*recorder{r})
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 500 * time.Microsecond}, {99, 990 * time.Microsecond}, {99.9, 999 * time.Microsecond}, {100, time.Millisecond}} {
		if got := s.pct(tc.p); got != tc.want {
			t.Errorf("p%v=%v, want %v", tc.p, got, tc.want)
		}
	}
	if got, want := s.rate(), 1000.0; got != want {
		t.Fatalf("rate=%v, want %v", got, want)
	}
}

// TestRun runs every section but memory (which needs the tidemark binary)
// and the soak (which runs only when named) in fast mode, briefly, and
// checks that each produced its rows.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole benchmark briefly; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Each phase ends after its operations, not a time: on a busy machine
	// a short phase could end before its first operation, and a row with
	// no rate says nothing about the code. Duration bounds the phases that
	// count no operations, with room for a loaded machine.
	rep, err := Run(ctx, Config{
		Mode: ModeFast, Concurrency: 4, Duration: 2 * time.Second, Ops: 300, Keys: 50,
		CatchUp: 2000, MemoryKeys: 10, Dir: t.TempDir(), Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rep.Modes), 1; got != want {
		t.Fatalf("modes=%d, want %d", got, want)
	}
	seen := map[string]bool{}
	for _, r := range rep.Modes[0].Rows {
		seen[r.Section] = true
		if r.Section != "memory" && r.Value <= 0 {
			t.Errorf("%s / %s: value %v (%d ops, %s)", r.Section, r.Name, r.Value, r.Ops, r.Note)
		}
	}
	for _, s := range Sections {
		if !seen[s] && s != "soak" { // the soak runs only when named (TestSoak)
			t.Errorf("no rows for section %s", s)
		}
	}
	if seen["soak"] {
		t.Error("the soak ran without being named")
	}
	checkShapes(t, rep.Modes[0].Rows)
	var table, js bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "NATS KV Get") || !strings.Contains(js.String(), `"section": "catchup"`) ||
		!strings.Contains(js.String(), `"target_baseline": "`+httpCeiling+`"`) {
		t.Fatalf("report lacks rows:\n%s", table.String())
	}
}

// checkShapes checks the rows of a fast run that make each comparison like
// with like: every write row is compared with raw sync publish by the same
// callers, the gateways' target is of the empty HTTP handler, an ack to
// value row per gateway, and the value sizes each compared with the
// smallest.
func checkShapes(t *testing.T, rows []Row) {
	t.Helper()
	const sync = "raw JetStream sync publish"
	var gateways, acks, sizes int
	for _, r := range rows {
		switch {
		case r.Section == "writes" && (r.Name == "raw JetStream async publish" || r.Name == sync):
			if r.Baseline != "" {
				t.Errorf("writes / %s: compared with %q, want no baseline", r.Name, r.Baseline)
			}
		case r.Section == "writes":
			if r.Baseline != sync || r.Ratio <= 0 {
				t.Errorf("writes / %s: baseline %q ratio %v, want a ratio to %q", r.Name, r.Baseline, r.Ratio, sync)
			}
			if strings.Contains(r.Name, "(HTTP)") {
				gateways++
				if r.Met == nil || r.TargetBaseline != httpCeiling || r.TargetRatio <= 0 {
					t.Errorf("writes / %s: target %q of %q (%v), want one of %q", r.Name, r.Target, r.TargetBaseline, r.TargetRatio, httpCeiling)
				}
			}
			if r.Name == writerService && r.Target != ">= 0.6x" {
				t.Errorf("writes / %s: target %q, want >= 0.6x", r.Name, r.Target)
			}
		case r.Section == "ryw" && strings.HasPrefix(r.Name, "ack to value"):
			acks++
			if r.Met == nil || !strings.HasPrefix(r.Target, "p99 < ") || r.Ops == 0 || r.Errors > 0 {
				t.Errorf("ryw / %s: target %q, %d ops, %d errors (%s)", r.Name, r.Target, r.Ops, r.Errors, r.Note)
			}
		case r.Section == "sizes":
			sizes++
			if sizes > 1 && (r.Baseline != "gateway writes, 256 B values" || r.Ratio <= 0) {
				t.Errorf("sizes / %s: baseline %q ratio %v", r.Name, r.Baseline, r.Ratio)
			}
		}
	}
	if gateways == 0 || acks != gateways {
		t.Errorf("%d gateway write rows, %d ack to value rows: want one of each per gateway", gateways, acks)
	}
	if got, want := sizes, len(valueSizes); got != want {
		t.Errorf("%d sizes rows, want %d", got, want)
	}
}

// TestRunProcessStack runs the writes, reads and memory sections against
// `tidemark dev` in a process of its own, as tidemark-bench does by
// default, and checks that the dev process's gateway was measured.
func TestRunProcessStack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tidemark binary; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildTidemark(ctx, t)
	rep, err := Run(ctx, Config{
		Mode: ModeFast, Concurrency: 4, Duration: 300 * time.Millisecond, Ops: 300, Keys: 50,
		MemoryKeys: 500, Only: []string{"writes", "reads", "memory"}, Dir: t.TempDir(), Logger: zerolog.Nop(),
		Command: func(args ...string) *exec.Cmd { return exec.Command(bin, args...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Settings.Stack != StackProcess {
		t.Fatalf("stack %q, want %s", rep.Settings.Stack, StackProcess)
	}
	found := 0
	for _, r := range rep.Modes[0].Rows {
		if strings.HasPrefix(r.Name, gwDev) {
			found++
			if r.Value <= 0 || r.Ratio <= 0 {
				t.Errorf("%s / %s: value %v, ratio %v", r.Section, r.Name, r.Value, r.Ratio)
			}
		}
		if r.Section == "memory" && r.Value <= 0 {
			t.Errorf("memory: %+v", r)
		}
	}
	if found != 2 {
		t.Fatalf("%d rows of the dev process's gateway, want 2 (a write and a read row)", found)
	}
	if _, err := Run(ctx, Config{Only: []string{"soak", "writes"}}); !errors.Is(err, ErrConfig) {
		t.Fatalf("the soak with another section: %v, want ErrConfig", err)
	}
	if _, err := Run(ctx, Config{Stack: StackProcess}); !errors.Is(err, ErrConfig) {
		t.Fatalf("process stack without a command: %v, want ErrConfig", err)
	}
}

// buildTidemark builds the tidemark binary into a temporary directory.
func buildTidemark(ctx context.Context, t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tidemark")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/tidemark/tidemark/cmd/tidemark")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestSoak runs a small soak with a short compaction cycle: compaction
// must bound the stream (it holds fewer messages than were written), and
// every row and sample must be filled in.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tidemark binary; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildTidemark(ctx, t)
	// Enough writes to take seconds, while compaction looks every 100ms
	// and keeps only the last 100ms of writes for deduplication.
	const writes, every = 30000, 5000
	rep, err := Run(ctx, Config{
		Mode: ModeFast, Concurrency: 8, Only: []string{"soak"}, Dir: t.TempDir(), Logger: zerolog.Nop(),
		Soak: SoakConfig{Writes: writes, Keys: 200, Every: every, Size: 64, Compare: 2 * every, Set: []string{
			"compaction.interval=100ms", "compaction.snapshot_messages=500", "compaction.window_messages=200",
			"stream.duplicate_window=100ms",
		}},
		Command: func(args ...string) *exec.Cmd { return exec.Command(bin, args...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Modes[0]
	if got, want := len(m.Soak), writes/every; got != want {
		t.Fatalf("%d samples, want %d", got, want)
	}
	last := m.Soak[len(m.Soak)-1]
	if last.StreamFirst <= 1 || last.StreamMessages >= writes {
		t.Fatalf("after %d writes the stream starts at %d and holds %d messages: not compacted", writes, last.StreamFirst, last.StreamMessages)
	}
	for _, s := range m.Soak {
		if s.BadgerBytes <= 0 || s.RSSBytes <= 0 || s.Rate <= 0 || s.StreamBytes == 0 {
			t.Errorf("sample %+v: a size or rate is missing", s)
		}
	}
	if got, want := len(m.Rows), 7; got != want {
		t.Fatalf("%d rows, want %d: %+v", got, want, m.Rows)
	}
	for i, r := range m.Rows {
		if r.Value <= 0 || (i > 0) != (r.Met != nil) {
			t.Errorf("row %s: value %v, met %v (every row but the baseline has a target)", r.Name, r.Value, r.Met)
		}
	}
	var out bytes.Buffer
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "soak, compaction on:") {
		t.Fatalf("table without the soak's samples:\n%s", out.String())
	}
}
