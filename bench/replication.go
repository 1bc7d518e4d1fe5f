package bench

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/replica"
	"github.com/tidemark/tidemark/stream"
)

// fillStreamHandle creates the benchmark's own Tidemark stream, which the
// replication phases publish to, replacing an earlier one.
func (p *phases) fillStreamHandle(ctx context.Context) (*stream.Stream, error) {
	if p.fill != nil {
		return p.fill, nil
	}
	e := p.e
	_ = e.js.DeleteStream(ctx, fillStream)
	st, err := stream.Ensure(ctx, e.js, stream.Config{Name: fillStream, Subject: fillSubject})
	if err != nil {
		return nil, err
	}
	if err := allowAtomic(ctx, e.js, fillStream); err != nil {
		return nil, err
	}
	p.fill = st
	return st, nil
}

// flood publishes to the fill stream as fast as raw JetStream allows for
// the phase's duration (or operation count): asynchronous publishes in
// fast mode, atomic batches when every write is fsynced. It returns how
// many messages it published, the last sequence and how long it took.
func (p *phases) flood(ctx context.Context, key func(i int) string) (int, uint64, time.Duration, error) {
	e := p.e
	mk := func(i int) *nats.Msg { return envelope(fillSubject, key(i), p.value) }
	start := time.Now()
	if !e.durable {
		s := asyncPublish(ctx, e.js, p.load(), p.cfg.Window, mk)
		if s.errs > 0 {
			return 0, 0, 0, fmt.Errorf("flood: %w", s.firstErr)
		}
		last, err := p.fill.LastSeq(ctx)
		return s.ops, last, s.elapsed, err
	}
	n, last, err := fillFor(ctx, e.cliC.Conn, p.cfg.Ops, p.cfg.Duration, mk)
	return n, last, time.Since(start), err
}

// openReplica opens and runs an in-process replica of the fill stream in
// dir; stop stops and closes it.
func (p *phases) openReplica(ctx context.Context, id, dir string) (r *replica.Replica, stop func(), err error) {
	r = replica.New(replica.Config{ID: id, Dir: dir, Stream: p.fill, Logger: p.e.log})
	if err := r.Open(); err != nil {
		return nil, nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(rctx) }()
	return r, func() { cancel(); <-done; _ = r.Close() }, nil
}

// apply measures a replica applying the stream while a saturating raw
// publisher writes to it, next to a raw ordered consumer in the same
// situation, then both reading a backlog.
func (p *phases) apply(ctx context.Context) error {
	if _, err := p.fillStreamHandle(ctx); err != nil {
		return err
	}
	e := p.e
	p.applyDir = filepath.Join(e.dir, "replica-apply")
	r, stop, err := p.openReplica(ctx, "apply", p.applyDir)
	if err != nil {
		return err
	}
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	if err := r.WaitReady(ctx); err != nil {
		return err
	}
	key := func(i int) string { return "bench/a/" + strconv.Itoa(i%10000) }

	p.progress("apply: replica applying while raw JetStream publishes")
	start := time.Now()
	n, last, pubEl, err := p.flood(ctx, key)
	if err != nil {
		return err
	}
	lagAtEnd := last - min(last, r.Applied())
	if err := r.Replicator().WaitApplied(ctx, last); err != nil {
		return err
	}
	appEl := time.Since(start)
	how := "async publish"
	if e.durable {
		how = "atomic batches of 1000"
	}
	pub := p.add(Row{Section: "apply", Name: "raw JetStream publish (the load), " + how, Value: float64(n) / pubEl.Seconds(), Unit: "msgs/s", Ops: n})
	live := Row{Section: "apply", Name: "replica applying as it is published", Value: float64(n) / appEl.Seconds(), Unit: "msgs/s", Ops: n,
		Note: fmt.Sprintf("%d messages behind when the publisher stopped, caught up %v later", lagAtEnd, (appEl - pubEl).Round(time.Millisecond))}
	compare(&live, pub)
	p.add(live)
	stop()
	stop = nil

	p.progress("apply: raw ordered consumer while raw JetStream publishes")
	from, err := p.fill.LastSeq(ctx)
	if err != nil {
		return err
	}
	var target atomic.Uint64
	target.Store(math.MaxUint64)
	type result struct {
		n   int
		err error
	}
	got := make(chan result, 1)
	start = time.Now()
	go func() {
		n, err := consume(ctx, e.js, fillStream, from+1, &target)
		got <- result{n, err}
	}()
	n2, last2, _, err := p.flood(ctx, func(i int) string { return key(i + n) })
	if err != nil {
		return err
	}
	target.Store(last2)
	res := <-got
	if res.err != nil {
		return res.err
	}
	consEl := time.Since(start)
	cons := Row{Section: "apply", Name: "raw ordered consumer as it is published", Value: float64(n2) / consEl.Seconds(), Unit: "msgs/s", Ops: n2}
	compare(&cons, pub)
	p.add(cons)

	p.progress("apply: replica and raw ordered consumer reading a backlog of %d messages", last2-last)
	cs, err := consumeRange(ctx, e.js, fillStream, last+1, last2)
	if err != nil {
		return err
	}
	backCons := p.add(Row{Section: "apply", Name: "raw ordered consumer, backlog", Value: cs, Unit: "msgs/s", Ops: int(last2 - last)})
	// The replica reopens on its directory, where it had applied up to the
	// end of the first flood: the second flood is its backlog.
	rate, err := p.catchUpOnce(ctx, "apply", p.applyDir, last2)
	if err != nil {
		return err
	}
	back := Row{Section: "apply", Name: "replica, backlog", Value: rate, Unit: "msgs/s", Ops: int(last2 - last)}
	compare(&back, backCons)
	p.add(back)
	vsPub := back
	vsPub.Name = "replica backlog apply vs raw publish"
	compare(&vsPub, pub)
	vsPub.goal = goal{minRatio: 1}
	p.add(vsPub)
	return nil
}

// catchUpOnce opens the replica in dir, which is behind, and returns its
// apply rate from opening until it has applied last.
func (p *phases) catchUpOnce(ctx context.Context, id, dir string, last uint64) (float64, error) {
	start := time.Now()
	r, stop, err := p.openReplica(ctx, id, dir)
	if err != nil {
		return 0, err
	}
	defer stop()
	from := r.Applied()
	if err := r.Replicator().WaitApplied(ctx, last); err != nil {
		return 0, err
	}
	return float64(last-from) / time.Since(start).Seconds(), nil
}

// catchUp measures a replica that starts cfg.CatchUp messages behind: it
// applies up to the stream's end, stops, the stream grows by CatchUp
// messages of distinct keys, and it starts again.
func (p *phases) catchUp(ctx context.Context) error {
	if _, err := p.fillStreamHandle(ctx); err != nil {
		return err
	}
	e := p.e
	dir := p.applyDir // at the stream's end, if the apply phase ran
	if dir == "" {
		dir = filepath.Join(e.dir, "replica-catchup")
	}
	last, err := p.fill.LastSeq(ctx)
	if err != nil {
		return err
	}
	if last > 0 {
		p.progress("catchup: bringing the replica to the stream's end")
		if _, err := p.catchUpOnce(ctx, "catchup", dir, last); err != nil {
			return err
		}
	}
	n := p.cfg.CatchUp
	p.progress("catchup: publishing %d messages of distinct keys", n)
	filled, end, err := fillFor(ctx, e.cliC.Conn, n, 0, func(i int) *nats.Msg {
		return envelope(fillSubject, distinctKey(p.distinct+i), p.value)
	})
	if err != nil {
		return err
	}
	p.distinct += filled
	p.progress("catchup: replica %d messages behind", end-last)
	rate, err := p.catchUpOnce(ctx, "catchup", dir, end)
	if err != nil {
		return err
	}
	cs, err := consumeRange(ctx, e.js, fillStream, last+1, end)
	if err != nil {
		return err
	}
	base := p.add(Row{Section: "catchup", Name: fmt.Sprintf("raw ordered consumer, %d messages", end-last), Value: cs, Unit: "msgs/s", Ops: int(end - last)})
	r := Row{Section: "catchup", Name: fmt.Sprintf("replica %d messages behind", end-last), Value: rate, Unit: "msgs/s", Ops: int(end - last),
		Note: "from opening the replica until it has applied the last message"}
	compare(&r, base)
	r.goal = goal{minValue: 100_000}
	p.add(r)
	return nil
}

func distinctKey(i int) string { return fmt.Sprintf("bench/c/%09d", i) }

// memory measures the peak resident memory of a `tidemark replica`
// process that applies the fill stream, holding cfg.MemoryKeys distinct
// keys or more.
func (p *phases) memory(ctx context.Context) error {
	if p.cfg.Command == nil {
		p.add(Row{Section: "memory", Name: "peak RSS of a replica process", Note: "skipped: no replica command"})
		return nil
	}
	if _, err := p.fillStreamHandle(ctx); err != nil {
		return err
	}
	e := p.e
	if more := p.cfg.MemoryKeys - p.distinct; more > 0 {
		p.progress("memory: publishing %d more messages of distinct keys", more)
		filled, _, err := fillFor(ctx, e.cliC.Conn, more, 0, func(i int) *nats.Msg {
			return envelope(fillSubject, distinctKey(p.distinct+i), p.value)
		})
		if err != nil {
			return err
		}
		p.distinct += filled
	}
	last, err := p.fill.LastSeq(ctx)
	if err != nil {
		return err
	}
	p.progress("memory: a replica process applying %d messages (%d distinct keys)", last, p.distinct)
	dir := filepath.Join(e.dir, "replica-memory")
	proc := command(p.cfg, "replica process", filepath.Join(e.dir, "replica-memory.log"),
		"replica", "--nats", e.url, "--id", "memory", "--data", dir, "--log-level", "warn",
		"--set", "stream.name="+fillStream, "--set", "stream.subject="+fillSubject, "--set", "api.prefix="+fillPrefix,
		"--set", "replica.sync_writes="+strconv.FormatBool(e.durable))
	start := time.Now()
	if err := proc.Start(); err != nil {
		return err
	}
	defer proc.Close()
	t := client.NewNATS(e.cliC.Conn, wire.Subjects{Prefix: fillPrefix})
	for {
		res, err := t.Get(ctx, api.GetRequest{Key: "bench-probe", ReadSpec: api.ReadSpec{Replica: "memory", Wait: time.Millisecond}})
		if (err == nil || !errors.Is(err, api.ErrUnavailable)) && res.Applied >= last {
			break
		}
		select {
		case <-proc.Exited():
			return fmt.Errorf("replica process exited; its log: %s", proc.LogTail(2000))
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	took := time.Since(start)
	hwm, rss, err := procMemory(proc.Pid())
	if err != nil {
		return err
	}
	p.add(Row{Section: "memory", Name: fmt.Sprintf("peak RSS of a replica process holding %d keys", p.distinct),
		Value: float64(hwm) / (1 << 20), Unit: "MiB",
		Note: fmt.Sprintf("%.0f bytes per key at the peak; RSS %.0f MiB once caught up; it applied %d messages in %v (%.0f msgs/s, process start included)",
			float64(hwm)/float64(p.distinct), float64(rss)/(1<<20), last, took.Round(time.Millisecond), float64(last)/took.Seconds())})
	return nil
}

// procMemory reads a process's peak and current resident set, in bytes.
func procMemory(pid int) (hwm, rss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read process memory: %w", err)
	}
	defer f.Close()
	return parseProcStatus(f)
}

// parseProcStatus reads VmHWM (peak resident set) and VmRSS from the text
// of /proc/<pid>/status, in bytes.
func parseProcStatus(r io.Reader) (hwm, rss int64, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 || n > 1<<40 {
			continue
		}
		switch k {
		case "VmHWM":
			hwm = n << 10
		case "VmRSS":
			rss = n << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("read process memory: %w", err)
	}
	if hwm == 0 {
		return 0, 0, errors.New("read process memory: no VmHWM in /proc/<pid>/status")
	}
	return hwm, rss, nil
}

// consume reads the stream from start with an ordered consumer, configured
// as the replicator configures its own, until it has seen the sequence in
// target, and returns how many messages it read.
func consume(ctx context.Context, js jetstream.JetStream, name string, start uint64, target *atomic.Uint64) (int, error) {
	cons, err := js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start,
	})
	if err != nil {
		return 0, fmt.Errorf("ordered consumer: %w", err)
	}
	pullBytes := max(4<<20, 2*int(js.Conn().MaxPayload()))
	it, err := cons.Messages(jetstream.PullMaxBytes(pullBytes))
	if err != nil {
		return 0, fmt.Errorf("ordered consumer: %w", err)
	}
	defer it.Stop()
	// A watcher ends the loop once the target is set and reached, so that a
	// target set after the last message arrived is noticed, without a
	// timer per message.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var seen atomic.Uint64
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for seen.Load() < target.Load() {
			select {
			case <-t.C:
			case <-cctx.Done():
				return
			}
		}
		cancel()
	}()
	n := 0
	for {
		m, err := it.Next(jetstream.NextContext(cctx))
		if err != nil {
			if ctx.Err() == nil && seen.Load() >= target.Load() {
				return n, nil
			}
			return n, fmt.Errorf("ordered consumer: %w", err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return n, fmt.Errorf("ordered consumer: %w", err)
		}
		n++
		seen.Store(meta.Sequence.Stream)
	}
}

// consumeRange reads sequences from..to with an ordered consumer and
// returns the rate.
func consumeRange(ctx context.Context, js jetstream.JetStream, name string, from, to uint64) (float64, error) {
	var target atomic.Uint64
	target.Store(to)
	start := time.Now()
	n, err := consume(ctx, js, name, from, &target)
	if err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
