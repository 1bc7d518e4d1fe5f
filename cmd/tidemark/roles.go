package main

import (
	"github.com/tidemark/tidemark/internal/health"
	"github.com/tidemark/tidemark/internal/natsconn"
	"github.com/tidemark/tidemark/internal/stack"

	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/gateway"
	"github.com/tidemark/tidemark/replica"
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/writer"
)

func streamConfig(c config.Config) stream.Config {
	return stream.Config{
		Name:            c.Stream.Name,
		Subject:         c.Stream.Subject,
		Replicas:        c.Stream.Replicas,
		MaxAge:          time.Duration(c.Stream.MaxAge),
		MaxBytes:        c.Stream.MaxBytes,
		DuplicateWindow: time.Duration(c.Stream.DuplicateWindow),
		Reconfigure:     c.Stream.Reconfigure,
	}
}

func connect(ctx context.Context, c config.Config, url, name string, log zerolog.Logger) (*natsconn.Conn, jetstream.JetStream, error) {
	nc, err := natsconn.Connect(ctx, natsconn.ConnectConfig{
		URL: url, Name: name, Creds: c.NATS.Creds, NKey: c.NATS.NKey,
		TLSCert: c.NATS.TLSCert, TLSKey: c.NATS.TLSKey, TLSCA: c.NATS.TLSCA,
		Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc.Conn)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// cacheBytes turns replica.cache_mb into replica.Config.CacheBytes.
func cacheBytes(mb int) int64 {
	if mb <= 0 {
		return -1 // off
	}
	return int64(mb) << 20
}

func runReplica(ctx context.Context, c config.Config, env *cmdEnv) error {
	id := c.Replica.ID
	if id == "" {
		id = defaultReplicaID()
	}
	log := env.log
	nc, js, err := connect(ctx, c, c.NATS.URL, "tidemark-replica-"+id, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	st, err := stream.Open(ctx, js, streamConfig(c))
	if err != nil {
		return err
	}
	rc := replicaConfig(c, id, c.Replica.Data)
	rc.Stream, rc.Conn, rc.Logger = st, nc.Conn, log
	r := replica.New(rc)
	if err := r.Open(); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Run(gctx) })
	defer r.Close()
	if c.Replica.HTTP != "" {
		ready := func() error {
			if !nc.Healthy() {
				return errors.New("nats disconnected")
			}
			return r.Ready()
		}
		reg := newRegistry(nc, r.Collector())
		g.Go(func() error { return serveHealth(gctx, c.Replica.HTTP, ready, metricsHandler(reg), log) })
	}
	return g.Wait()
}

// writerPingTimeout bounds the gateway's readiness check of the writers.
const writerPingTimeout = time.Second

func runGateway(ctx context.Context, c config.Config, env *cmdEnv) error {
	nc, _, err := connect(ctx, c, c.NATS.URL, "tidemark-gateway", env.log)
	if err != nil {
		return err
	}
	defer nc.Close()
	// Ready only while a writer answers: a gateway whose every write gets
	// 503 is not ready.
	ready := func() error {
		ctx, cancel := context.WithTimeout(ctx, writerPingTimeout)
		defer cancel()
		if err := pingService(ctx, nc.Conn, writer.ServiceName); err != nil {
			return fmt.Errorf("no writer answers: %w", err)
		}
		return nil
	}
	gc, err := gatewayConfig(c, nc, env.log, ready, newRegistry(nc))
	if err != nil {
		return err
	}
	front, err := stack.NewFront(nc.Conn, c.Stream.Name, wire.Subjects{Prefix: c.API.Prefix}, gc, false)
	if err != nil {
		return err
	}
	defer front.Close()
	warnValueLimit(gc.Logger, wire.NewValueLimit(c.Gateway.MaxValueBytes, nc.MaxPayload()))
	return front.Gateway.Run(ctx)
}

func runWriter(ctx context.Context, c config.Config, env *cmdEnv) error {
	nc, js, err := connect(ctx, c, c.NATS.URL, "tidemark-writer", env.log)
	if err != nil {
		return err
	}
	defer nc.Close()
	st, err := stream.Ensure(ctx, js, streamConfig(c))
	if err != nil {
		return err
	}
	env.log.Info().Str("stream", st.Name()).Str("id", st.ID()).Int("replicas", st.Replicas()).Msg("stream ready")
	for _, d := range st.Drift() {
		env.log.Warn().Str("stream", st.Name()).Str("setting", d).
			Msg("stream differs from the configuration; kept as it is (set stream.reconfigure=true to change it)")
	}
	log := env.log.With().Str("role", "writer").Logger()
	subjects := wire.Subjects{Prefix: c.API.Prefix}
	wc := writerConfig(c)
	wc.Stream, wc.Logger, wc.Records = st, log, client.NewNATS(nc.Conn, subjects)
	w := writer.New(wc)
	warnValueLimit(log, w.ValueLimit())
	svc := writer.NewService(nc.Conn, subjects, w, log)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return svc.Run(gctx) })
	if c.Writer.HTTP != "" {
		ready := func() error {
			if !nc.Healthy() {
				return errors.New("nats disconnected")
			}
			return nil
		}
		reg := newRegistry(nc, svc.Collector())
		g.Go(func() error { return serveHealth(gctx, c.Writer.HTTP, ready, metricsHandler(reg), env.log) })
	}
	return g.Wait()
}

// replicaConfig is the configuration of replica id over the Badger
// directory dir; the caller sets its stream, connection and logger.
func replicaConfig(c config.Config, id, dir string) replica.Config {
	return replica.Config{
		ID: id, Dir: dir, SyncWrites: c.Replica.SyncWrites,
		Subjects:    wire.Subjects{Prefix: c.API.Prefix},
		DefaultWait: time.Duration(c.Gateway.DefaultWait), MaxWait: time.Duration(c.Gateway.MaxWait),
		Bootstrap: c.Replica.Bootstrap, CacheBytes: cacheBytes(c.Replica.CacheMB),
		TombstoneHorizon: time.Duration(c.Replica.TombstoneHorizon),
		Compaction: replica.Compaction{
			Enabled:          c.Compaction.Enabled,
			SnapshotMessages: c.Compaction.SnapshotMessages,
			SnapshotAge:      time.Duration(c.Compaction.SnapshotAge),
			WindowMessages:   windowMessages(c.Compaction.WindowMessages),
			Interval:         time.Duration(c.Compaction.Interval),
		},
		WatchWindow: c.Replica.WatchWindow, WatchWindowBytes: int64(c.Replica.WatchWindowMB) << 20,
	}
}

// windowMessages turns compaction.window_messages (0: no window) into
// replica.Compaction.WindowMessages (0: the default, negative: none).
func windowMessages(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// writerConfig is the writer's configuration; the caller sets its stream,
// logger and records.
func writerConfig(c config.Config) writer.Config {
	return writer.Config{MaxValueBytes: c.Gateway.MaxValueBytes, GroupCommit: c.Writer.GroupCommit, GroupCommitMin: c.Writer.GroupCommitMin,
		TxnMaxOps: c.Writer.TxnMaxOps, TxnMaxBytes: c.Writer.TxnMaxBytes}
}

// gatewayConfig is the gateway's configuration: ready, when set, adds to
// its readiness (dev: the local replicas have caught up; the gateway role:
// a writer answers), and reg serves its /metrics. Its writer, reader and
// monitor are the stack's (stack.NewFront).
func gatewayConfig(c config.Config, nc *natsconn.Conn, log zerolog.Logger, ready func() error, reg *prometheus.Registry) (gateway.Config, error) {
	signer, err := api.NewSigner(api.ParseSigningKeys(c.Gateway.TokenKeys)...)
	if err != nil {
		return gateway.Config{}, err
	}
	return gateway.Config{
		Signer: signer, Affinity: c.Gateway.Affinity, AccessLog: c.Gateway.AccessLog,
		Addr:          c.Gateway.HTTP,
		MaxValueBytes: c.Gateway.MaxValueBytes,
		DefaultWait:   time.Duration(c.Gateway.DefaultWait), MaxWait: time.Duration(c.Gateway.MaxWait),
		WatchProgress: time.Duration(c.Gateway.WatchProgress),
		Ready: func() error {
			if !nc.Healthy() {
				return errors.New("nats disconnected")
			}
			if ready != nil {
				return ready()
			}
			return nil
		},
		Registerer: reg, Gatherer: reg,
		Logger: log.With().Str("role", "gateway").Logger(),
	}, nil
}

// warnValueLimit says at start when the NATS server's max_payload, not
// gateway.max_value_bytes, sets the largest value. It is a warning, not a
// configuration error: the configuration cannot know the server's
// max_payload (it comes with the connection, and a cluster's servers may
// differ), the default gateway.max_value_bytes exceeds what a server with
// NATS's default max_payload (1 MiB) can carry, and the lower limit is
// enforced up front anyway (413 value_too_large, before anything is
// published), so nothing fails at read time.
func warnValueLimit(log zerolog.Logger, l wire.ValueLimit) {
	if !l.TransportLimited() {
		return
	}
	log.Warn().Int("max_value_bytes", l.Configured).Int64("max_payload", l.MaxPayload).Int("value_limit", l.Bytes).
		Msgf("gateway.max_value_bytes (%d) is more than the NATS server's max_payload (%d) can carry in a reply; "+
			"puts of more than %d bytes are refused with 413 value_too_large (raise max_payload on the server to allow more)",
			l.Configured, l.MaxPayload, l.Bytes)
}

// serveHealth serves /healthz, /readyz and /metrics on addr until ctx ends.
func serveHealth(ctx context.Context, addr string, ready func() error, metrics http.Handler, log zerolog.Logger) error {
	mux := health.Mux(ready, metrics)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("health listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info().Str("addr", ln.Addr().String()).Msg("health endpoints listening")
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var notID = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func defaultReplicaID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "replica"
	}
	h = strings.Trim(notID.ReplaceAllString(h, "-"), "-")
	if len(h) > 64 {
		h = h[:64]
	}
	return h
}
