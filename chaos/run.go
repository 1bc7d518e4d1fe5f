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
	// Compaction runs the replicas with an aggressive compaction cycle
	// (compactionSettings), so that the stream is purged many times during
	// the run, and records the stream as it is stored (Recorder), since
	// the stream at the end no longer holds its start. It cannot be
	// combined with the faults that replace the stream's history
	// (TailLoss, RecreateStream), whose checks need the whole of the
	// history they replace.
	Compaction bool
	// TTL gives some of the workload's puts a time to live; the stream is
	// recorded as with Compaction, and the run waits at the end until
	// every key's expiry is in the stream (replicas tick an idle stream).
	TTL bool
	// Watchers is the number of watchers the workload runs (Go client
	// watches over NATS, checked against the history).
	Watchers int
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
	// Compacted is how many messages compaction had removed from the
	// stream's start by the end of a run with Compaction.
	Compacted uint64 `json:"compacted,omitempty"`
	// Expired is how many times a key's time to live ran out in the
	// final stream.
	Expired int `json:"expired,omitempty"`
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
	var set []string
	if o.Compaction || o.TTL {
		for _, f := range o.Faults {
			if !recordable(f) {
				return nil, fmt.Errorf("chaos: fault %s cannot run with compaction or TTL keys", f)
			}
		}
	}
	if o.Compaction {
		set = compactionSettings
	}
	c, err := StartCluster(ctx, o.Dir, o.Binaries, o.Topology, log, set...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var rec *Recorder
	if o.Compaction || o.TTL {
		if rec, err = StartRecorder(ctx, c.admin.Conn, stream.Config{}); err != nil {
			return nil, err
		}
		defer rec.Stop()
	}
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
	ops, watches, err := workload.RunWatched(wctx, workload.Config{
		Seed: o.Seed, Sessions: o.Sessions, Gateways: c.GatewayURLs(), NATS: wconn.Conn,
		Replicas: c.ReplicaIDs(), SessionOrder: o.SessionOrder, RacePairs: o.RacePairs, Reusers: o.Reusers, TTL: o.TTL,
		Watchers: o.Watchers,
		RunID:    strconv.FormatUint(o.Seed, 36) + "x" + strconv.FormatInt(start.UnixNano()%1e9, 36),
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
	if o.TTL {
		if err := waitExpiries(ctx, c, rec); err != nil {
			return nil, err
		}
	}
	admin := c.adminT
	h := &history.History{Version: history.Version, Ops: ops, Epochs: in.epochs, Losses: in.losses, Watches: watches}
	res.Converge, err = Converge(ctx, c.js, admin, c.ReplicaIDs(), o.ConvergeTimeout)
	if err != nil {
		res.Error = err.Error()
		log.Error().Err(err).Msg("no convergence")
	}
	if rec != nil {
		if first, err := streamFirst(ctx, c.js); err == nil {
			res.Compacted = first - 1
		}
	}
	final, err := dumpAll(ctx, c, admin, rec)
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
		res.Expired = history.NewSnapshots(h.Final.Stream).Final.Expired
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

// recordable reports whether a run whose stream is recorded (Recorder)
// can inject f: not the faults that replace the stream's history.
func recordable(f FaultKind) bool { return f != TailLoss && f != RecreateStream }

// expiryWait bounds how long a run with TTL waits at the end for every
// key's expiry to be in the stream.
const expiryWait = 2 * time.Minute

// waitExpiries waits until the stream recorded by rec holds, after every
// put with a time to live, a message at or after its expiry: then every
// replica has expired every such key at the same position, and no replica
// publishes another clock tick, so that the stream no longer grows.
func waitExpiries(ctx context.Context, c *Cluster, rec *Recorder) error {
	ctx, cancel := context.WithTimeout(ctx, expiryWait)
	defer cancel()
	b := backoff.Backoff{Max: 200 * time.Millisecond}
	for {
		last, err := StreamLast(ctx, c.js)
		if err == nil && last > 0 {
			var msgs []history.Message
			if msgs, err = rec.Messages(ctx, last); err == nil {
				end := msgs[len(msgs)-1].Time
				due := false
				for _, m := range msgs {
					if m.TTL > 0 && m.Time.Add(m.TTL).After(end) {
						due = true
						break
					}
				}
				if !due {
					return nil
				}
			}
		}
		if err := b.Wait(ctx); err != nil {
			return fmt.Errorf("the stream's last message is still before a key's expiry: %w", err)
		}
	}
}

// compactionSettings are the configuration of a run with Compaction: a
// base snapshot every 50 messages, a window of 20, a look every 200ms, and
// a duplicate window of 2s (compaction keeps the messages of the duplicate
// window, so the default two minutes would keep a short run's every
// message).
var compactionSettings = []string{
	"compaction.interval=200ms", "compaction.snapshot_messages=50", "compaction.window_messages=20",
	"stream.duplicate_window=2s",
}

// dumpAll reads the stream (as rec recorded it, when it is not nil) and
// every replica.
func dumpAll(ctx context.Context, c *Cluster, t *client.NATS, rec *Recorder) (*history.Final, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var msgs []history.Message
	var err error
	if rec != nil {
		msgs, err = recorded(ctx, c, rec)
	} else {
		msgs, err = DumpStream(ctx, c.js, stream.Config{})
	}
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
