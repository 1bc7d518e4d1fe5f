package replica_test

import (
	"github.com/tidemark/tidemark/internal/natsserver"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/writer"
)

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
		s, err := natsserver.StartServer(natsserver.ServerConfig{Listen: addr, StoreDir: storeDir})
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
	testenv.CopyDir(t, storeDir, backup)
	startSrv()
	last := f.write(t, 30, 10, "two") // 61-90
	testenv.Eventually(t, testTimeout, "r1 to apply the second history", func() bool { return r.Applied() == last && r.Ready() == nil })

	restart()
	testenv.RestoreDir(t, backup, storeDir)
	startSrv()

	var notReady error
	var end uint64
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for i := range 40 { // from the restored copy's end on
		key := fmt.Sprintf("n%02d", i)
		want := fmt.Sprintf("three-%d", i)
		res, err := f.w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: key, Value: []byte(want)})
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		end = res.Revision
		for {
			if err := r.Ready(); err != nil && notReady == nil {
				notReady = err
			}
			g, err := r.Get(ctx, api.GetRequest{Key: key, ReadSpec: api.ReadSpec{Token: res.Token, Wait: 100 * time.Millisecond}})
			if err == nil || errors.Is(err, api.ErrNotFound) {
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
	f.sameState(t, r, fresh, end)
}

// TestStreamRecreatedThroughReads deletes and recreates the stream while a
// writer and a replica share one stream handle, as in `tidemark dev`: the
// writer takes on the new stream at its first write, and a read with that
// write's token is never answered from the old stream's state; the replica
// rebuilds from the new stream and serves it, and refuses the old stream's
// tokens.
func TestStreamRecreatedThroughReads(t *testing.T) {
	f := newFixture(t)
	r := f.start(t, "r1", false, false)
	oldTok := f.write(t, 20, 5, "old")
	waitApplied(t, r, oldTok)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	// Held back, the replica cannot rebuild before the writer has moved
	// on to the new stream: only the read's own check keeps the old state
	// from answering the new stream's token.
	r.Replicator().Pause()
	if err := f.JS.DeleteStream(ctx, f.Config.Name); err != nil {
		t.Fatal(err)
	}
	other := testenv.Connect(t, f.Server.ClientURL())
	js, err := jetstream.New(other.Conn)
	if err != nil {
		t.Fatal(err)
	}
	var fresh *stream.Stream
	testenv.Eventually(t, testTimeout, "the stream to be recreated", func() bool {
		fresh, err = stream.Ensure(ctx, js, f.Config)
		return err == nil
	})
	res, err := f.w.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "k00", Value: []byte("new")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Token.Stream, fresh.ID(); got != want {
		t.Fatalf("write into the recreated stream has a token of stream %s, want %s", got, want)
	}
	if g, err := r.Get(ctx, api.GetRequest{Key: "k00", ReadSpec: api.ReadSpec{Token: res.Token, Wait: 100 * time.Millisecond}}); err == nil {
		t.Fatalf("held-back replica answered the new stream's token with %q at %d", g.Record.Value, g.Applied)
	}
	r.Replicator().Resume()
	testenv.Eventually(t, testTimeout, "a read with the new token", func() bool {
		g, err := r.Get(ctx, api.GetRequest{Key: "k00", ReadSpec: api.ReadSpec{Token: res.Token, Wait: 100 * time.Millisecond}})
		if err == nil && string(g.Record.Value) != "new" {
			t.Fatalf("read with the new stream's token=%q at %d, want new: the old stream's state served", g.Record.Value, g.Applied)
		}
		return err == nil
	})
	if _, err := r.Get(ctx, api.GetRequest{Key: "k01", ReadSpec: api.ReadSpec{Token: res.Token}}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("k01, only in the old stream: %v, want not found", err)
	}
	old := api.NewToken(fresh.ID(), 1)
	old.Stream = "0ld0"
	if _, err := r.Get(ctx, api.GetRequest{Key: "k00", ReadSpec: api.ReadSpec{Token: old}}); !errors.Is(err, api.ErrTokenStreamMismatch) {
		t.Fatalf("read with another stream's token: %v, want %v", err, api.ErrTokenStreamMismatch)
	}
}
