//go:build natscli

package client_test

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/micro"

	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/reader"
	"github.com/tidemark/tidemark/writer"
)

// natsCLI runs the nats CLI (natscli) against the server at url.
type natsCLI struct {
	t    *testing.T
	path string
	url  string
	env  []string
}

func newNATSCLI(t *testing.T) *natsCLI {
	t.Helper()
	path, err := exec.LookPath("nats")
	if err != nil {
		t.Skip("natscli is not installed: no nats on PATH " +
			"(go install github.com/nats-io/natscli/nats@v0.5.0, then add $(go env GOPATH)/bin to PATH)")
	}
	home := t.TempDir() // no user contexts
	env := append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "NATS_CONTEXT=")
	return &natsCLI{t: t, path: path, env: env}
}

// run runs nats with args; want an error exit when fail.
func (n *natsCLI) run(fail bool, args ...string) string {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.path, append([]string{"--server", n.url, "--no-context", "--timeout", "10s"}, args...)...)
	cmd.Env = n.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	n.t.Logf("$ nats %s\n%s", strings.Join(args, " "), out.String())
	if (err != nil) != fail {
		n.t.Fatalf("nats %s: err=%v, want failure %v", strings.Join(args, " "), err, fail)
	}
	return out.String()
}

// TestNATSCLI drives the services with the real nats CLI: a put with `nats
// req` returns a token, a get with that token returns the value, and `nats
// micro ls|info|stats` show the services.
func TestNATSCLI(t *testing.T) {
	cli := newNATSCLI(t) // skips without natscli
	s := stacktest.Start(t, stacktest.Options{})
	cli.url = s.Server.ClientURL()

	// put: the reply body is the write's JSON; the token is also a header.
	out := cli.run(false, "req", "tidemark.v1.put", "hello", "-H", "Tidemark-Key: greeting")
	var put api.WriteJSON
	if err := json.Unmarshal([]byte(lastLine(out)), &put); err != nil {
		t.Fatalf("put reply %q: %v", lastLine(out), err)
	}
	tok, err := api.ParseToken(put.Token)
	if err != nil || tok != s.Stream.Token(put.Revision) || put.Key != "greeting" {
		t.Fatalf("put reply %+v (token %v, %v), want key greeting and the token of revision %d", put, tok, err, put.Revision)
	}
	if !strings.Contains(out, api.HeaderToken+": "+put.Token) {
		t.Fatalf("put reply has no %s header %q", api.HeaderToken, put.Token)
	}

	// get with the token, held back replicas and all: the value.
	for _, r := range s.Replicas {
		r.Replicator().Pause()
	}
	time.AfterFunc(200*time.Millisecond, func() {
		for _, r := range s.Replicas {
			r.Replicator().Resume()
		}
	})
	out = cli.run(false, "req", "tidemark.v1.get", "", "-H", "Tidemark-Key: greeting", "-H", "Tidemark-Token: "+put.Token)
	if got := lastLine(out); got != "hello" {
		t.Fatalf("get with the token=%q, want hello", got)
	}
	if !regexp.MustCompile(`Tidemark-Replica: r[12]`).MatchString(out) {
		t.Fatalf("get reply does not say which replica served it")
	}

	// Raw output, a key with a slash, a scan, and an error.
	out = cli.run(false, "req", "--raw", "tidemark.v1.put", "v", "-H", "Tidemark-Key: a%2Fb", "-H", "Tidemark-Token: "+put.Token)
	if err := json.Unmarshal([]byte(lastLine(out)), &put); err != nil || put.Key != "a/b" {
		t.Fatalf("put of a/b: %q (%v)", out, err)
	}
	out = cli.run(false, "req", "--raw", "tidemark.v1.scan", `{"prefix":"a/"}`, "-H", "Tidemark-Token: "+put.Token)
	var page api.ScanJSON
	if err := json.Unmarshal([]byte(lastLine(out)), &page); err != nil || len(page.Items) != 1 || page.Items[0].Key != "a/b" {
		t.Fatalf("scan=%q (%v), want one item a/b", out, err)
	}
	out = cli.run(false, "req", "tidemark.v1.get", "", "-H", "Tidemark-Key: missing")
	if !strings.Contains(out, wire.HeaderErrorCode+": "+api.CodeNotFound) {
		t.Fatalf("get of a missing key: no %s: %s", wire.HeaderErrorCode, api.CodeNotFound)
	}

	// micro ls lists both services; info and stats describe them.
	out = cli.run(false, "micro", "ls")
	for _, want := range []string{writer.ServiceName, reader.ServiceName, writer.Version, reader.Version} {
		if !strings.Contains(out, want) {
			t.Fatalf("micro ls does not show %q", want)
		}
	}
	out = cli.run(false, "micro", "info", writer.ServiceName)
	for _, want := range []string{writer.Description[:40], "tidemark.v1.put", "tidemark.v1.delete", "request.key", "Tidemark-Key", "reply.body", "write_out_of_order", s.Stream.ID()} {
		if !strings.Contains(out, want) {
			t.Fatalf("micro info %s does not show %q", writer.ServiceName, want)
		}
	}
	out = cli.run(false, "micro", "info", reader.ServiceName)
	for _, want := range []string{"tidemark.v1.get", "tidemark.v1.scan", "tidemark.v1.replica.", "Tidemark-Wait", "token_wait_timeout", "replica"} {
		if !strings.Contains(out, want) {
			t.Fatalf("micro info %s does not show %q", reader.ServiceName, want)
		}
	}
	// Every description fits natscli's columns, which cut long values.
	for _, name := range []string{writer.ServiceName, reader.ServiceName} {
		var info struct {
			Info micro.Info `json:"info"`
		}
		out = cli.run(false, "micro", "info", "--json", name)
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatalf("micro info --json %s: %v", name, err)
		}
		if len(info.Info.Endpoints) < 2 {
			t.Fatalf("micro info --json %s: %d endpoints, want at least 2", name, len(info.Info.Endpoints))
		}
		for _, e := range info.Info.Endpoints {
			for _, k := range []string{"description", "request.body", "reply.body", "errors"} {
				if e.Metadata[k] == "" {
					t.Fatalf("%s endpoint %s: no metadata %q", name, e.Name, k)
				}
			}
			for k, v := range e.Metadata {
				if n := utf8.RuneCountInString(v); n > maxMetadataLen {
					t.Fatalf("%s endpoint %s: metadata %s is %d characters, over %d: %q", name, e.Name, k, n, maxMetadataLen, v)
				}
			}
		}
	}

	// stats count the requests made above.
	for _, tc := range []struct {
		service, endpoint string
		min               int
	}{
		{writer.ServiceName, writer.EndpointPut, 2},
		{reader.ServiceName, "get", 2},
		{reader.ServiceName, "scan", 1},
	} {
		out = cli.run(false, "micro", "stats", tc.service)
		if !strings.Contains(out, tc.endpoint) {
			t.Fatalf("micro stats %s does not show the %s endpoint", tc.service, tc.endpoint)
		}
		var stats []micro.Stats
		if err := json.Unmarshal([]byte(cli.run(false, "micro", "stats", "--json", tc.service)), &stats); err != nil {
			t.Fatalf("micro stats --json %s: %v", tc.service, err)
		}
		n := 0
		for _, st := range stats {
			for _, e := range st.Endpoints {
				if e.Name == tc.endpoint {
					n += e.NumRequests
				}
			}
		}
		if n < tc.min {
			t.Fatalf("micro stats %s: %d requests on %s, want at least %d", tc.service, n, tc.endpoint, tc.min)
		}
	}
}

// maxMetadataLen is the longest metadata value natscli shows whole on a
// terminal 100 columns wide.
const maxMetadataLen = 70

// lastLine returns the last non-empty line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
