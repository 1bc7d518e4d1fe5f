package wire_test

import (
	"github.com/tidemark/tidemark/wire"

	"context"
	"testing"
	"time"
)

// TestPoolDo checks that Do runs a request on the caller's goroutine, that
// Close waits for it as for the pool's own, and that a closing pool runs
// nothing more.
func TestPoolDo(t *testing.T) {
	p := wire.NewPool(context.Background(), 1)
	ran := false
	if !p.Do(func(ctx context.Context) { ran = ctx.Err() == nil }) || !ran {
		t.Fatal("Do did not run its request on the caller's goroutine with a live context")
	}

	inside, release := make(chan struct{}), make(chan struct{})
	go p.Do(func(ctx context.Context) { close(inside); <-release })
	<-inside
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a request of Do was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-closed
	if p.Do(func(context.Context) { t.Error("a closed pool ran a request") }) {
		t.Fatal("Do on a closed pool returned true")
	}
}
