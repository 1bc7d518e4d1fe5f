// Command orders is an example HTTP service that writes through the
// Tidemark client and calls another service over NATS with the session
// token propagated.
//
// POST /orders stores an order, then asks the notify service
// (examples/notify) over NATS to confirm it. The token of the order's write
// travels in the request's Tidemark-Token header, so notify, reading from a
// replica of its own that may lag, still sees the order. The reply's token
// (notify writes too) is merged into the request's session, and
// client.Middleware returns it in the response's Tidemark-Token header, so
// the caller reads both writes next. GET /orders/{id} reads an order as of
// the caller's token.
//
//	go run ./examples/orders --nats nats://127.0.0.1:4222 --http :8081
//	curl -si -X POST localhost:8081/orders -d '{"id":"42","item":"apples","qty":2}'
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
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/client"
)

// NotifySubject is where the notify service answers.
const NotifySubject = "orders.notify"

// NotifyTimeout bounds the call to the notify service.
const NotifyTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("orders", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server `URL`")
	addr := fs.String("http", ":8081", "HTTP listen `address`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr}).Level(zerolog.InfoLevel).With().Timestamp().Logger()

	nc, err := nats.Connect(*natsURL, nats.Name("orders"), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newServer(nc).handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Info().Str("nats", nc.ConnectedUrlRedacted()).Str("addr", ln.Addr().String()).Msg("orders listening")
	fmt.Fprintf(stdout, "orders: listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// server is the order service.
type server struct {
	nc *nats.Conn
	tm *client.Client
}

func newServer(nc *nats.Conn) *server {
	return &server{nc: nc, tm: client.New(client.NewNATS(nc, wire.Subjects{}))}
}

// handler routes the API. client.Middleware puts the request's token (if
// any) in a session in the request's context, which every Tidemark call
// below uses and updates, and returns it in the response.
func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", s.create)
	mux.HandleFunc("GET /orders/{id}", s.get)
	return client.Middleware(mux)
}

// order is an order as this service stores it, at key order/{id}.
type order struct {
	ID   string `json:"id"`
	Item string `json:"item"`
	Qty  int    `json:"qty"`
}

// created is the reply to POST /orders.
type created struct {
	Order        order  `json:"order"`
	Revision     uint64 `json:"revision"`
	Notification string `json:"notification"`
}

func (s *server) create(w http.ResponseWriter, r *http.Request) {
	var o order
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&o); err != nil || !api.ValidID(o.ID) || o.Qty <= 0 {
		http.Error(w, `want {"id":"<letters, digits, - or _>","item":"...","qty":N>0}`, http.StatusBadRequest)
		return
	}
	value, _ := json.Marshal(o)
	ctx := r.Context()
	res, err := s.tm.Put(ctx, "order/"+o.ID, value, client.IfAbsent())
	if err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	// The order's token goes to notify in the message header; notify's
	// token comes back into this request's session.
	nctx, cancel := context.WithTimeout(ctx, NotifyTimeout)
	defer cancel()
	m := nats.NewMsg(NotifySubject)
	m.Data = []byte(o.ID)
	reply, err := client.RequestNATS(nctx, s.nc, m)
	if err != nil {
		http.Error(w, "notify: "+err.Error(), http.StatusBadGateway)
		return
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		http.Error(w, "notify: "+code+": "+reply.Header.Get(micro.ErrorHeader), http.StatusBadGateway)
		return
	}
	writeJSON(w, http.StatusCreated, created{Order: o, Revision: res.Revision, Notification: string(reply.Data)})
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	res, err := s.tm.Get(r.Context(), "order/"+r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(res.Record.Value)
}

// statusOf maps a Tidemark error to an HTTP status.
func statusOf(err error) int {
	switch api.Code(err) {
	case api.CodeNotFound:
		return http.StatusNotFound
	case api.CodeRevisionMismatch:
		return http.StatusConflict
	case api.CodeInvalidKey, api.CodeInvalidRequest, api.CodeInvalidToken,
		api.CodeTokenStreamMismatch, api.CodeTokenFromFuture:
		return http.StatusBadRequest
	case api.CodeTokenWaitTimeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusServiceUnavailable
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
