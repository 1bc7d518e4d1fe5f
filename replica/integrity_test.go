package replica_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/writer"
)

// copyTree copies the directory tree src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestLostTailThroughReads restores the stream's store from an older copy
// under a running replica and reads through the replica's reader with the
// tokens of the new history: no read may be answered from the old history
// (a read may fail as unavailable or time out while the replica rebuilds),
// Ready must say why while it does not serve, and the rebuilt replica must
// hold exactly what a new replica holds, byte for byte.
func TestLostTailThroughReads(t *testing.T) {
	storeDir := t.TempDir()
	env := testenv.StartDir(t, storeDir)
	addr := env.Server.Addr().String()
	srv := env.Server
	restart := func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	startSrv := func() {
		s, err := stream.StartServer(stream.ServerConfig{Listen: addr, StoreDir: storeDir})
		if err != nil {
			t.Fatal(err)
		}
		srv = s
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	}
	f := &fixture{Env: env, w: writer.New(writer.Config{Stream: env.Stream}), dir: t.TempDir()}
	r := f.start(t, "r1", false, true)
	waitApplied(t, r, f.write(t, 60, 10, "one")) // 1-60

	restart()
	backup := filepath.Join(t.TempDir(), "store")
	copyTree(t, storeDir, backup)
	startSrv()
	last := f.write(t, 30, 10, "two") // 61-90
	testenv.Eventually(t, testTimeout, "r1 to apply the second history", func() bool { return r.Applied() == last && r.Ready() == nil })

	restart()
	if err := os.RemoveAll(storeDir); err != nil {
		t.Fatal(err)
	}
	copyTree(t, backup, storeDir)
	startSrv()

	var notReady error
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for i := range 40 { // 61-100
		key := fmt.Sprintf("n%02d", i)
		want := fmt.Sprintf("three-%d", i)
		res, err := f.w.Write(ctx, stream.WriteRequest{Op: stream.OpPut, Key: key, Value: []byte(want)})
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		for {
			if err := r.Ready(); err != nil && notReady == nil {
				notReady = err
			}
			g, err := r.Get(ctx, stream.GetRequest{Key: key, Token: res.Token, Wait: 100 * time.Millisecond})
			if err == nil || errors.Is(err, stream.ErrNotFound) {
				if string(g.Record.Value) != want || g.Record.Revision != res.Revision {
					t.Fatalf("Get(%q) with token %v=%q at %d (%v), want %q at %d: another history served",
						key, res.Token, g.Record.Value, g.Record.Revision, err, want, res.Revision)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("write %d not served: %v (ready: %v)", i, err, r.Ready())
			}
		}
	}
	if notReady == nil {
		t.Fatal("Ready() never said why the replica did not serve")
	}
	t.Logf("while rebuilding, Ready()=%v", notReady)
	fresh := f.start(t, "fresh", false, false)
	f.sameState(t, r, fresh, 100)
}
