package writer_test

import (
	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/wire"

	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/writer"
)

func txnPut(key, value string) api.TxnOp {
	return api.TxnOp{Op: api.OpPut, Key: key, Value: []byte(value)}
}

func mustTxn(t *testing.T, w *writer.Writer, req api.TxnRequest) api.TxnResult {
	t.Helper()
	res, err := w.Txn(testContext(t), req)
	if err != nil {
		t.Fatalf("Txn(%d ops): %v", len(req.Ops), err)
	}
	return res
}

// lastOf returns the sequence of key's last message in the stream, 0 when
// it has none.
func lastOf(t *testing.T, e *testenv.Env, key string) uint64 {
	t.Helper()
	ctx := testContext(t)
	s, err := e.JS.Stream(ctx, e.Stream.Name())
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, e.Stream.KeySubject(key))
	if err != nil {
		return 0
	}
	return m.Sequence
}

// A transaction is stored whole, its ops contiguous and marked, with one
// revision and one token: its last op's.
func TestTxnStored(t *testing.T) {
	e := testenv.Start(t)
	w := newWriter(e, writer.Config{})
	mustWrite(t, w, put("c", "old"))
	res := mustTxn(t, w, api.TxnRequest{Ops: []api.TxnOp{txnPut("a", "1"), txnPut("b", "2"), {Op: api.OpDelete, Key: "c"}}})
	if got, want := res.Revision, lastSeq(t, e); got != want {
		t.Fatalf("Revision=%d, want the stream's last %d", got, want)
	}
	if got, want := res.Token, e.Stream.Token(res.Revision); got != want {
		t.Fatalf("Token=%v, want %v", got, want)
	}
	for i, op := range res.Ops {
		if got, want := op.Revision, res.Revision-2+uint64(i); got != want {
			t.Fatalf("op %d: Revision=%d, want %d", i, got, want)
		}
		m := getMsg(t, e, op.Revision)
		if got, want := m.Subject, e.Stream.KeySubject(op.Key); got != want {
			t.Fatalf("op %d: subject %q, want %q", i, got, want)
		}
		if got, want := m.Header.Get(stream.HeaderTxn), fmt.Sprintf("%d/3", i+1); got != want {
			t.Fatalf("op %d: %s=%q, want %q", i, stream.HeaderTxn, got, want)
		}
	}
	if got, want := getMsg(t, e, res.Revision-3).Header.Get(api.HeaderOp), string(stream.OpTxn); got != want {
		t.Fatalf("message before the ops has op %q, want the transaction marker", got)
	}
}

// A condition that does not hold fails the whole transaction, names its
// op, and stores nothing; conditions that hold store it.
func TestTxnAllOrNothing(t *testing.T) {
	e := testenv.Start(t)
	w := newWriter(e, writer.Config{})
	a := mustWrite(t, w, put("a", "1"))
	mustWrite(t, w, put("b", "1"))
	mustWrite(t, w, put("gone", "x"))
	mustWrite(t, w, del("gone"))
	before := lastSeq(t, e)
	for _, tt := range []struct {
		name string
		ops  []api.TxnOp
		op   int
	}{
		{"stale revision", []api.TxnOp{txnPut("x", "1"), {Op: api.OpPut, Key: "a", Value: []byte("2"), IfRevision: a.Revision + 1}}, 1},
		{"revision of another key", []api.TxnOp{{Op: api.OpPut, Key: "b", Value: []byte("2"), IfRevision: a.Revision}, txnPut("x", "1")}, 0},
		{"exists", []api.TxnOp{txnPut("x", "1"), txnPut("y", "1"), {Op: api.OpPut, Key: "b", IfAbsent: true}}, 2},
		{"deleted key at a revision", []api.TxnOp{{Op: api.OpDelete, Key: "gone", IfRevision: before}}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.Txn(testContext(t), api.TxnRequest{Ops: tt.ops})
			if !errors.Is(err, api.ErrRevisionMismatch) {
				t.Fatalf("Txn: %v, want %v", err, api.ErrRevisionMismatch)
			}
			if op, ok := api.FailedOp(err); !ok || op != tt.op {
				t.Fatalf("FailedOp=%d,%v, want %d", op, ok, tt.op)
			}
			if got := lastSeq(t, e); got != before {
				t.Fatalf("stream last %d after a refused transaction, want %d", got, before)
			}
		})
	}
	res := mustTxn(t, w, api.TxnRequest{Ops: []api.TxnOp{
		{Op: api.OpPut, Key: "a", Value: []byte("2"), IfRevision: a.Revision},
		{Op: api.OpPut, Key: "gone", Value: []byte("back"), IfAbsent: true},
		{Op: api.OpPut, Key: "new", Value: []byte("n"), IfAbsent: true},
	}})
	if got, want := lastOf(t, e, "a"), res.Ops[0].Revision; got != want {
		t.Fatalf("a's last message at %d, want %d", got, want)
	}
}

// Concurrent transactions on overlapping keys: exactly one of those that
// claim the same key wins, and only its keys are written.
func TestTxnConcurrentOverlap(t *testing.T) {
	e := testenv.Start(t)
	w := newWriter(e, writer.Config{})
	base := mustWrite(t, w, put("shared", "0"))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = w.Txn(testContext(t), api.TxnRequest{Ops: []api.TxnOp{
				txnPut(fmt.Sprintf("own-%d", i), "v"),
				{Op: api.OpPut, Key: "shared", Value: []byte(fmt.Sprint(i)), IfRevision: base.Revision},
				{Op: api.OpPut, Key: fmt.Sprintf("new-%d", i), IfAbsent: true},
			}})
		})
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("transactions %d and %d both won", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, api.ErrRevisionMismatch):
			t.Fatalf("transaction %d: %v, want a win or %v", i, err, api.ErrRevisionMismatch)
		}
	}
	if won < 0 {
		t.Fatal("no transaction won")
	}
	for i := range n {
		for _, key := range []string{fmt.Sprintf("own-%d", i), fmt.Sprintf("new-%d", i)} {
			if got, want := lastOf(t, e, key) != 0, i == won; got != want {
				t.Fatalf("key %s written=%v, want %v (winner %d)", key, got, want, won)
			}
		}
	}
}

// A retry with the same write id is stored once and answered with the
// stored revisions; the same id for other ops is refused.
func TestTxnRetry(t *testing.T) {
	e := testenv.Start(t)
	w := newWriter(e, writer.Config{})
	req := api.TxnRequest{WriteID: "order-7", Ops: []api.TxnOp{txnPut("a", "1"), txnPut("b", "2")}}
	first := mustTxn(t, w, req)
	mustWrite(t, w, put("a", "later"))
	last := lastSeq(t, e)
	again := mustTxn(t, w, req)
	if got, want := again.Revision, first.Revision; got != want {
		t.Fatalf("retry Revision=%d, want %d", got, want)
	}
	if got, want := again.Ops[0].Revision, first.Ops[0].Revision; got != want {
		t.Fatalf("retry op 0 Revision=%d, want %d", got, want)
	}
	if got := lastSeq(t, e); got != last {
		t.Fatalf("stream last %d after a retry, want %d", got, last)
	}
	other := req
	other.Ops = []api.TxnOp{txnPut("a", "1"), txnPut("b", "3")}
	if _, err := w.Txn(testContext(t), other); !errors.Is(err, api.ErrWriteIDReused) {
		t.Fatalf("other ops under the same write id: %v, want %v", err, api.ErrWriteIDReused)
	}
}

// A session's transaction is one step of the session, retried once.
func TestTxnSession(t *testing.T) {
	e := testenv.Start(t)
	w := newWriter(e, writer.Config{})
	one := api.WriteRequest{Op: api.OpPut, Key: "k", Value: []byte("1"), Session: "s1", SessionSeq: 1}
	mustWrite(t, w, one)
	txn := api.TxnRequest{WriteID: "t2", Session: "s1", SessionSeq: 2, Ops: []api.TxnOp{txnPut("a", "2"), txnPut("b", "2")}}
	res := mustTxn(t, w, txn)
	if got, want := getMsg(t, e, res.Revision-3).Header.Get(api.HeaderOp), string(stream.OpSession); got != want {
		t.Fatalf("message before the transaction has op %q, want its session marker", got)
	}
	if again := mustTxn(t, w, txn); again.Revision != res.Revision {
		t.Fatalf("retry Revision=%d, want %d", again.Revision, res.Revision)
	}
	mustWrite(t, w, api.WriteRequest{Op: api.OpPut, Key: "k", Value: []byte("3"), Session: "s1", SessionSeq: 3})
	late := txn
	late.WriteID, late.SessionSeq = "t2b", 2
	if _, err := w.Txn(testContext(t), late); !errors.Is(err, api.ErrOutOfOrder) {
		t.Fatalf("a transaction behind its session: %v, want %v", err, api.ErrOutOfOrder)
	}
}

// Limits and malformed transactions fail before anything is published.
func TestTxnLimits(t *testing.T) {
	e := testenv.Start(t)
	w := newWriter(e, writer.Config{TxnMaxOps: 3, TxnMaxBytes: 100})
	before := lastSeq(t, e)
	big := make([]byte, 101)
	for _, tt := range []struct {
		name string
		ops  []api.TxnOp
		want error
	}{
		{"empty", nil, api.ErrInvalidRequest},
		{"too many ops", []api.TxnOp{txnPut("a", ""), txnPut("b", ""), txnPut("c", ""), txnPut("d", "")}, api.ErrInvalidRequest},
		{"too many bytes", []api.TxnOp{{Op: api.OpPut, Key: "a", Value: big}}, api.ErrValueTooLarge},
		{"key twice", []api.TxnOp{txnPut("a", ""), txnPut("a", "")}, api.ErrInvalidRequest},
		{"bad key", []api.TxnOp{txnPut("", "")}, api.ErrInvalidKey},
		{"two conditions", []api.TxnOp{{Op: api.OpPut, Key: "a", IfRevision: 1, IfAbsent: true}}, api.ErrInvalidRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := w.Txn(testContext(t), api.TxnRequest{Ops: tt.ops}); !errors.Is(err, tt.want) {
				t.Fatalf("Txn: %v, want %v", err, tt.want)
			}
		})
	}
	if got := lastSeq(t, e); got != before {
		t.Fatalf("stream last %d, want %d", got, before)
	}
}

// The transaction endpoint: the same transaction over NATS, the failing op
// named in the error header.
func TestServiceTxn(t *testing.T) {
	e := testenv.Start(t)
	subjects := wire.Subjects{}
	stacktest.RunWriter(t, e, subjects)
	nc := e.Conn.Conn
	txn := func(req api.TxnRequest) (api.TxnResult, error) {
		t.Helper()
		reply, err := nc.RequestMsg(wire.TxnMsg(subjects.Txn(), req), 10*time.Second)
		if err != nil {
			t.Fatalf("request on %s: %v", subjects.Txn(), err)
		}
		return wire.DecodeTxnReply(reply)
	}
	res, err := txn(api.TxnRequest{Ops: []api.TxnOp{txnPut("a", "1"), txnPut("b", "2")}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Token, e.Stream.Token(res.Revision); got != want || res.Revision != lastSeq(t, e) {
		t.Fatalf("Token=%v, want %v (Revision=%d)", got, want, res.Revision)
	}
	if len(res.Ops) != 2 || res.Ops[1].Key != "b" || res.Ops[1].Revision != res.Revision {
		t.Fatalf("Ops=%+v", res.Ops)
	}
	_, err = txn(api.TxnRequest{Token: res.Token, Ops: []api.TxnOp{txnPut("c", "1"), {Op: api.OpPut, Key: "a", IfAbsent: true}}})
	if op, ok := api.FailedOp(err); !errors.Is(err, api.ErrRevisionMismatch) || !ok || op != 1 {
		t.Fatalf("lost condition: %v (op %d, %v), want %v at op 1", err, op, ok, api.ErrRevisionMismatch)
	}
	if got := lastSeq(t, e); got != res.Revision {
		t.Fatalf("stream last %d after a refused transaction, want %d", got, res.Revision)
	}
	reply, err := nc.Request(subjects.Txn(), []byte(`{"ops":[{"op":"zap","key":"a"}]}`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wire.DecodeTxnReply(reply); !errors.Is(err, api.ErrInvalidRequest) {
		t.Fatalf("malformed transaction: %v, want %v", err, api.ErrInvalidRequest)
	}
}

// A session's write id that names a single write is refused for a
// transaction of the same step.
func TestTxnSessionWriteIDOfAWrite(t *testing.T) {
	e := testenv.Start(t)
	w := newWriter(e, writer.Config{})
	mustWrite(t, w, api.WriteRequest{Op: api.OpPut, Key: "k", Value: []byte("1"), Session: "s1", SessionSeq: 1, WriteID: "w1"})
	_, err := w.Txn(testContext(t), api.TxnRequest{WriteID: "w1", Session: "s1", SessionSeq: 1, Ops: []api.TxnOp{txnPut("a", "1")}})
	if !errors.Is(err, api.ErrWriteIDReused) {
		t.Fatalf("Txn under a single write's id: %v, want %v", err, api.ErrWriteIDReused)
	}
}
