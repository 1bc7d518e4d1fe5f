package chaos

import (
	"github.com/tidemark/tidemark/internal/backoff"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/chaos/history"
	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/stream"
)

// DumpStream reads every message of the stream from its first sequence to
// its last, with an ordered consumer, as the checker wants them.
func DumpStream(ctx context.Context, js jetstream.JetStream, cfg stream.Config) ([]history.Message, error) {
	if cfg.Name == "" {
		cfg.Name = stream.DefaultName
	}
	if cfg.Subject == "" {
		cfg.Subject = stream.DefaultSubject
	}
	h, err := js.Stream(ctx, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("dump stream: %w", err)
	}
	info, err := h.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dump stream: %w", err)
	}
	last := info.State.LastSeq
	if last == 0 {
		return nil, nil
	}
	if info.State.FirstSeq != 1 {
		return nil, fmt.Errorf("dump stream: it starts at %d, not 1 (messages removed)", info.State.FirstSeq)
	}
	cons, err := js.OrderedConsumer(ctx, cfg.Name, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("dump stream: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("dump stream: %w", err)
	}
	defer it.Stop()
	out := make([]history.Message, 0, last)
	for uint64(len(out)) < last {
		nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("dump stream at %d of %d: %w", len(out), last, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("dump stream: %w", err)
		}
		m, err := decodeMessage(cfg.Subject, meta.Sequence.Stream, msg.Subject(), msg.Headers(), msg.Data())
		if err != nil {
			return nil, err
		}
		if m.Seq != uint64(len(out))+1 {
			return nil, fmt.Errorf("dump stream: got sequence %d, want %d", m.Seq, len(out)+1)
		}
		out = append(out, m)
	}
	return out, nil
}

// decodeMessage turns a stream message into the checker's form.
func decodeMessage(prefix string, seq uint64, subject string, h nats.Header, data []byte) (history.Message, error) {
	e, err := stream.DecodeEntry(prefix, subject, h.Get(api.HeaderOp), data)
	if err != nil {
		return history.Message{}, fmt.Errorf("dump stream: seq %d: %w", seq, err)
	}
	m := history.Message{Seq: seq, Kind: history.Put, Key: e.Key, Value: e.Value, MsgID: h.Get(stream.HeaderMsgID), Batch: h.Get(stream.HeaderBatchID)}
	switch e.Op {
	case api.OpDelete:
		m.Kind, m.Value = history.Delete, nil
	case stream.OpSession, stream.OpTxn:
		m.Kind, m.Value = history.Marker, nil
	}
	if h.Get(stream.HeaderTxn) != "" {
		t, err := stream.DecodeMessage(prefix, subject, h, data)
		if err != nil {
			return history.Message{}, fmt.Errorf("dump stream: seq %d: %w", seq, err)
		}
		m.TxnIndex, m.TxnSize = t.TxnIndex, t.TxnSize
	}
	if m.SessionID = h.Get(api.HeaderSession); m.SessionID != "" {
		if m.SessionSeq, err = strconv.ParseUint(h.Get(api.HeaderSessionSeq), 10, 64); err != nil {
			return history.Message{}, fmt.Errorf("dump stream: seq %d: bad session sequence %q", seq, h.Get(api.HeaderSessionSeq))
		}
	}
	return m, nil
}

// DumpReplica reads the state of one replica through its own NATS
// endpoints: every live key by a scan, and the tombstone of every other
// key the stream wrote. The replica must not be applying anything while it
// is dumped; the applied sequences of its replies must agree.
func DumpReplica(ctx context.Context, t *client.NATS, id string, msgs []history.Message) (history.Replica, error) {
	rep := history.Replica{ID: id}
	var applied []uint64
	live := map[string]bool{}
	after := ""
	for {
		res, err := t.Scan(ctx, api.ScanRequest{After: after, Limit: api.MaxScanLimit, ReadSpec: api.ReadSpec{Replica: id, Consistency: api.Eventual}})
		if err != nil {
			return rep, fmt.Errorf("dump replica %s: scan after %q: %w", id, after, err)
		}
		applied = append(applied, res.Applied)
		for _, it := range res.Items {
			rep.Records = append(rep.Records, history.Record{Key: it.Key, Value: it.Value, Revision: it.Revision})
			live[it.Key] = true
		}
		if res.Next == "" {
			break
		}
		after = res.Next
	}
	keys := map[string]bool{}
	for _, m := range msgs {
		if m.Kind == history.Marker {
			continue
		}
		keys[m.Key] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		if !live[k] {
			sorted = append(sorted, k)
		}
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		res, err := t.Get(ctx, api.GetRequest{Key: k, ReadSpec: api.ReadSpec{Replica: id, Consistency: api.Eventual}})
		applied = append(applied, res.Applied)
		switch {
		case err == nil:
			return rep, fmt.Errorf("dump replica %s: %q is live but the scan left it out", id, k)
		case !errors.Is(err, api.ErrNotFound):
			return rep, fmt.Errorf("dump replica %s: get %q: %w", id, k, err)
		case res.Record.Revision != 0:
			rep.Records = append(rep.Records, history.Record{Key: k, Revision: res.Record.Revision, Deleted: true})
		}
	}
	for _, a := range applied {
		if a != applied[0] {
			return rep, fmt.Errorf("dump replica %s: applied moved from %d to %d during the dump", id, applied[0], a)
		}
	}
	if len(applied) > 0 {
		rep.Applied = applied[0]
	}
	return rep, nil
}

// ReplicaApplied asks a replica, through its own endpoint, how far it has
// applied.
func ReplicaApplied(ctx context.Context, t *client.NATS, id string) (uint64, error) {
	res, err := t.Get(ctx, api.GetRequest{Key: "chaos-probe", ReadSpec: api.ReadSpec{Replica: id, Consistency: api.Eventual}})
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		return 0, err
	}
	return res.Applied, nil
}

// StreamLast returns the stream's last sequence.
func StreamLast(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	h, err := js.Stream(ctx, stream.DefaultName)
	if err != nil {
		return 0, err
	}
	info, err := h.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// Converge waits until every replica has applied the stream's last
// sequence and returns how long that took.
func Converge(ctx context.Context, js jetstream.JetStream, t *client.NATS, ids []string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		done, err := converged(ctx, js, t, ids)
		if done {
			return time.Since(start), nil
		}
		if err != nil {
			lastErr = err
		}
		if errors.Is(err, errReplicaAhead) {
			return time.Since(start), fmt.Errorf("replicas did not converge: %w", err)
		}
		if err := backoff.Sleep(ctx, 50*time.Millisecond); err != nil {
			return time.Since(start), fmt.Errorf("replicas did not converge in %v: %v (last: %v)", timeout, err, lastErr)
		}
	}
}

func converged(ctx context.Context, js jetstream.JetStream, t *client.NATS, ids []string) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	last, err := StreamLast(rctx, js)
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		a, err := ReplicaApplied(rctx, t, id)
		if err != nil {
			return false, fmt.Errorf("replica %s: %w", id, err)
		}
		if a > last {
			return false, fmt.Errorf("%w: %s applied %d, the stream's last is %d", errReplicaAhead, id, a, last)
		}
		if a != last {
			return false, fmt.Errorf("replica %s applied %d of %d", id, a, last)
		}
	}
	return true, nil
}
