package chaos_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/chaos"
	"github.com/tidemark/tidemark/chaos/checker"
	"github.com/tidemark/tidemark/chaos/history"
	"github.com/tidemark/tidemark/chaos/workload"
	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/replicator"
	"github.com/tidemark/tidemark/stream"
)

// Environment of the helper process.
const (
	envHelper = "CHAOS_TEST_HELPER"
	envNATS   = "CHAOS_TEST_NATS_URL"
	envDir    = "CHAOS_TEST_DIR"
	envHold   = "CHAOS_TEST_HOLD"
)

// TestHelperBrokenReplica is not a test: TestNegativeSplitApplied runs the
// test binary again with it to get a broken replica in a process it can
// kill with SIGKILL.
func TestHelperBrokenReplica(t *testing.T) {
	if os.Getenv(envHelper) != "broken-replica" {
		t.Skip("helper process of TestNegativeSplitApplied")
	}
	hold, _ := strconv.ParseUint(os.Getenv(envHold), 10, 64)
	if err := brokenReplica(os.Getenv(envNATS), os.Getenv(envDir), hold, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// The replicator's storage (see the replicator package documentation):
// "d/<key>" holds kind, revision and value; "m/applied" the applied sequence.
var keyApplied = []byte("m/applied")

// brokenReplica runs the real replicator broken on purpose
// (replicator.Config.UnsafeSplitApplied): each batch's data in one
// transaction and the applied sequence in a second one after it. Once it
// has committed the data of a batch that reaches hold (when hold > 0), it
// prints "holding" and waits to be killed between the two commits. It
// prints "done N" once it has applied the whole stream.
func brokenReplica(url, dir string, hold uint64, out io.Writer) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	st, err := stream.Open(ctx, js, stream.Config{})
	if err != nil {
		return err
	}
	last, err := st.LastSeq(ctx)
	if err != nil {
		return err
	}
	r := replicator.New(replicator.Config{
		ID: "broken", Dir: dir, SyncWrites: true, Stream: st, MaxBatch: 16,
		UnsafeSplitApplied: true,
		UnsafeAfterData: func(seq uint64) {
			if hold > 0 && seq >= hold {
				fmt.Fprintf(out, "holding %d\n", seq)
				select {} // killed here, between the two commits
			}
		},
	})
	if err := r.Open(); err != nil {
		return err
	}
	defer r.Close()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	if err := r.WaitApplied(ctx, last); err != nil {
		return err
	}
	cancel()
	if err := <-done; err != nil {
		return err
	}
	fmt.Fprintf(out, "done %d\n", r.Applied())
	return nil
}

func readApplied(db *badger.DB) (uint64, error) {
	var applied uint64
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyApplied)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil || len(v) != 8 {
			return fmt.Errorf("bad applied: %v", err)
		}
		applied = binary.BigEndian.Uint64(v)
		return nil
	})
	return applied, err
}

// dumpBroken reads a broken replica's directory as the checker wants it.
func dumpBroken(t *testing.T, dir string) history.Replica {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep := history.Replica{ID: "broken"}
	if rep.Applied, err = readApplied(db); err != nil {
		t.Fatal(err)
	}
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("d/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil || len(v) < 9 {
				return fmt.Errorf("bad record: %v", err)
			}
			rec := history.Record{Key: strings.TrimPrefix(string(it.Item().Key()), "d/"), Revision: binary.BigEndian.Uint64(v[1:9])}
			if v[0] == 't' {
				rec.Deleted = true
			} else {
				rec.Value = v[9:]
			}
			rep.Records = append(rep.Records, rec)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// runBroken runs the broken replica in a child process until it prints a
// line starting with until, then kills it with SIGKILL.
func runBroken(t *testing.T, url, dir string, hold uint64, until string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBrokenReplica$")
	cmd.Env = append(os.Environ(), envHelper+"=broken-replica", envNATS+"="+url, envDir+"="+dir, envHold+"="+strconv.FormatUint(hold, 10))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill() // SIGKILL
		_ = cmd.Wait()
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	timeout := time.NewTimer(2 * time.Minute)
	defer timeout.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the broken replica ended before %q: %s", until, stderr.String())
			}
			if strings.HasPrefix(line, until) {
				return line
			}
		case <-timeout.C:
			t.Fatalf("the broken replica did not print %q in time: %s", until, stderr.String())
		}
	}
}

// TestNegativeSplitApplied: a replica that stores applied in a transaction
// of its own, after the data, and is killed with SIGKILL between the two,
// comes back with a state that is not the fold of the stream up to its
// applied: the durability check must catch it. Once it has caught up again
// its state is the fold, so the check must also pass then: it judges the
// state, not the code.
func TestNegativeSplitApplied(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ops, err := workload.Run(ctx, workload.Config{Seed: 11, Sessions: 4, Gateways: []string{s.URL}, NATS: s.Conn.Conn,
		Subjects: s.Subjects, SharedKeys: 4, OwnKeys: 2, MaxThink: -1})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := chaos.DumpStream(context.Background(), s.JS, s.Config)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) < 64 {
		t.Fatalf("only %d writes; the test wants a longer stream", len(msgs))
	}
	dir := t.TempDir()
	url := s.Server.ClientURL()
	line := runBroken(t, url, dir, uint64(len(msgs)/2), "holding")
	t.Logf("killed the broken replica at %q", line)

	check := func(rep history.Replica) *checker.Report {
		h := &history.History{Version: history.Version, Ops: ops, Final: &history.Final{Stream: msgs, Replicas: []history.Replica{rep}}}
		return checker.Check(h)
	}
	crashed := dumpBroken(t, dir)
	r := check(crashed)
	t.Log(r.Summary())
	if r.Counts[checker.ReplicaNotFold] == 0 {
		t.Fatalf("the checker did not catch the state of a replica killed between its data and applied commits:\n%s", r.Summary())
	}

	runBroken(t, url, dir, 0, "done")
	r = check(dumpBroken(t, dir))
	if !r.OK() {
		t.Fatalf("the broken replica, caught up, still has violations:\n%s", r.Summary())
	}
}
