package stream_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/stream"
)

func TestEnsureKeepsIdentity(t *testing.T) {
	dir := t.TempDir()
	e := testenv.StartDir(t, dir)
	ctx := context.Background()
	id := e.Stream.ID()
	again, err := stream.Ensure(ctx, e.JS, e.Config)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := again.ID(), id; got != want {
		t.Fatalf("ID after second Ensure=%q, want %q", got, want)
	}
	// A changed limit is kept as it is, and reported, unless asked for.
	cfg := e.Config
	cfg.MaxAge = time.Hour
	kept, err := stream.Ensure(ctx, e.JS, cfg)
	if err != nil {
		t.Fatal(err)
	}
	info, err := kept.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 0 || len(kept.Drift()) != 1 {
		t.Fatalf("max age %v, drift %v; want the stream kept (0) and one drift", info.Config.MaxAge, kept.Drift())
	}
	// With Reconfigure it is applied, without changing the identity.
	cfg.Reconfigure = true
	upd, err := stream.Ensure(ctx, e.JS, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := upd.ID(), id; got != want {
		t.Fatalf("ID after update=%q, want %q", got, want)
	}
	if info, err = upd.Info(ctx); err != nil || info.Config.MaxAge != time.Hour {
		t.Fatalf("max age after reconfigure %v, %v; want 1h", info.Config.MaxAge, err)
	}
	// A recreated stream gets a new identity, so old tokens are rejected.
	if err := e.JS.DeleteStream(ctx, e.Config.Name); err != nil {
		t.Fatal(err)
	}
	re, err := stream.Ensure(ctx, e.JS, e.Config)
	if err != nil {
		t.Fatal(err)
	}
	if re.ID() == id {
		t.Fatalf("recreated stream kept identity %q", id)
	}
	if err := re.CheckToken(ctx, api.NewToken(id, 0)); !errors.Is(err, api.ErrTokenStreamMismatch) {
		t.Fatalf("CheckToken(old stream)=%v, want ErrTokenStreamMismatch", err)
	}
}

func TestCheckTokenFuture(t *testing.T) {
	e := testenv.Start(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := e.JS.Publish(ctx, stream.KeySubject(e.Config.Subject, "k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	// A second handle has not seen the publishes: it must ask the server.
	s, err := stream.Open(ctx, e.JS, e.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckToken(ctx, s.Token(3)); err != nil {
		t.Fatalf("CheckToken(last)=%v", err)
	}
	if err := s.CheckToken(ctx, s.Token(4)); !errors.Is(err, api.ErrTokenFromFuture) {
		t.Fatalf("CheckToken(last+1)=%v, want ErrTokenFromFuture", err)
	}
	if got, want := s.KnownLast(), uint64(3); got != want {
		t.Fatalf("KnownLast()=%d, want %d", got, want)
	}
}

func TestOpenWaitsForStream(t *testing.T) {
	e := testenv.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	cfg := e.Config
	cfg.Name = "MISSING"
	if _, err := stream.Open(ctx, e.JS, cfg); err == nil {
		t.Fatal("Open of a missing stream succeeded")
	}
}

// apiRequests returns how many JetStream API requests e's server has received.
func apiRequests(t *testing.T, e *testenv.Env) uint64 {
	t.Helper()
	jsz, err := e.Server.Jsz(nil)
	if err != nil {
		t.Fatal(err)
	}
	return jsz.API.Total
}

// TestCheckTokenStaleAnswer gives CheckToken a token that the server's
// answers do not yet show, as a cluster's lagging stream info does, and only
// then makes the stream reach it: a token the stream reaches within
// TokenGrace is valid, not one from the future.
func TestCheckTokenStaleAnswer(t *testing.T) {
	e := testenv.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subject := stream.KeySubject(e.Config.Subject, "k")
	if _, err := e.JS.Publish(ctx, subject, []byte("v")); err != nil {
		t.Fatal(err)
	}
	s, err := stream.Open(ctx, e.JS, e.Config)
	if err != nil {
		t.Fatal(err)
	}
	base := apiRequests(t, e)
	done := make(chan error, 1)
	go func() { done <- s.CheckToken(ctx, s.Token(2)) }()
	// Three answers behind the token (more than one shared request and one
	// of its own), then the write lands.
	var early error
	testenv.Eventually(t, 5*time.Second, "CheckToken asking three times", func() bool {
		select {
		case early = <-done:
			return true
		default:
			return apiRequests(t, e) >= base+3
		}
	})
	if early != nil {
		t.Fatalf("CheckToken before the stream reached the token=%v, want it to ask again", early)
	}
	if _, err := e.JS.Publish(ctx, subject, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("CheckToken of a token the stream reached within the grace=%v, want nil", err)
	}
	// A token really ahead is still rejected, after the grace, well inside
	// a read's wait.
	start := time.Now()
	if err := s.CheckToken(ctx, s.Token(1000)); !errors.Is(err, api.ErrTokenFromFuture) {
		t.Fatalf("CheckToken(far ahead)=%v, want ErrTokenFromFuture", err)
	}
	if took := time.Since(start); took > 2*stream.TokenGrace {
		t.Fatalf("CheckToken(far ahead) took %v, want at most about %v", took, stream.TokenGrace)
	}
}

// TestLastSeqCallerCancel has callers share a last-sequence request whose
// first caller gives up while the request is held up on its way: the
// others still get the answer, and the first gets its own error at once.
func TestLastSeqCallerCancel(t *testing.T) {
	e := testenv.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.JS.Publish(ctx, stream.KeySubject(e.Config.Subject, "k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	proxy, nc, s := testenv.ProxyStream(t, e.Server, e.Config)

	proxy.Hold()
	defer proxy.Release()
	sent := nc.Conn.Stats().OutMsgs
	firstCtx, firstCancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer firstCancel()
	first := make(chan error, 1)
	go func() { _, err := s.LastSeq(firstCtx); first <- err }()
	testenv.Eventually(t, 5*time.Second, "the first caller's request sent", func() bool {
		return nc.Conn.Stats().OutMsgs > sent
	})
	const others = 8
	type answer struct {
		last uint64
		err  error
	}
	answers := make(chan answer, others)
	for range others {
		go func() { last, err := s.LastSeq(ctx); answers <- answer{last, err} }()
	}
	if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LastSeq of the caller that timed out=%v, want %v", err, context.DeadlineExceeded)
	}
	proxy.Release()
	for range others {
		a := <-answers
		if a.err != nil || a.last != 1 {
			t.Fatalf("LastSeq of a caller that waits on=%d, %v; want 1, nil", a.last, a.err)
		}
	}
}
