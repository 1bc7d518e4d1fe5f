package chaos

import (
	"github.com/tidemark/tidemark/internal/backoff"
	"github.com/tidemark/tidemark/internal/natsconn"

	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/chaos/checker"
	"github.com/tidemark/tidemark/chaos/history"
	"github.com/tidemark/tidemark/chaos/workload"
	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/writer"
)

// Defaults of Options.
const (
	DefaultDuration        = 30 * time.Second
	DefaultSessions        = 8
	DefaultConvergeTimeout = 2 * time.Minute
	DefaultMinGap          = time.Second
	DefaultMaxGap          = 3 * time.Second
	DefaultMinHold         = 500 * time.Millisecond
	DefaultMaxHold         = 3 * time.Second
)

// Options configure one run.
type Options struct {
	// Seed drives every random choice of the run (workload and faults).
	Seed uint64
	// Dir receives the processes' data, their logs and the history.
	Dir string
	// Binaries are the programs to run.
	Binaries Binaries
	// Topology is what to run.
	Topology Topology
	// Sessions is the number of concurrent client sessions.
	Sessions int
	// Duration is how long the workload (and the faults) run.
	Duration time.Duration
	// Faults are the kinds to inject; none injects nothing.
	Faults []FaultKind
	// MinGap/MaxGap bound the quiet time between two faults and
	// MinHold/MaxHold how long one lasts.
	MinGap, MaxGap, MinHold, MaxHold time.Duration
	// ConvergeTimeout bounds how long replicas may take to apply the whole
	// stream once every fault is healed.
	ConvergeTimeout time.Duration
	// SessionOrder makes the workload send writes with session ordering.
	SessionOrder bool
	// RacePairs and Reusers run the workload's racing pairs (same-session
	// writes through two gateways at once) and write-id reusers besides
	// the sessions.
	RacePairs, Reusers int
	// Logger receives the harness's progress.
	Logger zerolog.Logger
}

func (o *Options) setDefaults() {
	o.Topology.setDefaults()
	if o.Sessions <= 0 {
		o.Sessions = DefaultSessions
	}
	if o.Duration <= 0 {
		o.Duration = DefaultDuration
	}
	if o.ConvergeTimeout <= 0 {
		o.ConvergeTimeout = DefaultConvergeTimeout
	}
	if o.MinGap <= 0 {
		o.MinGap = DefaultMinGap
	}
	if o.MaxGap <= 0 {
		o.MaxGap = DefaultMaxGap
	}
	if o.MinHold <= 0 {
		o.MinHold = DefaultMinHold
	}
	if o.MaxHold <= 0 {
		o.MaxHold = DefaultMaxHold
	}
}

// Result is the outcome of one run.
type Result struct {
	Seed     uint64        `json:"seed"`
	Topology string        `json:"topology"`
	Duration time.Duration `json:"duration"`
	// Faults are the faults injected, in order.
	Faults []Fault `json:"faults"`
	// Converge is how long the replicas took to apply the whole stream
	// after every fault was healed and the writers stopped.
	Converge time.Duration `json:"converge"`
	// GroupCommitted counts the messages of the final stream that the
	// writers' group commit stored (groupCommitted).
	GroupCommitted int `json:"group_committed"`
	// Crashes lists the processes that exited without being killed.
	Crashes []string `json:"crashes,omitempty"`
	// Check is the checker's report.
	Check *checker.Report `json:"check"`
	// History is the file the history was written to.
	History string `json:"history"`
	// Error says why the run could not finish, if it could not.
	Error string `json:"error,omitempty"`
}

// OK reports whether the run finished with no violation.
func (r *Result) OK() bool {
	return r.Error == "" && len(r.Crashes) == 0 && r.FaultErrors() == 0 && r.Check != nil && r.Check.OK()
}

// FaultErrors counts the faults that could not be injected or whose target
// did not recover in time.
func (r *Result) FaultErrors() int {
	n := 0
	for _, f := range r.Faults {
		if f.Error != "" {
			n++
		}
	}
	return n
}

// Run starts a cluster, runs the workload while injecting faults, heals
// everything, waits for the replicas to converge, dumps the final states
// and checks the history. An error means the harness itself failed; a run
// that finds violations returns a Result that says so, and no error.
func Run(ctx context.Context, o Options) (*Result, error) {
	o.setDefaults()
	res := &Result{Seed: o.Seed, Topology: o.Topology.String()}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	log := o.Logger.With().Uint64("seed", o.Seed).Logger()
	c, err := StartCluster(ctx, o.Dir, o.Binaries, o.Topology, log)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	log.Info().Str("topology", res.Topology).Str("dir", o.Dir).Msg("cluster ready")

	wconn, err := natsconn.Connect(ctx, natsconn.ConnectConfig{URL: c.FrontURL(), Name: "chaos-workload", Logger: log})
	if err != nil {
		return nil, err
	}
	defer wconn.Close()

	start := time.Now()
	// The workload runs for Duration, and on until every fault kind has
	// been injected once (for at most another Duration).
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	in := &injector{c: c, rng: rand.New(rand.NewPCG(o.Seed, 0xfa)), kinds: o.Faults, start: start,
		minGap: o.MinGap, maxGap: o.MaxGap, minHold: o.MinHold, maxHold: o.MaxHold, firstRound: make(chan struct{})}
	if len(o.Faults) == 0 {
		close(in.firstRound)
	}
	timerDone := make(chan struct{})
	defer func() { <-timerDone }()
	go func() {
		defer close(timerDone)
		defer stop()
		if backoff.Sleep(wctx, o.Duration) != nil {
			return
		}
		t := time.NewTimer(o.Duration)
		defer t.Stop()
		select {
		case <-in.firstRound:
		case <-t.C:
		case <-wctx.Done():
		}
	}()
	faultsDone := make(chan []Fault, 1)
	go func() {
		if len(o.Faults) == 0 {
			faultsDone <- nil
			return
		}
		faultsDone <- in.run(wctx)
	}()
	ops, err := workload.Run(wctx, workload.Config{
		Seed: o.Seed, Sessions: o.Sessions, Gateways: c.GatewayURLs(), NATS: wconn.Conn,
		Replicas: c.ReplicaIDs(), SessionOrder: o.SessionOrder, RacePairs: o.RacePairs, Reusers: o.Reusers,
		RunID: strconv.FormatUint(o.Seed, 36) + "x" + strconv.FormatInt(start.UnixNano()%1e9, 36),
	})
	stop()
	res.Faults = <-faultsDone
	res.Duration = time.Since(start)
	if err != nil {
		return nil, err
	}
	log.Info().Int("ops", len(ops)).Int("faults", len(res.Faults)).Msg("workload done; healing")

	// Heal, stop the writers so that nothing more is published (a write
	// may still be retrying inside one), and wait for the replicas.
	if err := c.healAll(); err != nil {
		return nil, err
	}
	for _, w := range c.writers {
		_ = w.proc.Close()
	}
	admin := c.adminT
	h := &history.History{Version: history.Version, Ops: ops, Epochs: in.epochs, Losses: in.losses}
	res.Converge, err = Converge(ctx, c.js, admin, c.ReplicaIDs(), o.ConvergeTimeout)
	if err != nil {
		res.Error = err.Error()
		log.Error().Err(err).Msg("no convergence")
	}
	final, err := dumpAll(ctx, c, admin)
	if err != nil {
		res.Error = strings.TrimPrefix(res.Error+"; ", "; ") + err.Error()
	}
	if final != nil {
		h.Final = final
		rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		final.Reads = FinalReads(rctx, c.ReadPaths(), final.Stream, ops)
		cancel()
	}
	res.History = filepath.Join(o.Dir, "history.json")
	if err := writeHistory(res.History, h); err != nil {
		return nil, err
	}
	res.Crashes = c.Crashes()
	if h.Final != nil {
		res.GroupCommitted = groupCommitted(h.Final.Stream)
	}
	res.Check = checker.Check(h)
	log.Info().Int("violations", res.Check.Violations()).Dur("converge", res.Converge).Int("group_committed", res.GroupCommitted).Msg("checked")
	return res, nil
}

// groupCommitMin is the writers' writer.group_commit_min in a campaign:
// two, so that the few sessions of a short run form batches.
const groupCommitMin = 2

// groupCommitted counts the messages of msgs stored by the writers' group
// commit: those of atomic batches but the batches of a conditional session
// write, which are its order marker and itself, and of a transaction.
func groupCommitted(msgs []history.Message) int {
	batches := map[string][]history.Message{}
	txns := map[string]bool{}
	for _, m := range msgs {
		if m.Batch != "" {
			batches[m.Batch] = append(batches[m.Batch], m)
			txns[m.Batch] = txns[m.Batch] || m.TxnSize > 0
		}
	}
	n := 0
	for id, b := range batches {
		if txns[id] || (len(b) == 2 && b[0].Kind == history.Marker && b[0].MsgID == writer.MarkerID(b[1].MsgID)) {
			continue
		}
		n += len(b)
	}
	return n
}

// dumpAll reads the stream and every replica.
func dumpAll(ctx context.Context, c *Cluster, t *client.NATS) (*history.Final, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	msgs, err := DumpStream(ctx, c.js, stream.Config{})
	if err != nil {
		return nil, err
	}
	st, err := stream.Open(ctx, c.js, stream.Config{})
	if err != nil {
		return nil, err
	}
	final := &history.Final{StreamID: st.ID(), Stream: msgs}
	var errs []string
	for _, id := range c.ReplicaIDs() {
		rep, err := DumpReplica(ctx, t, id, msgs)
		if err != nil {
			// The checker reports it; the other replicas are still checked.
			rep = history.Replica{ID: id, Error: err.Error()}
			errs = append(errs, err.Error())
		}
		final.Replicas = append(final.Replicas, rep)
	}
	if len(errs) > 0 {
		return final, errors.New(strings.Join(errs, "; "))
	}
	return final, nil
}

func writeHistory(path string, h *history.History) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := history.Encode(f, h); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ParseSeeds parses a comma-separated list of seeds.
func ParseSeeds(s string) ([]uint64, error) {
	var out []uint64
	for _, f := range splitList(s) {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("seed %q: want a non-negative integer", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no seeds in %q", s)
	}
	return out, nil
}
