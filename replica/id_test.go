package replica_test

import (
	"github.com/tidemark/tidemark/wire"

	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replica"
)

// A second replica started with an id that a running replica serves
// refuses to start, saying why, instead of sharing its subjects.
func TestReplicaRefusesDuplicateID(t *testing.T) {
	f := newFixture(t)
	f.start(t, "r1", true, false)
	subject := wire.Subjects{}.ReplicaGet("r1")
	testenv.Eventually(t, 10*time.Second, "r1 to serve its own subject", func() bool {
		_, err := f.Conn.Conn.Request(subject, nil, time.Second)
		return !errors.Is(err, nats.ErrNoResponders)
	})
	dup := replica.New(replica.Config{ID: "r1", Dir: filepath.Join(t.TempDir(), "dup"), Stream: f.Stream, Conn: f.Conn.Conn, Logger: testLogger(t)})
	if err := dup.Open(); err != nil {
		t.Fatal(err)
	}
	defer dup.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := dup.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), `replica id "r1" is in use`) {
		t.Fatalf("Run of a second r1=%v, want it refused", err)
	}
}

// A replica catching up says how far it is in its readiness.
func TestReadySaysProgress(t *testing.T) {
	f := newFixture(t)
	last := f.write(t, 40, 10, "p")
	r := replica.New(replica.Config{ID: "slow", Dir: filepath.Join(t.TempDir(), "slow"), Stream: f.Stream, Logger: testLogger(t)})
	if err := r.Open(); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Replicator().Pause() // held before it applies anything
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	want := fmt.Sprintf("catching up: applied 0 of %d (0.0%%)", last)
	testenv.Eventually(t, 10*time.Second, "readiness to say how far the replica is", func() bool {
		err := r.Ready()
		return err != nil && err.Error() == want
	})
	r.Replicator().Resume()
	testenv.Eventually(t, 10*time.Second, "the replica to be ready", func() bool { return r.Ready() == nil })
}
