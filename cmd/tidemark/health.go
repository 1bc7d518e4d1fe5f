package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// DefaultHealthTimeout bounds one `tidemark health` probe.
const DefaultHealthTimeout = 3 * time.Second

// healthBodyLimit is how much of an unhealthy answer is quoted in the error.
const healthBodyLimit = 512

// runHealth is `tidemark health [--timeout D] [--service NAME] URL`, the
// health check of images that have no shell or curl. An http(s) URL is
// healthy when a GET answers 2xx. A nats URL (a comma-separated list is
// fine) is healthy when an instance of the micro service NAME answers a
// PING, which is how the writer, which serves no HTTP, is checked.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tidemark health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tidemark health [--timeout D] [--service NAME] URL")
		fmt.Fprintln(stderr, "Exits 0 when an http(s) URL answers a GET with 2xx, or when the micro")
		fmt.Fprintln(stderr, "service NAME answers a PING on the NATS server(s) of a nats URL.")
		fs.PrintDefaults()
	}
	timeout := fs.Duration("timeout", DefaultHealthTimeout, "how long to wait for the answer")
	service := fs.String("service", "", "micro service to PING, for a nats:// URL")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	url := fs.Arg(0)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var err error
	switch {
	case strings.HasPrefix(url, "http://"), strings.HasPrefix(url, "https://"):
		err = checkHTTP(ctx, url)
	case strings.HasPrefix(url, "nats://"), strings.HasPrefix(url, "tls://"):
		if *service == "" {
			return errors.New("health: a nats URL needs --service NAME")
		}
		err = checkService(ctx, url, *service)
	default:
		return fmt.Errorf("health: unsupported URL %q (want http, https or nats)", url)
	}
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// checkHTTP GETs url and returns nil on a 2xx answer.
func checkHTTP(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, healthBodyLimit))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// checkService connects to the NATS server(s) of url and returns nil when an
// instance of the micro service name answers a PING.
func checkService(ctx context.Context, url, name string) error {
	deadline, _ := ctx.Deadline()
	nc, err := nats.Connect(url, nats.Name("tidemark-health"), nats.Timeout(time.Until(deadline)), nats.NoReconnect())
	if err != nil {
		return fmt.Errorf("connect %s: %w", url, err)
	}
	defer nc.Close()
	return pingService(ctx, nc, name)
}

// pingService returns nil when an instance of the micro service name
// answers a PING on nc.
func pingService(ctx context.Context, nc *nats.Conn, name string) error {
	subject, err := micro.ControlSubject(micro.PingVerb, name, "")
	if err != nil {
		return err
	}
	if _, err := nc.RequestWithContext(ctx, subject, nil); err != nil {
		return fmt.Errorf("service %s: %w", name, err)
	}
	return nil
}
