package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one measurement: Tidemark's figure and, where there is one, the
// baseline measured in the same run and the ratio between them.
type Row struct {
	// Section groups rows: writes, ryw, reads, sizes, txn, apply,
	// catchup, memory.
	Section string `json:"section"`
	// Name says what was measured.
	Name string `json:"name"`
	// Value is the figure, in Unit.
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// P50, P99 and P999 are latency percentiles in microseconds, when
	// latency was measured.
	P50  float64 `json:"p50_us,omitempty"`
	P99  float64 `json:"p99_us,omitempty"`
	P999 float64 `json:"p999_us,omitempty"`
	// Ops and Errors count the operations of the phase.
	Ops    int `json:"ops,omitempty"`
	Errors int `json:"errors,omitempty"`
	// Baseline names the row this one is compared with; Ratio is
	// Value / baseline Value.
	Baseline string  `json:"baseline,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
	// Target states the goal, when there is one, and Met whether this run
	// reached it.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	// Margin is how far the figure the target bounds is from the target,
	// as a fraction of the target: positive when met, negative when
	// missed.
	Margin float64 `json:"margin,omitempty"`
	// TargetBaseline names the row of the same section a ratio target is
	// of, when it is not Baseline; TargetRatio is Value / its Value.
	TargetBaseline string  `json:"target_baseline,omitempty"`
	TargetRatio    float64 `json:"target_ratio,omitempty"`
	// Note adds what a reader needs to read the row right.
	Note string `json:"note,omitempty"`
	// Runs is how many runs the row is the median of.
	Runs int `json:"runs,omitempty"`

	goal goal // how Met is decided
}

// goal is a row's target: a minimum ratio (to the row's baseline, or to
// the row of the same section named of), a minimum or maximum value, or a
// maximum p99 latency.
type goal struct {
	minRatio float64
	of       string
	minValue float64
	maxValue float64
	maxP99   time.Duration
}

func (g goal) set() bool { return g.minRatio > 0 || g.minValue > 0 || g.maxValue > 0 || g.maxP99 > 0 }

func (g goal) text() string {
	switch {
	case g.minRatio > 0 && g.of != "":
		return fmt.Sprintf(">= %gx %s", g.minRatio, short(g.of))
	case g.minRatio > 0:
		return fmt.Sprintf(">= %gx", g.minRatio)
	case g.minValue > 0:
		return ">= " + num(g.minValue)
	case g.maxValue > 0:
		return "<= " + num(g.maxValue)
	case g.maxP99 > 0:
		return fmt.Sprintf("p99 < %v", g.maxP99)
	}
	return ""
}

// margin is how far r is from the goal, as a fraction of the goal:
// positive when r is better than the goal, negative when worse.
func (g goal) margin(r Row) float64 {
	switch {
	case g.minRatio > 0:
		return g.ratio(r)/g.minRatio - 1
	case g.minValue > 0:
		return r.Value/g.minValue - 1
	case g.maxValue > 0:
		return 1 - r.Value/g.maxValue
	case r.Ops == 0:
		return -1 // nothing measured
	}
	return 1 - r.P99/micros(g.maxP99)
}

func (g goal) met(r Row) bool {
	switch {
	case g.minRatio > 0:
		return g.ratio(r) >= g.minRatio
	case g.minValue > 0:
		return r.Value >= g.minValue
	case g.maxValue > 0:
		return r.Value <= g.maxValue
	}
	return r.Ops > 0 && r.P99 < micros(g.maxP99)
}

// ratio is the ratio of r that the goal bounds.
func (g goal) ratio(r Row) float64 {
	if g.of != "" {
		return r.TargetRatio
	}
	return r.Ratio
}

// short is a row's name up to its first colon: enough to name it in a
// target.
func short(name string) string {
	if i := strings.IndexByte(name, ':'); i > 0 {
		return name[:i]
	}
	return name
}

// key identifies a row across runs.
func (r Row) key() string { return r.Section + "\x00" + r.Name }

// ModeReport is the rows of one durability mode.
type ModeReport struct {
	// Mode is ModeFast, ModeDurable or ModeRemote.
	Mode string `json:"mode"`
	Rows []Row  `json:"rows"`
	// Soak is the soak's samples, when it ran (of the first run).
	Soak []SoakSample `json:"soak,omitempty"`
}

// Report is the outcome of a benchmark run.
type Report struct {
	// Command is the command line that produced the report.
	Command string `json:"command,omitempty"`
	// Started is when the run started.
	Started time.Time `json:"started"`
	// Settings are the run's knobs.
	Settings Settings `json:"settings"`
	// Modes are the results per mode.
	Modes []ModeReport `json:"modes"`
}

// Settings records the knobs of a run in the report.
type Settings struct {
	CPUs        int    `json:"cpus"`
	GoVersion   string `json:"go"`
	Concurrency int    `json:"concurrency"`
	Duration    string `json:"duration,omitempty"`
	Ops         int    `json:"ops,omitempty"`
	Size        int    `json:"size"`
	Keys        int    `json:"keys"`
	CatchUp     int    `json:"catchup"`
	MemoryKeys  int    `json:"memory_keys"`
	Repeat      int    `json:"repeat"`
	Remote      bool   `json:"remote,omitempty"`
	Stack       string `json:"stack,omitempty"`
	// Soak is the soak's configuration, when it ran.
	Soak *SoakConfig `json:"soak,omitempty"`
}

// median combines the rows of several runs of one mode: each figure is the
// median of the runs' figures, ratios included (a ratio is computed within
// each run, then the median taken).
func median(runs [][]Row) []Row {
	if len(runs) == 0 {
		return nil
	}
	var out []Row
	for _, first := range runs[0] {
		var all []Row
		for _, run := range runs {
			for _, r := range run {
				if r.key() == first.key() {
					all = append(all, r)
					break
				}
			}
		}
		m := first
		m.Value = med(all, func(r Row) float64 { return r.Value })
		m.P50 = med(all, func(r Row) float64 { return r.P50 })
		m.P99 = med(all, func(r Row) float64 { return r.P99 })
		m.P999 = med(all, func(r Row) float64 { return r.P999 })
		m.Ratio = med(all, func(r Row) float64 { return r.Ratio })
		m.TargetRatio = med(all, func(r Row) float64 { return r.TargetRatio })
		m.Ops = int(med(all, func(r Row) float64 { return float64(r.Ops) }))
		m.Errors = int(med(all, func(r Row) float64 { return float64(r.Errors) }))
		m.Runs = len(all)
		m.finish()
		out = append(out, m)
	}
	return out
}

func med(rs []Row, f func(Row) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// finish sets Target, Met and Margin from the row's goal.
func (r *Row) finish() {
	if !r.goal.set() {
		return
	}
	r.Target = r.goal.text()
	r.Margin = r.goal.margin(*r)
	met := r.goal.met(*r)
	r.Met = &met
}

// against sets the TargetRatio of each row whose goal is a ratio to
// another row of its section, once the section's rows are measured.
func against(rows []Row) {
	for i := range rows {
		r := &rows[i]
		if r.goal.of == "" {
			continue
		}
		r.TargetBaseline = r.goal.of
		for _, b := range rows {
			if b.Section == r.Section && b.Name == r.goal.of && b.Value > 0 {
				r.TargetRatio = r.Value / b.Value
			}
		}
	}
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteTable prints the report as one table per mode.
func (rep *Report) WriteTable(w io.Writer) error {
	s := rep.Settings
	for _, m := range rep.Modes {
		if s.Soak != nil {
			fmt.Fprintf(w, "\nmode %s: %d CPUs, %d workers, soak of %d writes of %d-byte values over %d keys, median of %d run(s)\n",
				m.Mode, s.CPUs, s.Concurrency, s.Soak.Writes, s.Soak.Size, s.Soak.Keys, s.Repeat)
		} else {
			fmt.Fprintf(w, "\nmode %s: %d CPUs, %d workers, %s, %d-byte values, median of %d run(s)\n",
				m.Mode, s.CPUs, s.Concurrency, phaseLength(s), s.Size, s.Repeat)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "section\tmeasurement\tvalue\tunit\tp50\tp99\tp99.9\tratio\tvs\ttarget\t\t")
		section := ""
		for _, r := range m.Rows {
			sec := r.Section
			if sec == section {
				sec = ""
			}
			section = r.Section
			ratio, met := "", ""
			if r.Ratio > 0 {
				ratio = fmt.Sprintf("%.2fx", r.Ratio)
			}
			if r.Met != nil {
				met = verdict(r)
			}
			p50, p99, p999 := us(r.P50), us(r.P99), us(r.P999)
			if r.P999 > 0 && r.P50 == 0 {
				p50 = "0" // a measured zero: reads that did not wait
			}
			if r.P999 > 0 && r.P99 == 0 {
				p99 = "0"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", sec, r.Name, num(r.Value), r.Unit,
				p50, p99, p999, ratio, r.Baseline, r.Target, met)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, r := range m.Rows {
			if r.Note != "" {
				fmt.Fprintf(w, "  %s / %s: %s\n", r.Section, r.Name, r.Note)
			}
		}
		if err := writeSoak(w, m.Soak); err != nil {
			return err
		}
	}
	return nil
}

// writeSoak prints the soak's samples as a table.
func writeSoak(w io.Writer, samples []SoakSample) error {
	if len(samples) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nsoak, compaction on:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "writes\tstream MiB\tstream messages\tstream first seq\tbadger MiB\trss MiB\twrites/s\t")
	for _, s := range samples {
		fmt.Fprintf(tw, "%d\t%.1f\t%d\t%d\t%.1f\t%.1f\t%.0f\t\n", s.Writes, float64(s.StreamBytes)/(1<<20), s.StreamMessages,
			s.StreamFirst, float64(s.BadgerBytes)/(1<<20), float64(s.RSSBytes)/(1<<20), s.Rate)
	}
	return tw.Flush()
}

// verdict says whether r met its target and by how much: by the margin,
// and for a ratio to another row, the ratio itself.
func verdict(r Row) string {
	v := "MISSED"
	if *r.Met {
		v = "met"
	}
	v += fmt.Sprintf(" by %.0f%%", math.Abs(r.Margin)*100)
	if r.TargetBaseline != "" {
		v += fmt.Sprintf(" (%.2fx)", r.TargetRatio)
	}
	return v
}

func phaseLength(s Settings) string {
	switch {
	case s.Ops > 0 && s.Duration != "":
		return fmt.Sprintf("%s or %d ops per phase", s.Duration, s.Ops)
	case s.Ops > 0:
		return fmt.Sprintf("%d ops per phase", s.Ops)
	}
	return s.Duration + " per phase"
}

// num formats a figure with a few significant digits.
func num(v float64) string {
	switch {
	case v == 0:
		return "-"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// us formats a latency in microseconds.
func us(v float64) string {
	switch {
	case v == 0:
		return ""
	case v >= 10000:
		return fmt.Sprintf("%.0fms", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.1fms", v/1000)
	}
	return fmt.Sprintf("%.0fµs", v)
}

// latencyRow fills a row's rate and latencies from a sample.
func latencyRow(section, name string, s sample) Row {
	return Row{
		Section: section, Name: name, Value: s.rate(), Unit: "ops/s",
		P50: micros(s.pct(50)), P99: micros(s.pct(99)), P999: micros(s.pct(99.9)),
		Ops: s.ops, Errors: s.errs, Note: errNote(s),
	}
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

func errNote(s sample) string {
	if s.errs == 0 {
		return ""
	}
	msg := ""
	if s.firstErr != nil {
		msg = s.firstErr.Error()
	}
	if len(msg) > 160 {
		msg = msg[:160] + "..."
	}
	return fmt.Sprintf("%d errors, first: %s", s.errs, strings.TrimSpace(msg))
}

// compare sets r's baseline and ratio against base.
func compare(r *Row, base Row) {
	r.Baseline = base.Name
	if base.Value > 0 {
		r.Ratio = r.Value / base.Value
	}
}
