package chaos

import (
	"github.com/tidemark/tidemark/internal/backoff"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
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
	return dumpStream(ctx, js, cfg, false)
}

// dumpStream is DumpStream; with purged, a stream that no longer starts at
// 1, or loses messages at its start while it is read (compaction), is read
// from where it starts, and the messages are in sequence order with gaps
// only where the stream lost some.
func dumpStream(ctx context.Context, js jetstream.JetStream, cfg stream.Config, purged bool) ([]history.Message, error) {
	cfg = streamDefaults(cfg)
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
	if info.State.FirstSeq != 1 && !purged {
		return nil, fmt.Errorf("dump stream: it starts at %d, not 1 (messages removed)", info.State.FirstSeq)
	}
	it, err := allMessages(ctx, js, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("dump stream: %w", err)
	}
	defer it.Stop()
	out := make([]history.Message, 0, last)
	for len(out) == 0 || out[len(out)-1].Seq < last {
		nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("dump stream at %d of %d: %w", len(out), last, err)
		}
		m, err := historyMessage(cfg.Subject, msg)
		if err != nil {
			return nil, err
		}
		want := uint64(len(out)) + 1
		if len(out) > 0 {
			want = out[len(out)-1].Seq + 1
		}
		if m.Seq != want && !(purged && m.Seq > want) {
			return nil, fmt.Errorf("dump stream: got sequence %d, want %d", m.Seq, want)
		}
		out = append(out, m)
	}
	return out, nil
}

// recorded returns the stream as rec recorded it, up to the stream's last
// sequence, after checking that every message the stream still holds is
// the one recorded at its sequence.
func recorded(ctx context.Context, c *Cluster, rec *Recorder) ([]history.Message, error) {
	held, err := dumpStream(ctx, c.js, stream.Config{}, true)
	if err != nil {
		return nil, err
	}
	if len(held) == 0 {
		return nil, nil
	}
	msgs, err := rec.Messages(ctx, held[len(held)-1].Seq)
	if err != nil {
		return nil, err
	}
	for _, m := range held {
		r := msgs[m.Seq-1]
		if !reflect.DeepEqual(normal(r), normal(m)) {
			return nil, fmt.Errorf("recorder: the stream holds %+v at %d, the recorder read %+v", m, m.Seq, r)
		}
	}
	return msgs, nil
}

// normal is m as two reads of one stream message must agree on.
func normal(m history.Message) history.Message {
	m.Time = m.Time.UTC()
	if len(m.Value) == 0 {
		m.Value = nil
	}
	return m
}

// allMessages iterates over every message of the stream name, from its
// first, with an ordered consumer.
func allMessages(ctx context.Context, js jetstream.JetStream, name string) (jetstream.MessagesContext, error) {
	cons, err := js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, err
	}
	return cons.Messages()
}

// historyMessage turns a message of an ordered consumer of the stream
// under prefix into the checker's form, with its sequence and time.
func historyMessage(prefix string, msg jetstream.Msg) (history.Message, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return history.Message{}, fmt.Errorf("dump stream: %w", err)
	}
	m, err := decodeMessage(prefix, meta.Sequence.Stream, msg.Subject(), msg.Headers(), msg.Data())
	m.Time = meta.Timestamp
	return m, err
}

// streamDefaults is cfg with the default stream name and subject where
// they are empty.
func streamDefaults(cfg stream.Config) stream.Config {
	if cfg.Name == "" {
		cfg.Name = stream.DefaultName
	}
	if cfg.Subject == "" {
		cfg.Subject = stream.DefaultSubject
	}
	return cfg
}

// decodeMessage turns a stream message into the checker's form.
func decodeMessage(prefix string, seq uint64, subject string, h nats.Header, data []byte) (history.Message, error) {
	e, err := stream.DecodeMessage(prefix, subject, h, data)
	if err != nil {
		return history.Message{}, fmt.Errorf("dump stream: seq %d: %w", seq, err)
	}
	m := history.Message{Seq: seq, Kind: history.Put, Key: e.Key, Value: e.Value, MsgID: h.Get(stream.HeaderMsgID),
		Batch: h.Get(stream.HeaderBatchID), SessionID: e.Session, SessionSeq: e.SessionSeq, TTL: e.TTL}
	switch e.Op {
	case api.OpDelete:
		m.Kind, m.Value = history.Delete, nil
	case stream.OpSession, stream.OpTxn:
		m.Kind, m.Value = history.Marker, nil
	case stream.OpTick:
		m.Kind, m.Value = history.Tick, nil
	}
	m.TxnIndex, m.TxnSize = e.TxnIndex, e.TxnSize
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
		if !m.Kind.IsWrite() {
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
	st, err := streamState(ctx, js)
	return st.LastSeq, err
}

// streamFirst returns the stream's first sequence.
func streamFirst(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	st, err := streamState(ctx, js)
	return st.FirstSeq, err
}

// streamState returns the state of the stream.
func streamState(ctx context.Context, js jetstream.JetStream) (jetstream.StreamState, error) {
	h, err := js.Stream(ctx, stream.DefaultName)
	if err != nil {
		return jetstream.StreamState{}, err
	}
	info, err := h.Info(ctx)
	if err != nil {
		return jetstream.StreamState{}, err
	}
	return info.State, nil
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
