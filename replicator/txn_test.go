package replicator_test

import (
	"github.com/tidemark/tidemark/api"

	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/writer"
)

// txnOps is a transaction that puts value into keys key-000 to key-(n-1).
func txnOps(n int, value string) []api.TxnOp {
	ops := make([]api.TxnOp, n)
	for i := range ops {
		ops[i] = api.TxnOp{Op: api.OpPut, Key: fmt.Sprintf("key-%03d", i), Value: []byte(value)}
	}
	return ops
}

func writeTxn(t testing.TB, w *writer.Writer, ops []api.TxnOp) api.TxnResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	res, err := w.Txn(ctx, api.TxnRequest{Ops: ops})
	if err != nil {
		t.Fatalf("Txn: %v", err)
	}
	return res
}

// txnState checks that a scan of r shows every key of a transaction of n
// keys with one value, or none of them, and returns that value ("" for
// none) and the scan's applied.
func txnState(t testing.TB, r *replicator.Replicator, n int) (string, uint64) {
	t.Helper()
	v, applied, err := scanTxn(r, n)
	if err != nil {
		t.Fatal(err)
	}
	return v, applied
}

// scanTxn is txnState, failing with an error.
func scanTxn(r *replicator.Replicator, n int) (string, uint64, error) {
	items, _, applied, err := r.Scan("key-", "", n+1, nil)
	switch {
	case err != nil:
		return "", applied, fmt.Errorf("Scan: %w", err)
	case len(items) == 0:
		return "", applied, nil
	case len(items) != n:
		return "", applied, fmt.Errorf("Scan at applied %d shows %d keys of a transaction of %d", applied, len(items), n)
	}
	for _, it := range items[1:] {
		if !bytes.Equal(it.Value, items[0].Value) {
			return "", applied, fmt.Errorf("Scan at applied %d mixes transactions: %q=%q, %q=%q", applied, items[0].Key, items[0].Value, it.Key, it.Value)
		}
	}
	return string(items[0].Value), applied, nil
}

// A replica paused in the middle of applying a large transaction serves
// the state before it, and applied never points inside one, however small
// its batches are; scans during the apply see each transaction whole or
// not at all.
func TestTxnAppliedWhole(t *testing.T) {
	env := testenv.Start(t)
	w := writer.New(writer.Config{Stream: env.Stream})
	const n = 60
	first := writeTxn(t, w, txnOps(n, "t0"))

	waiting := make(chan int, 1)
	release := make(chan struct{})
	var once sync.Once
	r := open(t, env, t.TempDir(), func(c *replicator.Config) { c.MaxBatch = 2 })
	replicator.SetTxnWaitHook(r, func(held int) {
		once.Do(func() {
			waiting <- held
			<-release
		})
	})
	run(t, r)
	var held int
	select {
	case held = <-waiting:
	case <-time.After(testTimeout):
		t.Fatalf("the apply loop never held part of the transaction (applied %d)", r.Applied())
	}
	t.Logf("the apply loop holds %d messages of the transaction", held)
	if got := r.Applied(); got != 0 {
		t.Fatalf("Applied()=%d while the transaction is held, want 0", got)
	}
	if v, applied := txnState(t, r, n); v != "" || applied != 0 {
		t.Fatalf("held transaction served: %q at applied %d", v, applied)
	}
	if _, _, err := r.Get("key-000"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get of a held transaction's key: %v, want not found", err)
	}
	close(release)
	waitApplied(t, r, first.Revision)
	if v, _ := txnState(t, r, n); v != "t0" {
		t.Fatalf("after the transaction: %q, want t0", v)
	}

	// Scans while more transactions are applied in small batches: each
	// sees every transaction whole or not at all, at a transaction's end.
	done := make(chan struct{})
	type scanned struct {
		applied []uint64
		err     error
	}
	out := make(chan scanned, 1)
	go func() {
		var s scanned
		defer func() { out <- s }()
		for {
			select {
			case <-done:
				return
			default:
			}
			_, applied, err := scanTxn(r, n)
			if err != nil {
				s.err = err
				return
			}
			s.applied = append(s.applied, applied)
		}
	}()
	ends := map[uint64]bool{0: true, first.Revision: true}
	var last api.TxnResult
	for i := 1; i <= 20; i++ {
		last = writeTxn(t, w, txnOps(n, fmt.Sprintf("t%d", i)))
		ends[last.Revision] = true
	}
	waitApplied(t, r, last.Revision)
	close(done)
	s := <-out
	if s.err != nil {
		t.Fatal(s.err)
	}
	for _, applied := range s.applied {
		if !ends[applied] {
			t.Fatalf("a scan saw applied %d, inside a transaction", applied)
		}
	}
	t.Logf("%d scans during the transactions", len(s.applied))
	if v, _ := txnState(t, r, n); v != "t20" {
		t.Fatalf("after every transaction: %q, want t20", v)
	}
}

// A batch that a writer published without its commit (it crashed in the
// middle) is never stored, and nothing of it is applied.
func TestTxnAbandonedBatch(t *testing.T) {
	env := testenv.Start(t)
	w := writer.New(writer.Config{Stream: env.Stream})
	prefix := env.Stream.Subject()
	mk := stream.TxnMarkerMsg(prefix, "abandoned", 2, "sum", "", 0)
	msgs := []*nats.Msg{mk}
	for i, key := range []string{"lost-a", "lost-b"} {
		m := stream.Message(prefix, api.WriteRequest{Op: api.OpPut, Key: key, Value: []byte("x")})
		stream.SetTxn(m, i+1, 2)
		msgs = append(msgs, m)
	}
	for i, m := range msgs {
		m.Header.Set(stream.HeaderBatchID, "crashed-writer")
		m.Header.Set(stream.HeaderBatchSeq, strconv.Itoa(i+1))
		if err := env.Conn.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	after, err := w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "after", Value: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	r := open(t, env, t.TempDir())
	run(t, r)
	waitApplied(t, r, after.Revision)
	for _, key := range []string{"lost-a", "lost-b"} {
		if _, _, err := r.Get(key); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("Get(%q) of an uncommitted batch: %v, want not found", key, err)
		}
	}
	info, err := env.Stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.State.LastSeq, after.Revision; got != want || after.Revision != 1 {
		t.Fatalf("stream last %d, write at %d: want the write alone, at 1", got, want)
	}
}

// TestTxnCrashRecovery kills a replica process with SIGKILL while it
// applies a stream of transactions (TestHelperProcess), reopens its
// directory and checks that it holds every transaction up to its applied
// whole and nothing of a later one, applied at a transaction's end.
func TestTxnCrashRecovery(t *testing.T) {
	env := testenv.Start(t)
	w := writer.New(writer.Config{Stream: env.Stream})
	const (
		n      = 50
		txns   = 300
		killAt = txns / 4 * (n + 1)
	)
	ends := map[uint64]string{0: ""}
	var last uint64
	for i := 1; i <= txns; i++ {
		res := writeTxn(t, w, txnOps(n, fmt.Sprintf("t%d", i)))
		ends[res.Revision] = fmt.Sprintf("t%d", i)
		last = res.Revision
	}

	dir := t.TempDir()
	sc, stderr, kill := startReplicaProcess(t, env, dir)
	var err error
	var reported uint64
	for reported < killAt && sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "applied "); ok {
			if reported, err = strconv.ParseUint(s, 10, 64); err != nil {
				t.Fatalf("helper printed %q", sc.Text())
			}
			if _, ok := ends[reported]; !ok {
				t.Fatalf("the child reported applied %d, inside a transaction", reported)
			}
		}
	}
	kill()
	if reported < killAt {
		t.Fatalf("helper stopped at applied %d before the kill: %s", reported, stderr.String())
	}

	r := open(t, env, dir)
	crashed := r.Applied()
	t.Logf("killed after the child reported %d; its directory holds %d of %d", reported, crashed, last)
	want, ok := ends[crashed]
	if !ok {
		t.Fatalf("Applied() after the crash=%d, inside a transaction", crashed)
	}
	if crashed < reported {
		t.Fatalf("Applied() after the crash=%d, below the %d the child reported", crashed, reported)
	}
	if v, at := txnState(t, r, n); v != want || at != crashed {
		t.Fatalf("after the crash: %q at %d, want %q at %d", v, at, want, crashed)
	}
	run(t, r)
	waitApplied(t, r, last)
	if v, _ := txnState(t, r, n); v != ends[last] {
		t.Fatalf("after the restart: %q, want %q", v, ends[last])
	}
}

// A replica paused while it holds part of a transaction, and resumed,
// applies every transaction whole, once, in batches of at most 4 messages
// but for the transactions' own.
func TestTxnPausedMidStream(t *testing.T) {
	env := testenv.Start(t)
	w := writer.New(writer.Config{Stream: env.Stream})
	const n = 20
	var last api.TxnResult
	for i := 1; i <= 10; i++ {
		last = writeTxn(t, w, txnOps(n, fmt.Sprintf("t%d", i)))
	}
	r := open(t, env, t.TempDir(), func(c *replicator.Config) { c.MaxBatch = 4 })
	held := make(chan struct{}, 1)
	replicator.SetTxnWaitHook(r, func(int) {
		select {
		case held <- struct{}{}:
		default:
		}
	})
	r.Pause()
	run(t, r)
	<-held // the apply loop holds part of the first transaction, and will wait for the pause
	r.Resume()
	waitApplied(t, r, last.Revision)
	if v, applied := txnState(t, r, n); v != "t10" || applied != last.Revision {
		t.Fatalf("after every transaction: %q at %d, want t10 at %d", v, applied, last.Revision)
	}
	if got, want := r.Stats().Messages, last.Revision; got != want {
		t.Fatalf("Messages applied=%d, want %d", got, want)
	}
}
