package replicator_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
	"github.com/tidemark/tidemark/stream"
)

// testTimeout bounds every wait of a test.
const testTimeout = 20 * time.Second

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

// write is one write of a test stream.
type write struct {
	op    api.Op
	key   string
	value []byte
}

func put(key, value string) write { return write{op: api.OpPut, key: key, value: []byte(value)} }
func del(key string) write        { return write{op: api.OpDelete, key: key} }

func (w write) msg(subject string) *nats.Msg {
	m := nats.NewMsg(stream.KeySubject(subject, w.key))
	m.Header.Set(api.HeaderOp, string(w.op))
	m.Data = w.value
	return m
}

// publish publishes ws one by one and returns the last sequence.
func publish(t testing.TB, env *testenv.Env, ws ...write) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var seq uint64
	for _, w := range ws {
		ack, err := env.JS.PublishMsg(ctx, w.msg(env.Config.Subject))
		if err != nil {
			t.Fatalf("publish %s %q: %v", w.op, w.key, err)
		}
		seq = ack.Sequence
	}
	return seq
}

// publishAsync publishes ws pipelined and checks that they got the
// sequences first, first+1, ...
func publishAsync(t testing.TB, env *testenv.Env, first uint64, ws []write) {
	t.Helper()
	// At most window acks outstanding: more would stall the publisher
	// (nats.go fails a publish that waits too long for room) when acks are
	// slow, as on a loaded machine.
	const window = 512
	futures := make([]jetstream.PubAckFuture, 0, len(ws))
	deadline := time.After(testTimeout)
	acked := 0
	for _, w := range ws {
		if len(futures)-acked == window {
			waitAck(t, futures[acked], first+uint64(acked), acked, deadline)
			acked++
		}
		f, err := env.JS.PublishMsgAsync(w.msg(env.Config.Subject))
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		futures = append(futures, f)
	}
	for i := acked; i < len(futures); i++ {
		waitAck(t, futures[i], first+uint64(i), i, deadline)
	}
}

// waitAck waits for future f of publish i and checks its sequence is want.
func waitAck(t testing.TB, f jetstream.PubAckFuture, want uint64, i int, deadline <-chan time.Time) {
	t.Helper()
	select {
	case ack := <-f.Ok():
		if got := ack.Sequence; got != want {
			t.Fatalf("publish %d: sequence=%d, want %d", i, got, want)
		}
	case err := <-f.Err():
		t.Fatalf("publish %d: %v", i, err)
	case <-deadline:
		t.Fatalf("publish %d: no ack within %v", i, testTimeout)
	}
}

// open opens a replicator on dir for env's stream; it is closed with the test.
func open(t testing.TB, env *testenv.Env, dir string, mods ...func(*replicator.Config)) *replicator.Replicator {
	t.Helper()
	cfg := replicator.Config{ID: "r1", Dir: dir, Stream: env.Stream, Logger: testLogger(t)}
	for _, m := range mods {
		m(&cfg)
	}
	r := replicator.New(cfg)
	if err := r.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// run runs r until the test ends or stop is called; stop returns Run's error.
func run(t testing.TB, r *replicator.Replicator) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// runErr runs r and returns a channel that receives Run's error.
func runErr(t testing.TB, r *replicator.Replicator) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); _ = r.Close() })
	return done
}

func waitApplied(t testing.TB, r *replicator.Replicator, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r.WaitApplied(ctx, seq); err != nil {
		t.Fatalf("WaitApplied(%d): %v (applied %d)", seq, err, r.Applied())
	}
}

func waitErr(t testing.TB, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(testTimeout):
		t.Fatalf("Run did not return within %v", testTimeout)
		return nil
	}
}

// state is the fold of a stream of writes: each key's last write.
type state map[string]api.Record

func fold(ws []write) state {
	s := state{}
	for i, w := range ws {
		rec := api.Record{Key: w.key, Revision: uint64(i + 1)}
		if w.op == api.OpDelete {
			rec.Deleted = true
		} else {
			rec.Value = w.value
			if rec.Value == nil {
				rec.Value = []byte{}
			}
		}
		s[w.key] = rec
	}
	return s
}

// checkState verifies that r holds exactly want at applied: every key read
// by Get and the live keys listed by Scan.
func checkState(t testing.TB, r *replicator.Replicator, want state, applied uint64, universe []string) {
	t.Helper()
	for _, key := range universe {
		rec, at, err := r.Get(key)
		if at != applied {
			t.Fatalf("Get(%q) applied=%d, want %d", key, at, applied)
		}
		w, ok := want[key]
		switch {
		case !ok:
			if !errors.Is(err, api.ErrNotFound) || rec.Deleted || rec.Revision != 0 {
				t.Fatalf("Get(%q)=%+v, %v; want never written", key, rec, err)
			}
		case w.Deleted:
			if !errors.Is(err, api.ErrNotFound) || !rec.Deleted || rec.Revision != w.Revision {
				t.Fatalf("Get(%q)=%+v, %v; want deleted at %d", key, rec, err, w.Revision)
			}
		default:
			if err != nil || string(rec.Value) != string(w.Value) || rec.Revision != w.Revision || rec.Deleted {
				t.Fatalf("Get(%q)=%+v (%q), %v; want %q at %d", key, rec, rec.Value, err, w.Value, w.Revision)
			}
		}
	}
	var live []string
	for k, rec := range want {
		if !rec.Deleted {
			live = append(live, k)
		}
	}
	slices.Sort(live)
	var got []string
	after := ""
	for {
		items, next, at, err := r.Scan("", after, 97, nil)
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		if at != applied {
			t.Fatalf("Scan applied=%d, want %d", at, applied)
		}
		for _, it := range items {
			got = append(got, it.Key)
			if w := want[it.Key]; string(it.Value) != string(w.Value) || it.Revision != w.Revision {
				t.Fatalf("Scan item %q=%q at %d, want %q at %d", it.Key, it.Value, it.Revision, w.Value, w.Revision)
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	if !slices.Equal(got, live) {
		t.Fatalf("Scan keys=%v, want %v", got, live)
	}
}
