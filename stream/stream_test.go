package stream_test

import (
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
	if err := re.CheckToken(ctx, stream.NewToken(id, 0)); !errors.Is(err, stream.ErrTokenStreamMismatch) {
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
	if err := s.CheckToken(ctx, s.Token(4)); !errors.Is(err, stream.ErrTokenFromFuture) {
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
