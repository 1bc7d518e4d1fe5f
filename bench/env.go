package bench

import (
	"github.com/tidemark/tidemark/internal/natsserver"
	"github.com/tidemark/tidemark/internal/stack"

	"github.com/tidemark/tidemark/internal/backoff"
	"github.com/tidemark/tidemark/internal/natsconn"

	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/gateway"
	"github.com/tidemark/tidemark/reader"
	"github.com/tidemark/tidemark/replica"
	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/writer"
)

// Names of what the benchmark creates next to the stack.
const (
	// fillStream is the Tidemark stream of the catch-up and memory phases.
	fillStream  = "TIDEMARK_BENCH_FILL"
	fillSubject = "tidemark-bench-fill.kv"
	fillPrefix  = "tidemark-bench-fill"
	// kvBucket is the NATS KV bucket of the read baseline.
	kvBucket = "tidemark_bench"
)

// Names of the gateways the benchmark measures.
const (
	gwNATS  = "gateway over NATS (HTTP)"                          // as `tidemark gateway` runs
	gwLocal = "gateway, in-process writer and replicas (HTTP)"    // as `tidemark dev` runs
	gwStack = "the stack's gateway (HTTP)"                        // --gateway of a running stack
	gwDev   = "gateway of tidemark dev in its own process (HTTP)" // StackProcess
	gwBench = "gateway in the benchmark's process, in-process writer and replica (HTTP)"
)

// gatewayURL is a gateway the benchmark measures.
type gatewayURL struct{ name, url string }

// env is the system under test for one mode: a NATS server (embedded or
// remote), the Tidemark stream with its writer and replicas, gateways, and
// a separate client connection for the benchmark's own calls.
type env struct {
	mode    string
	durable bool
	remote  bool
	dir     string
	log     zerolog.Logger

	srv      *server.Server // embedded server; nil when remote
	url      string
	stackC   *natsconn.Conn // the stack's connection (embedded only)
	pipeline *stack.Stack   // the stack (embedded only)
	cliC     *natsconn.Conn // the benchmark clients' connection
	js       jetstream.JetStream
	st       *stream.Stream // the Tidemark stream, as the benchmark's in-process parts see it

	writer     *writer.Writer     // an in-process writer on st
	transport  *client.NATS       // the writer and reader services over NATS
	replicas   []*replica.Replica // in-process replicas (embedded: the stack's)
	serviceIDs []string           // replica ids served over NATS
	gateways   []gatewayURL       // the gateways measured, in order
	emptyHTTP  string             // base URL of a server that does nothing (startEmptyHTTP)
	http       *http.Client

	cancel context.CancelFunc
	g      *errgroup.Group
}

// subjects are the stack's service subjects.
var subjects = wire.Subjects{}

// startEnv starts (embedded) or attaches to (remote) the system for mode.
func startEnv(ctx context.Context, cfg Config, mode string) (*env, error) {
	dir, err := os.MkdirTemp(cfg.Dir, "tidemark-bench-"+mode+"-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	e := &env{mode: mode, durable: mode == ModeDurable, remote: cfg.NATSURL != "", dir: dir, log: cfg.Logger}
	e.http = &http.Client{Transport: &http.Transport{
		MaxIdleConns: 4 * cfg.Concurrency, MaxIdleConnsPerHost: 4 * cfg.Concurrency,
		IdleConnTimeout: time.Minute, DisableCompression: true,
	}, Timeout: time.Minute}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	e.g, rctx = errgroup.WithContext(rctx)
	if err := e.start(ctx, rctx, cfg); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) start(ctx, rctx context.Context, cfg Config) error {
	if e.remote {
		e.url = cfg.NATSURL
	} else {
		srv, err := natsserver.StartServer(natsserver.ServerConfig{
			Name: "tidemark-bench", Listen: "127.0.0.1:-1", StoreDir: filepath.Join(e.dir, "nats"),
			SyncAlways: e.durable, Logger: e.log,
		})
		if err != nil {
			return err
		}
		e.srv, e.url = srv, srv.ClientURL()
	}
	var err error
	if e.cliC, err = natsconn.Connect(ctx, natsconn.ConnectConfig{URL: e.url, Name: "tidemark-bench", Logger: e.log}); err != nil {
		return err
	}
	if e.js, err = jetstream.New(e.cliC.Conn); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	e.transport = client.NewNATS(e.cliC.Conn, subjects)
	if err := e.startEmptyHTTP(rctx); err != nil {
		return err
	}
	if e.remote {
		return e.attach(ctx, rctx, cfg)
	}
	return e.startStack(ctx, rctx, cfg)
}

// startStack starts the pipeline the way `tidemark dev` does: the writer
// service, the replicas and a gateway share one NATS connection.
func (e *env) startStack(ctx, rctx context.Context, cfg Config) error {
	var err error
	if e.stackC, err = natsconn.Connect(ctx, natsconn.ConnectConfig{URL: e.url, Name: "tidemark-bench-stack", Logger: e.log}); err != nil {
		return err
	}
	sjs, err := jetstream.New(e.stackC.Conn)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	st, err := stream.Ensure(ctx, sjs, stream.Config{})
	if err != nil {
		return err
	}
	if err := allowAtomic(ctx, sjs, st.Name()); err != nil {
		return err
	}
	e.st = st
	// As `tidemark dev` and `tidemark gateway` do: reads routed by the
	// replicas' status.
	var replicas []replica.Config
	for i := 1; i <= cfg.Replicas; i++ {
		id := fmt.Sprintf("r%d", i)
		replicas = append(replicas, replica.Config{ID: id, Dir: filepath.Join(e.dir, "replica-"+id)})
		e.serviceIDs = append(e.serviceIDs, id)
	}
	// As the roles do: group commit where the server fsyncs every write,
	// and replicas that leave their fsyncs to Badger.
	if e.pipeline, err = stack.Start(ctx, stack.Config{Conn: e.stackC.Conn, Stream: st, Subjects: subjects,
		Logger: e.log, Writer: writer.Config{GroupCommit: e.durable}, Replicas: replicas}); err != nil {
		return err
	}
	e.writer, e.replicas = e.pipeline.Writer, e.pipeline.Replicas
	if err := e.serveGateway(rctx, gwNATS, e.pipeline.Gateway); err != nil {
		return err
	}
	if err := e.startGateway(rctx, gwLocal, e.writer, replica.NewLocal(e.replicas...)); err != nil {
		return err
	}
	return e.waitReady(ctx)
}

// attach measures a running stack: its writer service and replicas over
// NATS, the gateway at cfg.GatewayURL, and an in-process replica of its
// stream for the in-process measurements.
func (e *env) attach(ctx, rctx context.Context, cfg Config) error {
	st, err := stream.Open(ctx, e.js, stream.Config{})
	if err != nil {
		return err
	}
	e.st = st
	e.writer = writer.New(writer.Config{Stream: st, Logger: e.log, GroupCommit: e.durable})
	r := replica.New(replica.Config{ID: "bench", Dir: filepath.Join(e.dir, "replica-bench"), Stream: st, Logger: e.log})
	if err := r.Open(); err != nil {
		return err
	}
	e.replicas = append(e.replicas, r)
	e.g.Go(func() error { return r.Run(rctx) })
	if e.serviceIDs, err = discoverReplicas(ctx, e.cliC.Conn); err != nil {
		return err
	}
	if cfg.GatewayURL != "" {
		name := gwStack
		if cfg.devProcess {
			name = gwDev
		}
		e.gateways = append(e.gateways, gatewayURL{name, cfg.GatewayURL})
	}
	if err := e.startGateway(rctx, gwBench, e.writer, replica.NewLocal(e.replicas...)); err != nil {
		return err
	}
	return e.waitReady(ctx)
}

func (e *env) startGateway(ctx context.Context, name string, w gateway.Writer, r gateway.Reader) error {
	return e.serveGateway(ctx, name, gateway.New(gateway.Config{Writer: w, Reader: r, Logger: e.log}))
}

// serveGateway serves gw on a loopback port as the gateway row name.
func (e *env) serveGateway(ctx context.Context, name string, gw *gateway.Gateway) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("gateway listen: %w", err)
	}
	e.gateways = append(e.gateways, gatewayURL{name, "http://" + ln.Addr().String()})
	e.g.Go(func() error { return gw.Serve(ctx, ln) })
	return nil
}

// startEmptyHTTP starts an HTTP server whose handler reads the request body
// and answers 200 with a token-sized header and a value-sized body, doing
// nothing else: the ceiling of any HTTP path on this machine with the
// benchmark's client, to read the gateway rows against.
func (e *env) startEmptyHTTP(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("empty http listen: %w", err)
	}
	body := make([]byte, 128)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set(api.HeaderToken, "1.000000000000.1")
		_, _ = w.Write(body)
	})}
	e.emptyHTTP = "http://" + ln.Addr().String()
	e.g.Go(func() error {
		go func() { <-ctx.Done(); _ = srv.Close() }()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return nil
}

// waitReady waits until the in-process replicas have caught up and the
// read services answer.
func (e *env) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for _, r := range e.replicas {
		if err := r.WaitReady(ctx); err != nil {
			return fmt.Errorf("replica %s: %w", r.ID(), err)
		}
	}
	for _, id := range e.serviceIDs {
		for {
			_, err := e.transport.Get(ctx, api.GetRequest{Key: "bench-probe", ReadSpec: api.ReadSpec{Replica: id, Wait: time.Second}})
			if err == nil || errors.Is(err, api.ErrNotFound) {
				break
			}
			if err := backoff.Sleep(ctx, 20*time.Millisecond); err != nil {
				return fmt.Errorf("replica service %s: %w", id, err)
			}
		}
	}
	return nil
}

// close stops everything the env started and removes its files.
func (e *env) close() {
	if e.cancel != nil {
		e.cancel()
		_ = e.g.Wait()
	}
	if e.pipeline != nil {
		_ = e.pipeline.Close() // the stack's writer and replicas
	} else {
		for _, r := range e.replicas {
			_ = r.Close()
		}
	}
	if e.remote && e.js != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = e.js.DeleteStream(ctx, fillStream)
		_ = e.js.DeleteKeyValue(ctx, kvBucket)
		cancel()
	}
	if e.stackC != nil {
		e.stackC.Close()
	}
	if e.cliC != nil {
		e.cliC.Close()
	}
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
	_ = os.RemoveAll(e.dir)
}

// allowAtomic turns on atomic batch publishing on a stream, which the
// benchmark's fills and the writer's group commit use.
func allowAtomic(ctx context.Context, js jetstream.JetStream, name string) error {
	h, err := js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	c := h.CachedInfo().Config
	if c.AllowAtomicPublish {
		return nil
	}
	c.AllowAtomicPublish = true
	if _, err := js.UpdateStream(ctx, c); err != nil {
		return fmt.Errorf("stream %s: allow atomic publish: %w", name, err)
	}
	return nil
}

// discoverReplicas asks the reader services of a running stack for their
// replica ids.
func discoverReplicas(ctx context.Context, nc *nats.Conn) ([]string, error) {
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("discover replicas: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$SRV.INFO."+reader.ServiceName, inbox, nil); err != nil {
		return nil, fmt.Errorf("discover replicas: %w", err)
	}
	var ids []string
	deadline := time.Now().Add(500 * time.Millisecond)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		var info micro.Info
		if json.Unmarshal(m.Data, &info) == nil && info.Metadata["replica"] != "" {
			ids = append(ids, info.Metadata["replica"])
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("discover replicas: no reader service answered on " + "$SRV.INFO." + reader.ServiceName)
	}
	slices.Sort(ids)
	return slices.Compact(ids), ctx.Err()
}
