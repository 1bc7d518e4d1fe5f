package bench

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"fmt"
	"strconv"
)

// txnSizes are the transaction sizes measured, in puts.
var txnSizes = []int{2, 10, 100}

// txnPut names the txn section's baseline: the same keys written one put
// at a time, by the same callers, through the same writer service.
const txnPut = "single puts, one key each (keys/s)"

func txnKey(n, i, j int) string {
	return "bench/t/" + strconv.Itoa(n) + "/" + strconv.Itoa((i*n+j)%10000)
}

// txns measures transactions of txnSizes puts through the writer service
// over NATS: transactions/s, and keys/s next to the same keys written one
// put at a time by the same closed loop of callers.
func (p *phases) txns(ctx context.Context) error {
	e := p.e
	p.progress("txn: %s", txnPut)
	single := func(ctx context.Context, i int) error {
		_, err := e.transport.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: txnKey(1, i, 0), Value: p.value})
		return err
	}
	p.warm(ctx, single)
	base := latencyRow("txn", txnPut, closedLoop(ctx, p.load(), single))
	base.Unit = "keys/s"
	base.Note = joinNote(base.Note, fmt.Sprintf("%d callers, each sending its next put when the last one is answered", p.cfg.Concurrency))
	p.add(base)
	for _, n := range txnSizes {
		fn := func(ctx context.Context, i int) error {
			ops := make([]api.TxnOp, n)
			for j := range ops {
				ops[j] = api.TxnOp{Op: api.OpPut, Key: txnKey(n, i, j), Value: p.value}
			}
			_, err := e.transport.Txn(ctx, api.TxnRequest{Ops: ops})
			return err
		}
		name := fmt.Sprintf("transactions of %d puts", n)
		p.progress("txn: %s", name)
		p.warm(ctx, fn)
		l := p.load()
		if l.ops > 0 {
			l.ops = max(l.ops/n, 4*l.workers) // about as many keys as the baseline
		}
		r := latencyRow("txn", name, closedLoop(ctx, l, fn))
		r.Unit = "txn/s"
		p.add(r)
		keys := Row{Section: "txn", Name: fmt.Sprintf("keys/s in transactions of %d puts", n), Value: r.Value * float64(n), Unit: "keys/s", Ops: r.Ops * n}
		compare(&keys, base)
		if n == 10 {
			// A transaction of 10 keys should cost well under 10 single puts.
			keys.goal = goal{minRatio: 2}
		}
		p.add(keys)
	}
	return nil
}
