// Package testenv starts the real dependencies that tests need: an embedded
// NATS server with JetStream on a free loopback port, with its store in the
// test's temporary directory, a connection to it, and the Tidemark stream.
package testenv

import (
	"path/filepath"

	"github.com/tidemark/tidemark/internal/natsserver"

	"github.com/tidemark/tidemark/internal/natsconn"
	"github.com/tidemark/tidemark/internal/netproxy"

	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/chaos/faults"
	"github.com/tidemark/tidemark/stream"
)

// Env is a running embedded NATS server with the Tidemark stream on it.
type Env struct {
	// Server is the embedded NATS server.
	Server *server.Server
	// Conn is a connection to it, closed with the test.
	Conn *natsconn.Conn
	// JS is a JetStream context on Conn.
	JS jetstream.JetStream
	// Stream is the Tidemark stream.
	Stream *stream.Stream
	// Config is the stream's configuration.
	Config stream.Config

	server natsserver.ServerConfig // how Server was started, on its address
}

// Start starts an embedded NATS server and creates the stream. Everything is
// stopped when the test ends.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartDir(t, t.TempDir())
}

// StartDir is Start with the JetStream store in dir, so that a test can stop
// the server and start it again on the same files.
func StartDir(t testing.TB, dir string) *Env {
	t.Helper()
	return StartServer(t, natsserver.ServerConfig{StoreDir: dir})
}

// StartServer is Start with the server configured by cfg; it listens on a
// free loopback port, and its store is in a temporary directory unless
// cfg.StoreDir says otherwise.
func StartServer(t testing.TB, cfg natsserver.ServerConfig) *Env {
	t.Helper()
	cfg.Listen = "127.0.0.1:-1"
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	s, err := natsserver.StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	cfg.Listen = s.Addr().String() // a restart takes the same address
	e := &Env{Server: s, Config: stream.Config{Name: stream.DefaultName, Subject: stream.DefaultSubject}, server: cfg}
	e.Conn = Connect(t, s.ClientURL())
	e.JS, err = jetstream.New(e.Conn.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.Stream, err = stream.Ensure(ctx, e.JS, e.Config)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Connect opens a connection to url that is closed when the test ends.
func Connect(t testing.TB, url string) *natsconn.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := natsconn.Connect(ctx, natsconn.ConnectConfig{URL: url, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Proxy starts a loopback proxy in front of srv and a connection through
// it, both closed when the test ends: the test can hold or cut what that
// connection sends and receives.
func Proxy(t testing.TB, srv *server.Server) (*netproxy.Proxy, *natsconn.Conn) {
	t.Helper()
	proxy, err := netproxy.Start(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	return proxy, Connect(t, "nats://"+proxy.Addr())
}

// ProxyStream is Proxy with the stream of cfg opened over the connection
// through the proxy.
func ProxyStream(t testing.TB, srv *server.Server, cfg stream.Config) (*netproxy.Proxy, *natsconn.Conn, *stream.Stream) {
	t.Helper()
	proxy, nc := Proxy(t, srv)
	js, err := jetstream.New(nc.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := stream.Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return proxy, nc, st
}

// Eventually polls cond until it holds or timeout passes, then fails the test.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// StopServer stops the server, as a crash or a restart would; its clients
// try to reconnect.
func (e *Env) StopServer() {
	e.Server.Shutdown()
	e.Server.WaitForShutdown()
}

// StartServerAgain starts the server again on its address and store
// directory (as it is now: a test may have put an older copy there).
func (e *Env) StartServerAgain(t testing.TB) {
	t.Helper()
	s, err := natsserver.StartServer(e.server)
	if err != nil {
		t.Fatal(err)
	}
	e.Server = s
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
}

// BackupStore copies the server's store, stopping the server for the copy
// and starting it again, and returns the copy's directory: putting it back
// (RestoreDir while the server is stopped) loses what was written since.
func (e *Env) BackupStore(t testing.TB) string {
	t.Helper()
	e.StopServer()
	dir := filepath.Join(t.TempDir(), "store")
	CopyDir(t, e.StoreDir(), dir)
	e.StartServerAgain(t)
	return dir
}

// RestoreStore stops the server, puts a copy made by BackupStore in place
// of its store, and starts it again: the stream has lost its tail.
func (e *Env) RestoreStore(t testing.TB, backup string) {
	t.Helper()
	e.StopServer()
	RestoreDir(t, backup, e.StoreDir())
	e.StartServerAgain(t)
}

// StoreDir returns the server's JetStream store directory.
func (e *Env) StoreDir() string { return e.server.StoreDir }

// CopyDir copies the tree src to dst, which must not exist: a copy of a
// store to restore later.
func CopyDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := faults.CopyDir(src, dst); err != nil {
		t.Fatal(err)
	}
}

// RestoreDir replaces the tree dst with a copy of src.
func RestoreDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	CopyDir(t, src, dst)
}
