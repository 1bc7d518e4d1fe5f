package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tidemark/tidemark/chaos/history"
	"github.com/tidemark/tidemark/internal/backoff"
	"github.com/tidemark/tidemark/internal/proc"
)

// FaultKind names a fault the harness injects.
type FaultKind string

// The faults.
const (
	// KillReplica kills a replica with SIGKILL and restarts it.
	KillReplica FaultKind = "kill-replica"
	// KillReplicaMidBatch pauses a replica until a backlog builds up,
	// resumes it and kills it with SIGKILL a moment later, while it
	// applies the backlog in large batches, then restarts it.
	KillReplicaMidBatch FaultKind = "kill-replica-mid-batch"
	// KillGateway kills a gateway with SIGKILL and restarts it.
	KillGateway FaultKind = "kill-gateway"
	// KillWriter kills a writer with SIGKILL and restarts it.
	KillWriter FaultKind = "kill-writer"
	// KillNATS kills a NATS server with SIGKILL and restarts it.
	KillNATS FaultKind = "kill-nats"
	// Pause stops a process (any role or a NATS server) with SIGSTOP and
	// resumes it with SIGCONT.
	Pause FaultKind = "pause"
	// PartitionReplica cuts a replica off from NATS, then heals.
	PartitionReplica FaultKind = "partition-replica"
	// PartitionNATS cuts a NATS server off from the other servers and
	// from every client (clusters only), then heals.
	PartitionNATS FaultKind = "partition-nats"
	// TailLoss stops a NATS server, copies its store, starts it; later
	// stops it again, puts the copy back and starts it: the stream loses
	// every message stored after the copy (on one server; on a cluster the
	// other servers still hold them and the restored one catches up).
	TailLoss FaultKind = "tail-loss"
	// RecreateStream seals, dumps and deletes the stream under load, then
	// restarts a writer, which creates it anew with a new identity.
	RecreateStream FaultKind = "recreate-stream"
	// CorruptSST stops a replica (SIGTERM, so that Badger writes its
	// tables), flips bits at several offsets of one of its .sst files and
	// starts it.
	CorruptSST FaultKind = "corrupt-sst"
)

// AllFaults lists every fault kind.
var AllFaults = []FaultKind{KillReplica, KillReplicaMidBatch, KillGateway, KillWriter, KillNATS, Pause, PartitionReplica, PartitionNATS,
	TailLoss, RecreateStream, CorruptSST}

// ParseFaults parses a comma-separated list of fault kinds; "all" is AllFaults.
func ParseFaults(s string) ([]FaultKind, error) {
	if s == "" || s == "all" {
		return AllFaults, nil
	}
	var out []FaultKind
	for _, f := range splitList(s) {
		k := FaultKind(f)
		ok := false
		for _, a := range AllFaults {
			ok = ok || a == k
		}
		if !ok {
			return nil, fmt.Errorf("unknown fault %q: want one of %v", f, AllFaults)
		}
		out = append(out, k)
	}
	return out, nil
}

// Fault is one fault as injected.
type Fault struct {
	Kind   FaultKind `json:"kind"`
	Target string    `json:"target"`
	// At is when it was injected, from the start of the workload; Held
	// how long it lasted; Recovered how long the target then took to be
	// ready again; CaughtUp how long, from the heal, the replicas it
	// affected took to apply what the stream held at the heal.
	At        time.Duration `json:"at"`
	Held      time.Duration `json:"held"`
	Recovered time.Duration `json:"recovered"`
	CaughtUp  time.Duration `json:"caught_up,omitempty"`
	// Error says why the fault or the recovery failed, if it did.
	Error string `json:"error,omitempty"`
}

// injector runs faults on a cluster, one at a time.
type injector struct {
	c     *Cluster
	rng   *rand.Rand
	kinds []FaultKind
	start time.Time
	// minGap/maxGap bound the quiet time between faults; minHold/maxHold
	// how long a fault lasts.
	minGap, maxGap, minHold, maxHold time.Duration
	// firstRound is closed once every kind has been injected once.
	firstRound chan struct{}
	// epochs and losses are the deleted streams and the lost tails, for
	// the history; only run's goroutine touches them until it returns.
	epochs []history.Epoch
	losses []history.Loss
	copied time.Time // when tail-loss took its copy
}

func (in *injector) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(in.rng.Int64N(int64(hi-lo)))
}

// run injects faults until ctx ends and returns them.
func (in *injector) run(ctx context.Context) []Fault {
	var out []Fault
	var queue []FaultKind
	for {
		if backoff.Sleep(ctx, in.between(in.minGap, in.maxGap)) != nil {
			return out
		}
		if len(queue) == 0 {
			// Every kind once per round, in a seeded order.
			queue = in.applicable()
			if len(queue) == 0 {
				return out
			}
			in.rng.Shuffle(len(queue), func(i, j int) { queue[i], queue[j] = queue[j], queue[i] })
		}
		f := in.inject(ctx, queue[0])
		queue = queue[1:]
		if len(queue) == 0 && len(out) < len(in.kinds) {
			select {
			case <-in.firstRound:
			default:
				close(in.firstRound)
			}
		}
		in.c.log.Info().Str("fault", string(f.Kind)).Str("target", f.Target).Dur("held", f.Held).
			Dur("recovered", f.Recovered).Str("error", f.Error).Msg("fault")
		out = append(out, f)
	}
}

// applicable returns the kinds that make sense on this topology.
func (in *injector) applicable() []FaultKind {
	var out []FaultKind
	for _, k := range in.kinds {
		if k == PartitionNATS && len(in.c.nats) < 3 {
			continue
		}
		out = append(out, k)
	}
	return out
}

// inject runs one fault: injects it, holds it, heals it and waits for the
// target to be ready again.
func (in *injector) inject(ctx context.Context, kind FaultKind) Fault {
	c := in.c
	f := Fault{Kind: kind, At: time.Since(in.start)}
	hold := in.between(in.minHold, in.maxHold)
	var (
		victim  *proc.Proc
		readyAt string
		err     error
	)
	pick := func(nodes []*node) *node { return nodes[in.rng.IntN(len(nodes))] }
	held := func(inject, heal func() error) {
		t0 := time.Now()
		if err = inject(); err != nil {
			return
		}
		_ = backoff.Sleep(context.WithoutCancel(ctx), hold)
		err = heal()
		f.Held = time.Since(t0)
	}
	switch kind {
	case KillReplica, KillGateway, KillWriter:
		var n *node
		switch kind {
		case KillReplica:
			n = pick(c.replicas)
		case KillGateway:
			n = pick(c.gateways)
		default:
			n = pick(c.writers)
		}
		f.Target, victim, readyAt = n.id, n.proc, n.http
		held(victim.Kill, victim.Start)
	case KillReplicaMidBatch:
		n := pick(c.replicas)
		f.Target, victim, readyAt = n.id, n.proc, n.http
		held(func() error {
			if err := victim.Stop(); err != nil {
				return err
			}
			_ = backoff.Sleep(context.WithoutCancel(ctx), hold)
			if err := victim.Cont(); err != nil {
				return err
			}
			// The replica now applies the backlog; kill it while it does.
			_ = backoff.Sleep(context.WithoutCancel(ctx), time.Duration(in.rng.Int64N(int64(50*time.Millisecond))))
			return victim.Kill()
		}, victim.Start)
	case KillNATS:
		nn := c.nats[in.rng.IntN(len(c.nats))]
		f.Target, victim = nn.name, nn.proc
		readyAt = nn.monitor
		held(victim.Kill, victim.Start)
	case Pause:
		var procs []target
		for _, group := range [][]*node{c.replicas, c.gateways, c.writers} {
			for _, n := range group {
				procs = append(procs, target{n.id, n.proc, n.http})
			}
		}
		for _, nn := range c.nats {
			procs = append(procs, target{nn.name, nn.proc, nn.monitor})
		}
		t := procs[in.rng.IntN(len(procs))]
		f.Target, victim, readyAt = t.name, t.p, t.http
		held(victim.Stop, victim.Cont)
	case PartitionReplica:
		n := pick(c.replicas)
		f.Target, victim, readyAt = n.id, n.proc, n.http
		held(func() error {
			for _, p := range n.proxies {
				p.Partition()
			}
			return nil
		}, func() error {
			for _, p := range n.proxies {
				p.Heal()
			}
			return nil
		})
	case TailLoss:
		nn := c.nats[in.rng.IntN(len(c.nats))]
		f.Target, victim, readyAt = nn.name, nn.proc, nn.monitor
		held(func() error { return in.copyStore(nn) }, func() error { return in.restoreStore(ctx, nn) })
	case RecreateStream:
		w := pick(c.writers)
		f.Target, victim = "stream via "+w.id, w.proc
		var ep history.Epoch
		held(func() (err error) {
			ep, err = in.deleteStream(ctx)
			return err
		}, func() error {
			// The writers do not recreate a deleted stream; a restarted
			// one does, as it starts (stream.Ensure).
			if err := w.proc.Restart(); err != nil {
				return err
			}
			return c.waitStream(ctx)
		})
		if ep.StreamID != "" {
			defer func() {
				ep.Healed = time.Now()
				in.epochs = append(in.epochs, ep)
			}()
		}
	case CorruptSST:
		n := pick(c.replicas)
		f.Target, victim, readyAt = n.id, n.proc, n.http
		held(func() error {
			what, err := in.corruptSST(n)
			f.Target += " " + what
			return err
		}, victim.Start)
	case PartitionNATS:
		nn := c.nats[in.rng.IntN(len(c.nats))]
		f.Target, victim, readyAt = nn.name, nn.proc, nn.monitor
		paths := c.paths(nn)
		held(func() error {
			for _, p := range paths {
				p.Partition()
			}
			return nil
		}, func() error {
			for _, p := range paths {
				p.Heal()
			}
			return nil
		})
	}
	if err != nil {
		f.Error = err.Error()
		return f
	}
	t0 := time.Now()
	path := "/readyz"
	if natsFault(kind) || isNATS(c, f.Target) {
		path = "/healthz"
	}
	if readyAt != "" {
		if werr := proc.WaitHTTP(ctx, victim, "http://"+readyAt+path, recoverTimeout); werr != nil && ctx.Err() == nil {
			f.Error = werr.Error()
		}
	}
	if natsFault(kind) || kind == RecreateStream || isNATS(c, f.Target) {
		// The server answers /healthz before it has caught up with the
		// cluster; let the Tidemark roles see it back too.
		for _, n := range c.replicas {
			if werr := proc.WaitHTTP(ctx, n.proc, "http://"+n.http+"/readyz", recoverTimeout); werr != nil && ctx.Err() == nil {
				f.Error = werr.Error()
			}
		}
	}
	f.Recovered = time.Since(t0)
	var affected []string
	switch {
	case natsFault(kind) || kind == RecreateStream || isNATS(c, f.Target):
		affected = c.ReplicaIDs()
	case kind == KillReplica || kind == KillReplicaMidBatch || kind == PartitionReplica || kind == CorruptSST || (kind == Pause && f.Target[0] == 'r'):
		affected = []string{f.Target}
	}
	if len(affected) > 0 && ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, recoverTimeout)
		defer cancel()
		// Each probe has its own short bound: a request sent while the
		// harness's own connection fails over gets no reply.
		probe := func(f func(ctx context.Context) (uint64, error)) (uint64, error) {
			pctx, pcancel := context.WithTimeout(cctx, 2*time.Second)
			defer pcancel()
			return f(pctx)
		}
		var last uint64
		var err error
		for {
			if last, err = probe(func(ctx context.Context) (uint64, error) { return StreamLast(ctx, c.js) }); err == nil || cctx.Err() != nil {
				break
			}
			_ = backoff.Sleep(cctx, 20*time.Millisecond)
		}
		for _, id := range affected {
			for err == nil {
				var a uint64
				if a, err = probe(func(ctx context.Context) (uint64, error) { return ReplicaApplied(ctx, c.adminT, id) }); err == nil && a >= last {
					break
				}
				if err != nil && cctx.Err() == nil {
					err = nil // not answering yet
				}
				if serr := backoff.Sleep(cctx, 20*time.Millisecond); serr != nil {
					err = serr
				}
			}
		}
		if err != nil && f.Error == "" && ctx.Err() == nil {
			f.Error = fmt.Sprintf("catching up: %v", err)
		}
		f.CaughtUp = time.Since(t0)
	}
	return f
}

// natsFault reports whether kind acts on a NATS server.
func natsFault(kind FaultKind) bool {
	return kind == KillNATS || kind == PartitionNATS || kind == TailLoss
}

// target is a process a fault acts on and where it says it is ready.
type target struct {
	name string
	p    *proc.Proc
	http string
}

// recoverTimeout bounds how long a target may take to be ready after a
// fault is healed.
const recoverTimeout = 90 * time.Second

func isNATS(c *Cluster, name string) bool {
	for _, nn := range c.nats {
		if nn.name == name {
			return true
		}
	}
	return false
}

// healAll resumes every paused process, heals every proxy and starts every
// process that is not running.
func (c *Cluster) healAll() error {
	for _, p := range c.proxies {
		p.Heal()
	}
	procs := c.procs()
	for _, p := range procs {
		if p.Stopped() {
			if err := p.Cont(); err != nil {
				return err
			}
		}
		if !p.Running() {
			if err := p.Restart(); err != nil {
				return err
			}
		}
	}
	return nil
}
