// Command notify is an example NATS micro service with an embedded Tidemark
// replica: it keeps a local copy of the data, in its own Badger directory,
// and answers "orders.notify" requests by reading the order from that copy.
//
// The caller (examples/orders) sends the order id and, in the
// Tidemark-Token header, the token of the write that created the order. The
// local read waits until the embedded replica has applied that write, so it
// never misses an order that was just placed, however far behind the
// replica is. The service then records the notification through the writer;
// the token of that write goes back in the reply, so the caller's session
// reads it too.
//
//	go run ./examples/notify --nats nats://127.0.0.1:4222 --data ./notify-replica
package main

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/replica"
	"github.com/tidemark/tidemark/stream"
)

// Subject is the subject the service answers on.
const Subject = "orders.notify"

// ReadWait bounds how long a request waits for the replica to reach its token.
const ReadWait = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "notify:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("notify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server `URL`")
	dir := fs.String("data", "./notify-replica", "`directory` of the embedded replica")
	id := fs.String("id", "notify-1", "replica `id`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr}).Level(zerolog.InfoLevel).With().Timestamp().Logger()

	nc, err := nats.Connect(*natsURL, nats.Name("notify"), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	n, err := open(ctx, nc, *id, *dir, log)
	if err != nil {
		return err
	}
	defer n.close()
	fmt.Fprintf(stdout, "notify: answering on %s, replica %s in %s\n", Subject, *id, *dir)
	return n.run(ctx)
}

// notifier is the service: an embedded replica to read from and a client
// that writes through the writer service and reads from the replica.
type notifier struct {
	nc      *nats.Conn
	replica *replica.Replica
	tm      *client.Client
	log     zerolog.Logger
}

// open opens the stream and the embedded replica's directory.
func open(ctx context.Context, nc *nats.Conn, id, dir string, log zerolog.Logger) (*notifier, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	st, err := stream.Open(ctx, js, stream.Config{}) // the stream `tidemark dev` created
	if err != nil {
		return nil, err
	}
	r := replica.New(replica.Config{ID: id, Dir: dir, Stream: st, Logger: log})
	if err := r.Open(); err != nil {
		return nil, err
	}
	tm := client.New(client.NewNATS(nc, wire.Subjects{}), client.WithReader(r))
	return &notifier{nc: nc, replica: r, tm: tm, log: log}, nil
}

// run applies the stream to the replica and serves requests until ctx ends.
func (n *notifier) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.replica.Run(ctx) })
	g.Go(func() error { return n.serve(ctx) })
	return g.Wait()
}

// close closes the replica's directory; call it after run has returned.
func (n *notifier) close() {
	if err := n.replica.Close(); err != nil {
		n.log.Error().Err(err).Msg("close replica")
	}
}

func (n *notifier) serve(ctx context.Context) error {
	svc, err := micro.AddService(n.nc, micro.Config{
		Name:        "orders-notify",
		Version:     "1.0.0",
		Description: "Example: confirms orders, read from an embedded Tidemark replica",
	})
	if err != nil {
		return err
	}
	defer func() { _ = svc.Stop() }()
	// MicroHandler gives each request a context holding its Tidemark-Token
	// and puts the merged token into the reply. A micro endpoint handles
	// one request at a time.
	err = svc.AddEndpoint("notify", client.MicroHandler(ctx, n.notify), micro.WithEndpointSubject(Subject),
		micro.WithEndpointMetadata(map[string]string{
			"request.body":  "the order id",
			"request.token": "header Tidemark-Token: the token of the order's write",
			"reply.body":    "the notification text",
			"reply.token":   "header Tidemark-Token: the token of the notification's write",
		}))
	if err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// order is an order as examples/orders stores it.
type order struct {
	ID   string `json:"id"`
	Item string `json:"item"`
	Qty  int    `json:"qty"`
}

// notify reads the order from the embedded replica, as of the caller's
// token, and records the notification.
func (n *notifier) notify(ctx context.Context, req micro.Request) {
	id := string(req.Data())
	res, err := n.tm.Get(ctx, "order/"+id, client.WithWait(ReadWait))
	if err != nil {
		n.fail(req, id, err)
		return
	}
	var o order
	if err := json.Unmarshal(res.Record.Value, &o); err != nil {
		n.fail(req, id, api.Errorf(api.ErrInternal, "order %s: %w", id, err))
		return
	}
	text := fmt.Sprintf("order %s confirmed: %d x %s", o.ID, o.Qty, o.Item)
	if _, err := n.tm.Put(ctx, "notification/"+id, []byte(text)); err != nil {
		n.fail(req, id, err)
		return
	}
	n.log.Info().Str("order", id).Str("waited", res.Waited.String()).Uint64("revision", res.Record.Revision).Msg("notified")
	_ = req.Respond([]byte(text))
}

func (n *notifier) fail(req micro.Request, id string, err error) {
	if !errors.Is(err, api.ErrNotFound) {
		n.log.Warn().Err(err).Str("order", id).Msg("notify")
	}
	_ = req.Error(api.Code(err), err.Error(), nil)
}
