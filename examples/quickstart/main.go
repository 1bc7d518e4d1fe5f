// Command quickstart is the Tidemark Go client in a few lines: a session
// writes and reads through the HTTP gateway, then its exported token lets a
// second client, over NATS, read the write too.
//
//	go run ./examples/quickstart --gateway http://localhost:8080 --nats nats://127.0.0.1:4222
package main

import (
	"github.com/nats-io/nats.go"
	"github.com/tidemark/tidemark/wire"

	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tidemark/tidemark/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	gateway := fs.String("gateway", "http://localhost:8080", "gateway `URL`")
	natsURL := fs.String("nats", "", "NATS server `URL`; when set, a second client resumes the session over NATS")
	if err := fs.Parse(args); err != nil {
		return err
	}

	c := client.New(client.NewHTTP(*gateway))
	s := c.NewSession()
	put, err := s.Put(ctx, "greeting", []byte("hello"))
	if err != nil {
		return err
	}
	got, err := s.Get(ctx, "greeting") // waits, if it must, for a replica that has the put
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s (revision %d, replica %s)\n", got.Record.Value, got.Record.Revision, got.Replica)

	// Only if nobody wrote it since: If-Match.
	_, err = s.Put(ctx, "greeting", []byte("hello again"), client.IfRevision(put.Revision))
	if err != nil {
		return err
	}
	token := s.String() // export the session, e.g. to another process

	if *natsURL == "" {
		fmt.Fprintf(stdout, "session token %s\n", token)
		return nil
	}
	nc, err := nats.Connect(*natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	other, err := client.ResumeSession(client.New(client.NewNATS(nc, wire.Subjects{})), token)
	if err != nil {
		return err
	}
	got, err = other.Get(ctx, "greeting")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s (revision %d, replica %s, over NATS)\n", got.Record.Value, got.Record.Revision, got.Replica)
	return nil
}
