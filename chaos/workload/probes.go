package workload

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tidemark/tidemark/chaos/history"
)

// Prefixes of the keys the racing pairs and the reusers write.
const (
	racePrefix  = "race/"
	reusePrefix = "reuse/"
)

// race runs racing pair k until ctx ends: p and q (two sessions of the
// history, each sequential, each with its own token and gateway) share one
// Tidemark session id. Each round both send a write of that session at the
// same moment, with the same session sequence or adjacent ones, different
// write ids and keys; then each reads its own key back with its token. At
// most one of a same-sequence pair may be acknowledged, and an
// acknowledged write must be the one its session then reads.
func race(ctx context.Context, k int, p, q *session) (pOps, qOps []history.Op) {
	sid := fmt.Sprintf("c%s-race%d", p.cfg.RunID, k)
	var next uint64 = 1
	for round := 0; ctx.Err() == nil; round++ {
		ps, qs := next, next
		switch p.rng.IntN(3) {
		case 0: // same sequence
			next++
		case 1:
			qs = next + 1
			next += 2
		default:
			ps = next + 1
			next += 2
		}
		pw := raceWrite(p, k, "p", round, len(pOps), sid, ps)
		qw := raceWrite(q, k, "q", round, len(qOps), sid, qs)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, x := range []struct {
			s  *session
			op *history.Op
		}{{p, &pw}, {q, &qw}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), x.s.cfg.OpTimeout)
				x.s.do(octx, x.op)
				cancel()
			}()
		}
		close(start)
		wg.Wait()
		pOps, qOps = append(pOps, pw), append(qOps, qw)
		for _, x := range []struct {
			s   *session
			ops *[]history.Op
			key string
		}{{p, &pOps, pw.Key}, {q, &qOps, qw.Key}} {
			op := history.Op{Session: x.s.id, Index: len(*x.ops), Kind: history.Get, Key: x.key}
			octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), x.s.cfg.OpTimeout)
			x.s.do(octx, &op)
			cancel()
			*x.ops = append(*x.ops, op)
		}
		if !think(ctx, p) {
			break
		}
	}
	return pOps, qOps
}

func raceWrite(s *session, k int, side string, round, index int, sid string, seq uint64) history.Op {
	return history.Op{
		Session: s.id, Index: index, Kind: history.Put,
		Key:       fmt.Sprintf("%s%d/%s", racePrefix, k, side),
		Value:     fmt.Appendf(nil, "v-%s-race%d-%s-%d", s.cfg.RunID, k, side, round),
		WriteID:   fmt.Sprintf("w-%s-race%d-%s-%d", s.cfg.RunID, k, side, round),
		SessionID: sid, SessionSeq: seq,
	}
}

// reuse runs reuser k until ctx ends. Each round it writes a new key with a
// new write id, sends the same write id again with other content (another
// key, or the same key with another value), which must be refused
// (write_id_reused), retries the first write unchanged, which must get its
// original revision, and reads the key back with its token.
func reuse(ctx context.Context, k int, s *session) []history.Op {
	var ops []history.Op
	do := func(op history.Op) {
		op.Session, op.Index = s.id, len(ops)
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.OpTimeout)
		s.do(octx, &op)
		cancel()
		ops = append(ops, op)
	}
	for round := 0; ctx.Err() == nil; round++ {
		id := fmt.Sprintf("w-%s-reuse%d-%d", s.cfg.RunID, k, round)
		first := history.Op{Kind: history.Put, Key: fmt.Sprintf("%s%d/%d", reusePrefix, k, round%8), WriteID: id,
			Value: fmt.Appendf(nil, "v-%s-reuse%d-%d", s.cfg.RunID, k, round)}
		other := first
		if round%2 == 0 {
			other.Key = fmt.Sprintf("%s%d/other%d", reusePrefix, k, round%8)
		} else {
			other.Value = fmt.Appendf(nil, "v-%s-reuse%d-%d-other", s.cfg.RunID, k, round)
		}
		do(first)
		do(other)
		do(first)
		do(history.Op{Kind: history.Get, Key: first.Key})
		if !think(ctx, s) {
			break
		}
	}
	return ops
}

// think pauses s between two rounds; it reports false once ctx has ended.
func think(ctx context.Context, s *session) bool {
	if s.cfg.MaxThink <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(time.Duration(s.rng.Int64N(int64(s.cfg.MaxThink))))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
