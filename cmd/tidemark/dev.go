package main

import (
	"github.com/tidemark/tidemark/internal/natsserver"
	"github.com/tidemark/tidemark/internal/stack"
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/internal/natsconn"

	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/replica"
	"github.com/tidemark/tidemark/stream"
)

// runDev runs the embedded default: a NATS server with JetStream, the
// writer, N replicas each over its own Badger directory, and the gateway,
// all in this process. Restarting on the same --data keeps everything.
func runDev(ctx context.Context, c config.Config, env *cmdEnv) error {
	log := env.log
	data := c.Dev.Data
	if err := os.MkdirAll(data, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	// Everything that can be refused is tried first, so that a second dev
	// on the same data or ports fails at once and changes nothing.
	unlock, err := lockDir(data)
	if err != nil {
		return err
	}
	defer unlock()
	httpAddr := c.Gateway.HTTP
	if httpAddr == config.DefaultGatewayHTTP {
		// dev listens on loopback unless told otherwise (--http 0.0.0.0:8080).
		httpAddr = "127.0.0.1" + config.DefaultGatewayHTTP
	}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("gateway listen on %s: %w (is another tidemark dev running? --http picks another address)", httpAddr, err)
	}
	defer ln.Close()
	if err := portFree(c.Dev.NATSListen); err != nil {
		return fmt.Errorf("embedded NATS listen on %s: %w (is another NATS server or tidemark dev running? --nats-listen picks another address)", c.Dev.NATSListen, err)
	}
	srv, err := natsserver.StartServer(natsserver.ServerConfig{
		Name: "tidemark-dev", Listen: c.Dev.NATSListen, StoreDir: filepath.Join(data, "nats"),
		SyncAlways: c.Dev.Durable, Logger: log.With().Str("role", "nats").Logger(),
	})
	if err != nil {
		return err
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	natsURL := srv.ClientURL()

	nc, err := natsconn.Connect(ctx, natsconn.ConnectConfig{URL: natsURL, Name: "tidemark-dev", Logger: log})
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc.Conn)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	sc := streamConfig(c)
	sc.Replicas = 1
	st, err := stream.Ensure(ctx, js, sc)
	if err != nil {
		return err
	}

	// The writer and the replicas run in this process, and the gateway
	// writes and reads through them directly (stack.Config.Local).
	var replicas []replica.Config
	for i := 1; i <= c.Dev.Replicas; i++ {
		id := fmt.Sprintf("r%d", i)
		rc := replicaConfig(c, id, filepath.Join(data, "replica-"+id))
		// One compactor is enough: only one compacts at a time anyway.
		rc.Compaction.Enabled = rc.Compaction.Enabled && i == 1
		replicas = append(replicas, rc)
	}
	reg := newRegistry(nc)
	var pipeline *stack.Stack
	gc, err := gatewayConfig(c, nc, log, func() error { return pipeline.Ready() }, reg)
	if err != nil {
		return err
	}
	wc := writerConfig(c)
	// Group commit saves fsyncs, which only a durable server makes.
	wc.GroupCommit = wc.GroupCommit && c.Dev.Durable
	pipeline, err = stack.Start(ctx, stack.Config{
		Conn: nc.Conn, Stream: st, Subjects: wire.Subjects{Prefix: c.API.Prefix}, Logger: log,
		Writer: wc, Replicas: replicas, Gateway: gc, Local: true,
	})
	if err != nil {
		return err
	}
	// Services and replicas stop only after the gateway has drained, so that
	// requests in flight are answered.
	defer func() {
		if err := pipeline.Close(); err != nil {
			log.Error().Err(err).Msg("stop the pipeline")
		}
	}()
	reg.MustRegister(pipeline.WriterService.Collector())
	for _, r := range pipeline.Replicas {
		reg.MustRegister(r.Collector())
	}
	warnValueLimit(log.With().Str("role", "writer").Logger(), pipeline.Writer.ValueLimit())

	printBanner(env.stdout, ln.Addr(), natsURL, data, c, st)
	gwErr := make(chan error, 1)
	go func() { gwErr <- pipeline.Serve(ctx, ln) }()
	var runErr error
	select {
	case runErr = <-gwErr:
	case runErr = <-pipeline.Err():
		// a part failed: stop the gateway too
	}
	if errors.Is(runErr, context.Canceled) {
		runErr = nil
	}
	return runErr
}

func printBanner(w io.Writer, addr net.Addr, natsURL, data string, c config.Config, st *stream.Stream) {
	host := addr.String()
	if tcp, ok := addr.(*net.TCPAddr); ok && (tcp.IP.IsUnspecified() || tcp.IP == nil) {
		host = fmt.Sprintf("localhost:%d", tcp.Port)
	}
	base := "http://" + host
	mode := "fast (JetStream fsyncs every 2 minutes; a machine crash can lose the last writes; restart with --durable to fsync every write)"
	if c.Dev.Durable {
		mode = "durable (JetStream fsyncs every write before it is acknowledged, many at once by group commit)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nTidemark dev is running.\n")
	fmt.Fprintf(&b, "  gateway   %s\n", base)
	fmt.Fprintf(&b, "  nats      %s (stream %s, id %s)\n", natsURL, st.Name(), st.ID())
	fmt.Fprintf(&b, "  replicas  %d, data in %s\n", c.Dev.Replicas, data)
	fmt.Fprintf(&b, "  mode      %s\n\n", mode)
	fmt.Fprintf(&b, "Try read-your-writes:\n")
	fmt.Fprintf(&b, "  TOKEN=$(curl -s -X PUT --data-binary 'hello' %s/v1/kv/greeting | sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/')\n", base)
	fmt.Fprintf(&b, "  curl -i -H \"Tidemark-Token: $TOKEN\" %s/v1/kv/greeting\n", base)
	fmt.Fprintf(&b, "  curl -s '%s/v1/kv?prefix=greet'\n", base)
	fmt.Fprintf(&b, "  curl -i -X DELETE -H \"Tidemark-Token: $TOKEN\" %s/v1/kv/greeting\n", base)
	fmt.Fprintf(&b, "Or let a cookie carry the token, as a browser does:\n")
	fmt.Fprintf(&b, "  curl -c jar -b jar -X PUT --data-binary 'hi' %s/v1/kv/note && curl -b jar -c jar %s/v1/kv/note\n\n", base, base)
	fmt.Fprintf(&b, "Press Ctrl-C to stop; data stays in %s.\n\n", data)
	_, _ = io.WriteString(w, b.String())
}

// lockDir takes an exclusive lock on the data directory dir for as long as
// this process runs (the returned func releases it), so that two dev
// processes never share one store.
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s is in use by another process (%s is locked): %w", dir, path, err)
	}
	return func() { f.Close() }, nil
}

// portFree checks that addr can be listened on now.
func portFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}
