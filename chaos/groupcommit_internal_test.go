package chaos

import (
	"testing"

	"github.com/tidemark/tidemark/chaos/history"
	"github.com/tidemark/tidemark/writer"
)

// The messages of atomic batches count as group committed, but for a
// conditional session write's batch: its order marker and itself.
func TestGroupCommitted(t *testing.T) {
	put := func(seq uint64, id, batch string) history.Message {
		return history.Message{Seq: seq, Kind: history.Put, Key: "k", MsgID: id, Batch: batch}
	}
	marker := func(seq uint64, of, batch string) history.Message {
		return history.Message{Seq: seq, Kind: history.Marker, MsgID: writer.MarkerID(of), Batch: batch}
	}
	for _, tc := range []struct {
		name string
		msgs []history.Message
		want int
	}{
		{"none", nil, 0},
		{"alone", []history.Message{put(1, "a", ""), put(2, "b", "")}, 0},
		{"a batch of three", []history.Message{put(1, "a", "B"), put(2, "b", "B"), put(3, "c", "B")}, 3},
		{"a batch of two writes", []history.Message{put(1, "a", "B"), put(2, "b", "B")}, 2},
		{"a conditional session write", []history.Message{marker(1, "a", "S"), put(2, "a", "S")}, 0},
		{"a marker batched with another write", []history.Message{marker(1, "a", "B"), put(2, "b", "B")}, 2},
		{"a transaction", []history.Message{
			{Seq: 1, Kind: history.Marker, Batch: "T", TxnSize: 2},
			{Seq: 2, Kind: history.Put, Key: "a", Batch: "T", TxnIndex: 1, TxnSize: 2},
			{Seq: 3, Kind: history.Put, Key: "b", Batch: "T", TxnIndex: 2, TxnSize: 2},
		}, 0},
		{"both", []history.Message{marker(1, "a", "S"), put(2, "a", "S"), put(3, "b", "B"), put(4, "c", "B"), put(5, "d", "")}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := groupCommitted(tc.msgs); got != tc.want {
				t.Fatalf("groupCommitted=%d, want %d", got, tc.want)
			}
		})
	}
}
