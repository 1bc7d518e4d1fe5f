package main

import (
	"github.com/tidemark/tidemark/internal/natsserver"

	"github.com/tidemark/tidemark/internal/natsconn"

	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func readyStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestGatewayReadinessFollowsNATS: a gateway whose NATS server goes away
// reports not ready, and recovers by itself when the server is back.
func TestGatewayReadinessFollowsNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a NATS server")
	}
	dir := t.TempDir()
	natsAddr := freeAddr(t)
	start := func() *server.Server {
		s, err := natsserver.StartServer(natsserver.ServerConfig{Listen: natsAddr, StoreDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	srv := start()
	httpAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"gateway", "--nats", "nats://" + natsAddr, "--http", httpAddr, "--log-level", "error"}, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	}()
	url := "http://" + httpAddr + "/readyz"
	// No writer answers yet: a gateway whose every write would fail is not ready.
	testenv.Eventually(t, 20*time.Second, "gateway not ready without a writer", func() bool { return readyStatus(url) == 503 })
	wctx, stopWriter := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() {
		wdone <- run(wctx, []string{"writer", "--nats", "nats://" + natsAddr, "--log-level", "error"}, io.Discard, io.Discard)
	}()
	defer func() {
		stopWriter()
		if err := <-wdone; err != nil {
			t.Errorf("writer: %v", err)
		}
	}()
	testenv.Eventually(t, 20*time.Second, "gateway ready", func() bool { return readyStatus(url) == 200 })

	srv.Shutdown()
	srv.WaitForShutdown()
	testenv.Eventually(t, 20*time.Second, "gateway not ready without NATS", func() bool { return readyStatus(url) == 503 })

	srv = start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	testenv.Eventually(t, 20*time.Second, "gateway ready again", func() bool { return readyStatus(url) == 200 })
}

// TestConnectWithNKey: roles authenticate with an nkey seed file.
func TestConnectWithNKey(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := &server.Options{Host: "127.0.0.1", Port: -1, Nkeys: []*server.NkeyUser{{Nkey: pub}}, NoSigs: true}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	// Refused credentials fail at once rather than being retried until the
	// context ends.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := natsconn.Connect(ctx, natsconn.ConnectConfig{URL: s.ClientURL()}); err == nil {
		t.Fatal("connected without the nkey")
	}
	if ctx.Err() != nil {
		t.Fatal("a refused connection was retried until the context ended")
	}
	nc, err := natsconn.Connect(context.Background(), natsconn.ConnectConfig{URL: s.ClientURL(), NKey: seedFile})
	if err != nil {
		t.Fatalf("connect with nkey: %v", err)
	}
	nc.Close()
}

// The configuration's default cache size is the replicator's.
func TestCacheBytesDefault(t *testing.T) {
	if got, want := cacheBytes(config.DefaultReplicaCacheMB), int64(replicator.DefaultCacheBytes); got != want {
		t.Fatalf("replica.cache_mb default gives %d bytes, the replicator's default is %d", got, want)
	}
	if cacheBytes(0) >= 0 {
		t.Fatal("replica.cache_mb 0 does not turn the cache off")
	}
}

// A replica of the default configuration compacts with the defaults; a
// window of 0 keeps no window (replica.Compaction reads 0 as its default).
func TestReplicaConfigCompaction(t *testing.T) {
	c := config.Default()
	rc := replicaConfig(c, "r1", t.TempDir())
	if cc := rc.Compaction; !cc.Enabled || cc.WindowMessages != config.DefaultCompactionWindowMessages || cc.SnapshotMessages != config.DefaultCompactionSnapshotMessages {
		t.Fatalf("Compaction=%+v, want the defaults, enabled", cc)
	}
	if got, want := rc.TombstoneHorizon, time.Duration(config.DefaultReplicaTombstoneHorizon); got != want {
		t.Fatalf("TombstoneHorizon=%v, want %v", got, want)
	}
	c.Compaction.WindowMessages = 0
	if got := replicaConfig(c, "r1", t.TempDir()).Compaction.WindowMessages; got >= 0 {
		t.Fatalf("compaction.window_messages 0 gives WindowMessages %d, want a negative one (no window)", got)
	}
}
