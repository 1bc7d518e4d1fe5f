package stream

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// JetStream's atomic batch publish headers.
const (
	HeaderBatchID     = "Nats-Batch-Id"
	HeaderBatchSeq    = "Nats-Batch-Sequence"
	HeaderBatchCommit = "Nats-Batch-Commit"
)

// MaxAtomicBatch is the server's default limit on the messages of an atomic
// batch.
const MaxAtomicBatch = 1000

// BatchAck is the server's answer to the commit of an atomic batch.
type BatchAck struct {
	Stream string              `json:"stream"`
	Seq    uint64              `json:"seq"` // the last message's
	Batch  string              `json:"batch"`
	Count  int                 `json:"count"`
	Error  *jetstream.APIError `json:"error"`
}

// PublishBatch publishes msgs as one JetStream atomic batch (CommitBatch)
// and returns the sequence of the last message.
func PublishBatch(ctx context.Context, nc *nats.Conn, msgs []*nats.Msg) (uint64, error) {
	ack, err := CommitBatch(ctx, nc, msgs)
	return ack.Seq, err
}

// CommitBatch publishes msgs as one JetStream atomic batch: the stream
// stores all of them, contiguously, or none, checking every message's
// expectations (Nats-Expected-*) and message id at the commit. The stream
// must allow atomic publishes. It sets the batch headers on msgs and
// returns the server's ack; a refused batch fails with the server's
// *jetstream.APIError, and a batch whose ack does not come may or may not
// be stored.
func CommitBatch(ctx context.Context, nc *nats.Conn, msgs []*nats.Msg) (BatchAck, error) {
	if len(msgs) == 0 {
		return BatchAck{}, nil
	}
	id := nuid.Next()
	for i, m := range msgs {
		if m.Header == nil {
			m.Header = nats.Header{}
		}
		m.Header.Set(HeaderBatchID, id)
		m.Header.Set(HeaderBatchSeq, strconv.Itoa(i+1))
		if i == len(msgs)-1 {
			m.Header.Set(HeaderBatchCommit, "1")
			break
		}
		if err := nc.PublishMsg(m); err != nil {
			return BatchAck{}, fmt.Errorf("batch publish: %w", err)
		}
	}
	reply, err := nc.RequestMsgWithContext(ctx, msgs[len(msgs)-1])
	if err != nil {
		return BatchAck{}, fmt.Errorf("batch commit: %w", err)
	}
	return ParseBatchAck(reply.Data, len(msgs))
}

// ParseBatchAck decodes the server's answer to the commit of an atomic
// batch of n messages; an answer that is an error, or that does not account
// for n messages, fails.
func ParseBatchAck(data []byte, n int) (BatchAck, error) {
	var ack BatchAck
	if err := json.Unmarshal(data, &ack); err != nil {
		return BatchAck{}, fmt.Errorf("batch commit: bad ack %q: %w", truncate(data, 200), err)
	}
	switch {
	case ack.Error != nil:
		return BatchAck{}, fmt.Errorf("batch commit: %w", ack.Error)
	case ack.Count != n:
		return BatchAck{}, fmt.Errorf("batch commit: %d messages stored, want %d", ack.Count, n)
	case ack.Seq < uint64(n):
		return BatchAck{}, fmt.Errorf("batch commit: last sequence %d for %d messages", ack.Seq, n)
	}
	return ack, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
