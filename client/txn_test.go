package client_test

import (
	"github.com/tidemark/tidemark/api"

	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
)

// Txn over both transports: all or nothing, the failing op named, and a
// session that reads its transaction back from every replica at once.
func TestTxn(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	for _, tr := range transports(s) {
		t.Run(tr.name, func(t *testing.T) {
			ctx := tctx(t, 20*time.Second)
			c := client.New(tr.t)
			sess := c.NewSession()
			p := func(k string) string { return tr.name + "/" + k }
			first, err := sess.Put(ctx, p("a"), []byte("old"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := sess.Txn(ctx,
				client.TxnPut(p("a"), []byte("new"), client.IfRevision(first.Revision)),
				client.TxnPut(p("b"), []byte("b"), client.IfAbsent()),
				client.TxnDelete(p("c")))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := sess.Token().Seq, res.Revision; got != want || len(res.Ops) != 3 || res.Ops[2].Revision != res.Revision {
				t.Fatalf("session token at %d, transaction %+v", got, res)
			}
			for _, id := range []string{"r1", "r2"} {
				for key, want := range map[string]string{p("a"): "new", p("b"): "b"} {
					g, err := sess.Get(ctx, key, client.WithReplica(id))
					if err != nil || string(g.Record.Value) != want {
						t.Fatalf("%s: Get(%s)=%q, %v, want %q", id, key, g.Record.Value, err, want)
					}
				}
			}
			_, err = sess.Txn(ctx, client.TxnPut(p("x"), nil), client.TxnPut(p("b"), nil, client.IfAbsent()))
			if op, ok := api.FailedOp(err); !errors.Is(err, api.ErrRevisionMismatch) || !ok || op != 1 {
				t.Fatalf("lost condition: %v (op %d, %v), want %v at op 1", err, op, ok, api.ErrRevisionMismatch)
			}
			if _, err := sess.Get(ctx, p("x")); !errors.Is(err, api.ErrNotFound) {
				t.Fatalf("Get of a refused transaction's key: %v, want not found", err)
			}
			// The session goes on after its transactions, in order.
			if _, err := sess.Put(ctx, p("after"), []byte("1")); err != nil {
				t.Fatal(err)
			}
			ops := make([]api.TxnOp, 100)
			for i := range ops {
				ops[i] = client.TxnPut(fmt.Sprintf("%s/many/%03d", tr.name, i), []byte("v"))
			}
			many, err := c.Txn(ctx, ops...)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := many.Ops[0].Revision, many.Revision-99; got != want {
				t.Fatalf("first op at %d, want %d", got, want)
			}
		})
	}
}
