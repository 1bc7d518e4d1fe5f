package replicator_test

import (
	"github.com/tidemark/tidemark/internal/natsconn"

	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
	"github.com/tidemark/tidemark/stream"
)

// Environment of the helper process.
const (
	envHelper = "TIDEMARK_TEST_HELPER"
	envNATS   = "TIDEMARK_TEST_NATS_URL"
	envDir    = "TIDEMARK_TEST_DIR"
)

// TestHelperProcess is not a test: TestCrashRecovery runs the test binary
// again with it to get a replica in a process it can kill.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(envHelper) != "replica" {
		t.Skip("helper process of TestCrashRecovery")
	}
	if err := helperReplica(os.Getenv(envNATS), os.Getenv(envDir)); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
}

// helperReplica runs a replica on dir and prints its applied sequence after
// every commit, until it is killed.
func helperReplica(url, dir string) error {
	ctx := context.Background()
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel)
	nc, err := natsconn.Connect(ctx, natsconn.ConnectConfig{URL: url, Logger: log})
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc.Conn)
	if err != nil {
		return err
	}
	s, err := stream.Open(ctx, js, stream.Config{})
	if err != nil {
		return err
	}
	// Small batches and fsync make the child spend its time committing,
	// which is where the kill should land.
	r := replicator.New(replicator.Config{ID: "child", Dir: dir, SyncWrites: true, Stream: s, Logger: log, MaxBatch: 64})
	if err := r.Open(); err != nil {
		return err
	}
	go func() {
		if err := r.Run(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "helper: run:", err)
			os.Exit(3)
		}
	}()
	out := bufio.NewWriter(os.Stdout)
	for seq := uint64(0); ; {
		if err := r.WaitApplied(ctx, seq+1); err != nil {
			return err
		}
		seq = r.Applied()
		fmt.Fprintf(out, "applied %d\n", seq)
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

// TestCrashRecovery kills a replica process with SIGKILL while it applies a
// long stream, reopens its directory, and checks that the state is exactly
// the stream folded up to the stored applied (no partial batch), that no
// reported commit was lost, and that it finishes to the fold of the whole
// stream without applying anything twice.
func TestCrashRecovery(t *testing.T) {
	env := testenv.Start(t)
	const (
		total  = 20000
		keys   = 500
		killAt = total / 4
	)
	rng := rand.New(rand.NewPCG(1, 2))
	ws := make([]write, total)
	universe := make([]string, keys)
	for i := range universe {
		universe[i] = fmt.Sprintf("key-%03d", i)
	}
	pad := strings.Repeat("x", 64)
	for i := range ws {
		key := universe[rng.IntN(keys)]
		if rng.IntN(8) == 0 {
			ws[i] = del(key)
		} else {
			ws[i] = put(key, fmt.Sprintf("%s@%d/%s", key, i+1, pad))
		}
	}
	publishAsync(t, env, 1, ws)

	dir := t.TempDir()
	sc, stderr, kill := startReplicaProcess(t, env, dir)
	var err error

	var reported uint64
	for reported < killAt && sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "applied "); ok {
			if reported, err = strconv.ParseUint(s, 10, 64); err != nil {
				t.Fatalf("helper printed %q", sc.Text())
			}
		}
	}
	kill()
	if reported < killAt {
		t.Fatalf("helper stopped at applied %d before the kill: %s", reported, stderr.String())
	}

	r := open(t, env, dir)
	crashed := r.Applied()
	t.Logf("killed after the child reported %d; its directory holds %d of %d", reported, crashed, total)
	if crashed < reported {
		t.Fatalf("Applied() after the crash=%d, below the %d the child reported committed", crashed, reported)
	}
	if crashed == total {
		t.Log("the child finished before the kill landed; the restart is checked, the crash is not mid-stream")
	}
	checkState(t, r, fold(ws[:crashed]), crashed, universe)

	run(t, r)
	waitApplied(t, r, total)
	checkState(t, r, fold(ws), total, universe)
	if got, want := r.Stats().Messages, uint64(total)-crashed; got != want {
		t.Fatalf("Messages applied after the restart=%d, want %d", got, want)
	}
}

// startReplicaProcess runs a replica of env's stream on dir in a child
// process (TestHelperProcess), which prints each applied sequence as it
// commits it: it returns a scanner of those lines, the child's stderr, and
// kill, which ends it with SIGKILL (also at the end of the test).
func startReplicaProcess(t *testing.T, env *testenv.Env, dir string) (*bufio.Scanner, *bytes.Buffer, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), envHelper+"=replica", envNATS+"="+env.Server.ClientURL(), envDir+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() {
		once.Do(func() {
			_ = cmd.Process.Kill() // SIGKILL
			_ = cmd.Wait()
		})
	}
	t.Cleanup(kill)
	return bufio.NewScanner(stdout), stderr, kill
}
