package deadline

import (
	"context"
	"errors"
	"testing"
	"time"
)

// testTimeout bounds every wait of a test.
const testTimeout = 10 * time.Second

// started reports whether c's timer started.
func started(c context.Context) bool {
	l := c.(*lazyCtx)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ctx != nil
}

// waitDone waits until ctx ends, and fails the test if it does not in time.
func waitDone(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(testTimeout):
		t.Fatalf("context did not end within %v", testTimeout)
	}
}

func TestRequestWithinStartsNoTimer(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), time.Hour)
	defer cancel()
	rctx, rcancel := Within(ctx, time.Minute)
	defer rcancel()
	if err := ctx.Err(); err != nil {
		t.Fatalf("Err()=%v, want nil", err)
	}
	if d, _ := rctx.Deadline(); time.Until(d) > time.Minute {
		t.Fatalf("request deadline in %v, want within a minute", time.Until(d))
	}
	if started(ctx) {
		t.Fatal("the outer timer started for a request within it")
	}
}

func TestRequestEndsWithCancel(t *testing.T) {
	parent, pcancel := context.WithCancel(context.Background())
	defer pcancel()
	ctx, cancel := WithTimeout(parent, time.Hour)
	rctx, rcancel := Within(ctx, time.Minute)
	defer rcancel()
	cancel()
	waitDone(t, rctx)
	if got, want := ctx.Err(), context.Canceled; !errors.Is(got, want) {
		t.Fatalf("Err()=%v, want %v", got, want)
	}
	waitDone(t, ctx)
	if got, want := parent.Err(), error(nil); got != want {
		t.Fatalf("parent Err()=%v, want %v", got, want)
	}
	// A request made after the cancel ends at once.
	late, lcancel := Within(ctx, time.Minute)
	defer lcancel()
	waitDone(t, late)
}

func TestRequestEndsWithParent(t *testing.T) {
	parent, pcancel := context.WithCancel(context.Background())
	ctx, cancel := WithTimeout(parent, time.Hour)
	defer cancel()
	rctx, rcancel := Within(ctx, time.Minute)
	defer rcancel()
	pcancel()
	waitDone(t, rctx)
	waitDone(t, ctx)
	if got, want := ctx.Err(), context.Canceled; !errors.Is(got, want) {
		t.Fatalf("Err()=%v, want %v", got, want)
	}
}

func TestDeadlineEnds(t *testing.T) {
	ctx, cancel := WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	waitDone(t, ctx)
	if got, want := ctx.Err(), context.DeadlineExceeded; !errors.Is(got, want) {
		t.Fatalf("Err()=%v, want %v", got, want)
	}
	if got, want := context.Cause(ctx), context.DeadlineExceeded; !errors.Is(got, want) {
		t.Fatalf("Cause()=%v, want %v", got, want)
	}
}

func TestErrAfterDeadlineWithoutWaiting(t *testing.T) {
	ctx, cancel := WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if got, want := ctx.Err(), context.DeadlineExceeded; !errors.Is(got, want) {
		t.Fatalf("Err()=%v, want %v", got, want)
	}
	rctx, rcancel := Within(ctx, time.Minute)
	defer rcancel()
	if rctx != ctx {
		t.Fatal("Within made a request context in a context that has ended")
	}
}

func TestRequestOfLongerTimeoutIsContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if rctx, rcancel := Within(ctx, time.Minute); rctx != ctx {
		rcancel()
		t.Fatal("Within made a context for a request that ctx ends sooner")
	}
	if lctx, lcancel := WithTimeout(ctx, time.Minute); lctx != ctx {
		lcancel()
		t.Fatal("WithTimeout made a context that its parent ends sooner")
	}
}

func TestValueOfParent(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")
	ctx, cancel := WithTimeout(parent, time.Hour)
	defer cancel()
	if got, want := ctx.Value(key{}), "v"; got != want {
		t.Fatalf("Value()=%v, want %v", got, want)
	}
}

// BenchmarkWithin measures a write's contexts: its budget, and one request
// within it, as an attempt of a write makes them.
func BenchmarkWithin(b *testing.B) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.Run("context", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(parent, 10*time.Second)
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			_ = rctx.Err()
			rcancel()
			cancel()
		}
	})
	b.Run("deadline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := WithTimeout(parent, 10*time.Second)
			rctx, rcancel := Within(ctx, 5*time.Second)
			_ = rctx.Err()
			rcancel()
			cancel()
		}
	})
}
