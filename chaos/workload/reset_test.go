package workload

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tidemark/tidemark/chaos/history"
	"github.com/tidemark/tidemark/internal/stacktest"
)

// TestTokenOfAnotherStream: a session holding a token of another stream (a
// recreated one) is refused with token_stream_mismatch, drops the token
// and starts again; each reply's stream is recorded.
func TestTokenOfAnotherStream(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	cfg := Config{Seed: 1, Gateways: []string{s.URL}, RunID: "t"}
	cfg.setDefaults()
	hc := &http.Client{Timeout: cfg.OpTimeout}
	ss := &session{cfg: &cfg, id: 0, http: hc, rng: newRand(1, 0), gateway: s.URL}
	ss.token = api.NewToken("0ther5tream", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	op := history.Op{Kind: history.Put, Key: "k", Value: []byte("v"), WriteID: "w1"}
	ss.do(ctx, &op)
	if got, want := op.Code, api.CodeTokenStreamMismatch; got != want {
		t.Fatalf("write with a foreign token: code %q (%s), want %q", got, op.Error, want)
	}
	if got, want := op.Outcome, history.Failed; got != want {
		t.Fatalf("outcome %s, want %s", got, want)
	}
	if !ss.token.IsZero() {
		t.Fatalf("the session kept its token %v after token_stream_mismatch", ss.token)
	}
	op = history.Op{Kind: history.Put, Key: "k", Value: []byte("v"), WriteID: "w1"}
	ss.do(ctx, &op)
	if op.Outcome != history.OK {
		t.Fatalf("write after the reset: %s %s", op.Outcome, op.Error)
	}
	if got, want := op.Stream, s.Stream.ID(); got != want {
		t.Fatalf("op.Stream=%q, want the stack's stream %q", got, want)
	}
	if got, want := ss.token, s.Stream.Token(op.Revision); got != want {
		t.Fatalf("token %v, want %v", got, want)
	}
}
