package replicator_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
)

func TestFormatBytes(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{12<<20 + 512<<10, "12.5 MiB"}, {40 << 20, "40.0 MiB"}, {3 << 30, "3.0 GiB"},
	} {
		if got := replicator.FormatBytes(tt.n); got != tt.want {
			t.Errorf("FormatBytes(%d)=%q, want %q", tt.n, got, tt.want)
		}
	}
}

// gatedReader hands out the first half of a snapshot, then waits for
// release before the rest.
type gatedReader struct {
	first, rest io.Reader
	release     <-chan struct{}
	ctx         context.Context
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if n, err := g.first.Read(p); err != io.EOF {
		return n, err
	}
	select {
	case <-g.release:
	case <-g.ctx.Done():
		return 0, g.ctx.Err()
	}
	return g.rest.Read(p)
}

// While a replica downloads a snapshot, Bootstrapping (the replica's
// status) says how many bytes of how many have arrived, with units; the log
// says how much was received once it is restored.
func TestBootstrapReportsBytes(t *testing.T) {
	env := testenv.Start(t)
	ws, _ := mixed(200)
	r1 := open(t, env, t.TempDir())
	run(t, r1)
	waitApplied(t, r1, publish(t, env, ws...))
	purge(t, env, jetstream.WithPurgeKeep(10))

	release := make(chan struct{})
	var snapSize atomic.Int64
	boot := bootstrapFunc(func(ctx context.Context, _ uint64, restore func(io.Reader) (uint64, error)) error {
		var buf bytes.Buffer
		if _, err := r1.Snapshot(ctx, &buf); err != nil {
			return err
		}
		snap := buf.Bytes()
		snapSize.Store(int64(len(snap)))
		half := len(snap) / 2
		_, err := restore(replicator.WithSize(&gatedReader{
			first: bytes.NewReader(snap[:half]), rest: bytes.NewReader(snap[half:]), release: release, ctx: ctx,
		}, int64(len(snap))))
		return err
	})
	var logs testenv.LogBuffer
	r2 := open(t, env, filepath.Join(t.TempDir(), "r2"), func(c *replicator.Config) {
		c.ID, c.Bootstrap = "r2", boot
		c.Logger = zerolog.New(&logs)
	})
	run(t, r2)

	var (
		status string
		size   int64
	)
	testenv.Eventually(t, testTimeout, "Bootstrapping shows the bytes received", func() bool {
		if err := r2.Bootstrapping(); err != nil {
			status = err.Error()
		}
		size = snapSize.Load()
		return size > 0 && strings.Contains(status, "received "+replicator.FormatBytes(size/2)+" of "+replicator.FormatBytes(size)+" of the snapshot")
	})
	if !strings.HasPrefix(status, replicator.ErrBootstrapping.Error()+": received ") || !strings.Contains(status, "attempt 1") {
		t.Fatalf("Bootstrapping()=%q, want the bytes first and the attempt kept", status)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := r2.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	testenv.Eventually(t, testTimeout, "the bootstrapped line logged", func() bool {
		return logs.Contains(`"message":"bootstrapped from a snapshot`)
	})
	took := logField(t, &logs, "bootstrapped from a snapshot; applying the stream from there", "took")
	if d, err := time.ParseDuration(fmt.Sprint(took)); err != nil || d <= 0 {
		t.Errorf("bootstrapped line: took=%v (%T), want a duration with its unit", took, took)
	}
	want := `"received":"` + replicator.FormatBytes(size) + " of " + replicator.FormatBytes(size) + `"`
	if !logs.Contains(want) || !logs.Contains(`"message":"snapshot received and restored"`) {
		t.Fatalf("log has no %s in a line saying the snapshot was received:\n%s", want, logs.String())
	}
}

// logField returns field of the last line in logs whose message is msg.
func logField(t *testing.T, logs *testenv.LogBuffer, msg, field string) any {
	t.Helper()
	e := logs.Last(msg)
	if e == nil || e[field] == nil {
		t.Fatalf("no log line %q with %s:\n%s", msg, field, logs.String())
	}
	return e[field]
}
