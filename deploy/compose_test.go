//go:build compose

package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testImage is the image the test builds and runs; a tag of its own, so the
// test never retags the image of a user's `make up` stack.
const testImage = "tidemark:compose-test"

// Bounds of the test's waits.
const (
	buildTimeout   = 10 * time.Minute
	upTimeout      = 5 * time.Minute
	healthyTimeout = 3 * time.Minute
	failoverWait   = 45 * time.Second // a write or read while a NATS server is down
	catchUpWait    = 2 * time.Minute  // a restarted replica reaching the stream's end
)

// TestCompose runs docker-compose.yml under a project name of its own, on
// free loopback ports: read-your-writes across the two gateways, then the
// same with one NATS server (the stream leader) and one replica stopped,
// then the stopped replica catching up once both are started again.
func TestCompose(t *testing.T) {
	requireDocker(t)
	start := time.Now()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("make", "-C", root, "images", "IMAGE="+testImage)
	out, err := runCmd(build, buildTimeout)
	if err != nil {
		t.Fatalf("make images: %v\n%s", err, out)
	}
	// make images says what it is doing, a line per step.
	for _, step := range []string{"building bin/tidemark (static)\n", "building image " + testImage + " FROM scratch\n"} {
		if !strings.Contains(string(out), step) {
			t.Errorf("make images output lacks %q:\n%s", step, out)
		}
	}
	t.Logf("make images: %v", time.Since(start).Round(time.Millisecond))

	s := newStack(t, root)
	phase := time.Now()
	if out, err := s.compose(upTimeout, "up", "-d"); err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	s.waitHealthy(healthyTimeout)
	for _, gw := range []string{s.gw1, s.gw2} {
		eventually(t, healthyTimeout, "gateway "+gw+" ready", func(ctx context.Context) error {
			return s.ready(ctx, gw)
		})
	}
	t.Logf("stack up and healthy: %v", time.Since(phase).Round(time.Millisecond))

	if !t.Run("durable stream and servers", s.checkDurability) {
		t.FailNow()
	}
	t.Run("metrics on the published ports", s.checkMetrics)

	// Read-your-writes across gateways: write through one, read through the
	// other with the token.
	w := s.mustPut(s.gw1, "greeting", []byte("hello"))
	if got, want := s.mustGet(s.gw2, "greeting", w.Token, ""), "hello"; string(got.body) != want {
		t.Fatalf("GET greeting through gateway-2 = %q, want %q", got.body, want)
	}
	big := make([]byte, 1<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	w = s.mustPut(s.gw1, "big", big)
	if got := s.mustGet(s.gw2, "big", w.Token, ""); !bytes.Equal(got.body, big) {
		t.Fatalf("GET big through gateway-2: %d bytes, want the 1 MiB written", len(got.body))
	}

	// One NATS server and one replica down: writes and token reads go on.
	// The server stopped is the stream's leader (its server name is its
	// service name), the hardest one to lose: writes wait for an election.
	downNATS := s.leader
	if downNATS != "nats-1" && downNATS != "nats-2" && downNATS != "nats-3" {
		t.Fatalf("stream leader %q is not one of the services nats-1..3", downNATS)
	}
	phase = time.Now()
	if out, err := s.compose(time.Minute, "stop", "-t", "10", downNATS, "replica-3"); err != nil {
		t.Fatalf("docker-compose stop: %v\n%s", err, out)
	}
	t.Logf("stopped %s (the stream leader) and replica-3: %v", downNATS, time.Since(phase).Round(time.Millisecond))
	phase = time.Now()
	var last putResult
	for i := 1; i <= 5; i++ {
		key, value := fmt.Sprintf("outage/%d", i), fmt.Sprintf("written while %s and r3 are down, #%d", downNATS, i)
		from, to := s.gw1, s.gw2
		if i%2 == 0 {
			from, to = s.gw2, s.gw1
		}
		last = s.putEventually(from, key, []byte(value))
		got := s.getEventually(failoverWait, to, key, last.Token, "")
		if string(got.body) != value {
			t.Fatalf("GET %s = %q, want %q", key, got.body, value)
		}
		if got.replica == "r3" {
			t.Fatalf("GET %s served by r3, which is stopped", key)
		}
		if i == 1 {
			t.Logf("first write and token read after the stop: %v", time.Since(phase).Round(time.Millisecond))
		}
	}
	t.Logf("5 writes and token reads with %s and r3 down: %v", downNATS, time.Since(phase).Round(time.Millisecond))
	if got, err := s.get(context.Background(), s.gw1, "outage/5", last.Token, "r3"); err == nil && got.status == http.StatusOK {
		t.Fatalf("a read pinned to the stopped replica r3 answered 200 (%q)", got.body)
	}

	// Start them again: r3 catches up and serves the latest write.
	phase = time.Now()
	if out, err := s.compose(time.Minute, "start", downNATS, "replica-3"); err != nil {
		t.Fatalf("docker-compose start: %v\n%s", err, out)
	}
	eventually(t, catchUpWait, "replica-3 /readyz", func(ctx context.Context) error {
		out, err := s.compose(20*time.Second, "exec", "-T", "replica-3", "/tidemark", "health", "http://127.0.0.1:9100/readyz")
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	})
	t.Logf("replica-3 caught up (ready): %v", time.Since(phase).Round(time.Millisecond))
	got := s.getEventually(catchUpWait, s.gw1, "outage/5", last.Token, "r3")
	if got.replica != "r3" {
		t.Fatalf("read pinned to r3 served by %q", got.replica)
	}
	if !strings.HasSuffix(string(got.body), "#5") {
		t.Fatalf("r3 serves outage/5 = %q, want the last write", got.body)
	}
	s.waitHealthy(healthyTimeout)
	t.Logf("whole stack healthy again: %v", time.Since(phase).Round(time.Millisecond))

	// Every replica serves a write made after the recovery.
	w = s.mustPut(s.gw2, "after", []byte("all back"))
	for _, id := range []string{"r1", "r2", "r3"} {
		got := s.getEventually(catchUpWait, s.gw1, "after", w.Token, id)
		if string(got.body) != "all back" || got.replica != id {
			t.Fatalf("GET after pinned to %s = %q from %q", id, got.body, got.replica)
		}
	}
	t.Logf("total, with the build: %v", time.Since(start).Round(time.Millisecond))
}

// requireDocker skips the test when Docker, docker-compose or make is
// missing or the engine does not answer.
func requireDocker(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"docker", "docker-compose", "make"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("skipped: %s not found in PATH; the compose test needs a Docker engine, docker-compose and make", bin)
		}
	}
	out, err := runCmd(exec.Command("docker", "info", "--format", "{{.ServerVersion}}"), 30*time.Second)
	if err != nil {
		t.Skipf("skipped: no Docker engine (docker info: %v: %s)", err, bytes.TrimSpace(out))
	}
}

// runCmd runs cmd with a timeout and returns its combined output.
func runCmd(cmd *exec.Cmd, timeout time.Duration) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Errorf("%s: timed out after %v", strings.Join(cmd.Args, " "), timeout)
	}
}

// stack is one compose project of docker-compose.yml.
type stack struct {
	t                 *testing.T
	root, project     string
	env               []string
	gw1, gw2          string // gateway base URLs
	natsURL, monitor  string // nats-1 client URL and monitoring base URL
	writer1, replica1 string // writer-1's and replica-1's HTTP base URLs
	monitor2          string // nats-2's monitoring base URL
	leader            string // the stream leader's server name, nats-N
	http              *http.Client
}

// newStack picks a project name and free loopback ports; the project is
// taken down (volumes too) when the test ends, after its logs are printed if
// the test failed.
func newStack(t *testing.T, root string) *stack {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	// Every published port, so that none is a default a `make up` stack uses.
	vars := []string{"TIDEMARK_GATEWAY1_PORT", "TIDEMARK_GATEWAY2_PORT", "TIDEMARK_NATS_PORT", "TIDEMARK_NATS_MONITOR_PORT",
		"TIDEMARK_WRITER1_PORT", "TIDEMARK_REPLICA1_PORT", "TIDEMARK_NATS2_MONITOR_PORT",
		"TIDEMARK_WRITER2_PORT", "TIDEMARK_REPLICA2_PORT", "TIDEMARK_REPLICA3_PORT", "TIDEMARK_NATS3_MONITOR_PORT"}
	ports := freePorts(t, len(vars))
	s := &stack{
		t: t, root: root, project: "tidemarktest" + hex.EncodeToString(b[:]),
		gw1:      "http://127.0.0.1:" + ports[0],
		gw2:      "http://127.0.0.1:" + ports[1],
		natsURL:  "nats://127.0.0.1:" + ports[2],
		monitor:  "http://127.0.0.1:" + ports[3],
		writer1:  "http://127.0.0.1:" + ports[4],
		replica1: "http://127.0.0.1:" + ports[5],
		monitor2: "http://127.0.0.1:" + ports[6],
		http:     &http.Client{Timeout: 15 * time.Second},
	}
	s.env = append(os.Environ(), "TIDEMARK_IMAGE="+testImage)
	for i, v := range vars {
		s.env = append(s.env, v+"="+ports[i])
	}
	t.Logf("compose project %s: gateways %s %s, nats %s", s.project, s.gw1, s.gw2, s.natsURL)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := s.compose(time.Minute, "ps")
			t.Logf("docker-compose ps:\n%s", out)
			out, _ = s.compose(time.Minute, "logs", "--no-color", "--tail", "60")
			t.Logf("docker-compose logs:\n%s", out)
		}
		start := time.Now()
		if out, err := s.compose(3*time.Minute, "down", "-v", "--remove-orphans", "-t", "10"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
		t.Logf("docker-compose down -v: %v", time.Since(start).Round(time.Millisecond))
	})
	return s
}

func freePorts(t *testing.T, n int) []string {
	var ports []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	return ports
}

// compose runs docker-compose on the test's project.
func (s *stack) compose(timeout time.Duration, args ...string) ([]byte, error) {
	cmd := exec.Command("docker-compose", append([]string{"-p", s.project, "-f", filepath.Join(s.root, "docker-compose.yml")}, args...)...)
	cmd.Dir, cmd.Env = s.root, s.env
	return runCmd(cmd, timeout)
}

// waitHealthy waits until every container of the project runs and its
// health check passes.
func (s *stack) waitHealthy(timeout time.Duration) {
	s.t.Helper()
	eventually(s.t, timeout, "every container healthy", func(context.Context) error {
		out, err := s.compose(30*time.Second, "ps", "-q")
		if err != nil {
			return fmt.Errorf("ps: %v: %s", err, out)
		}
		ids := strings.Fields(string(out))
		if len(ids) == 0 {
			return errors.New("no containers")
		}
		args := append([]string{"inspect", "-f", "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"}, ids...)
		out, err = runCmd(exec.Command("docker", args...), 30*time.Second)
		if err != nil {
			return fmt.Errorf("inspect: %v: %s", err, out)
		}
		var pending []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(line); len(f) != 3 || f[1] != "running" || f[2] != "healthy" {
				pending = append(pending, line)
			}
		}
		if len(pending) > 0 {
			return fmt.Errorf("not healthy: %s", strings.Join(pending, "; "))
		}
		return nil
	})
}

// checkDurability checks the stream the writer made and nats-1's settings:
// file storage, R3 with every peer current, the duplicate window, fsync on
// every write and room for 1 MiB values.
func (s *stack) checkDurability(t *testing.T) {
	nc, err := nats.Connect(s.natsURL, nats.Name("tidemark-compose-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.StreamInfo
	eventually(t, time.Minute, "stream TIDEMARK on three current peers", func(ctx context.Context) error {
		st, err := js.Stream(ctx, "TIDEMARK")
		if err != nil {
			return err
		}
		info, err = st.Info(ctx)
		if err != nil {
			return err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return errors.New("no stream leader")
		}
		current := 0
		for _, p := range info.Cluster.Replicas {
			if p.Current {
				current++
			}
		}
		if current != 2 {
			return fmt.Errorf("leader %s, %d of 2 followers current", info.Cluster.Leader, current)
		}
		return nil
	})
	if got, want := info.Config.Replicas, 3; got != want {
		t.Errorf("stream replicas=%d, want %d", got, want)
	}
	if got, want := info.Config.Storage, jetstream.FileStorage; got != want {
		t.Errorf("stream storage=%v, want %v", got, want)
	}
	if got, want := info.Config.Duplicates, 2*time.Minute; got != want {
		t.Errorf("stream duplicate window=%v, want %v", got, want)
	}
	s.leader = info.Cluster.Leader
	t.Logf("stream TIDEMARK: %v storage, R%d, leader %s, duplicate window %v, max bytes %d, max age %v",
		info.Config.Storage, info.Config.Replicas, info.Cluster.Leader, info.Config.Duplicates, info.Config.MaxBytes, info.Config.MaxAge)

	var varz struct {
		MaxPayload int `json:"max_payload"`
		JetStream  struct {
			Config struct {
				SyncAlways bool `json:"sync_always"`
			} `json:"config"`
		} `json:"jetstream"`
	}
	resp, err := s.http.Get(s.monitor + "/varz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&varz); err != nil {
		t.Fatalf("nats-1 /varz: %v", err)
	}
	if !varz.JetStream.Config.SyncAlways {
		t.Errorf("nats-1 JetStream sync_always=false, want sync_interval: always")
	}
	if got, want := varz.MaxPayload, 8<<20; got != want {
		t.Errorf("nats-1 max_payload=%d, want %d", got, want)
	}
}

// checkMetrics reads /metrics of writer-1 and replica-1, and nats-2's
// monitoring, through the ports published on the host.
func (s *stack) checkMetrics(t *testing.T) {
	for _, tc := range []struct {
		what, url, want string
	}{
		{"writer-1", s.writer1 + "/metrics", `tidemark_writer_writes_total{op="put",outcome="ok"}`},
		{"replica-1", s.replica1 + "/metrics", `tidemark_replica_ready{replica="r1"} 1`},
		{"nats-2 monitoring", s.monitor2 + "/healthz", `"status":"ok"`},
	} {
		eventually(t, time.Minute, tc.what+" "+tc.url, func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, tc.url, nil)
			if err != nil {
				return err
			}
			resp, err := s.http.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), tc.want) {
				return fmt.Errorf("%s: want 200 with %s, got %s:\n%.2000s", tc.url, tc.want, resp.Status, body)
			}
			return nil
		})
	}
}

func (s *stack) ready(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// putResult is the gateway's answer to a write.
type putResult struct {
	Key      string `json:"key"`
	Revision uint64 `json:"revision"`
	Token    string `json:"token"`
}

// put writes key through the gateway at base. The write id makes a retry of
// a write whose answer was lost store it once.
func (s *stack) put(ctx context.Context, base, key string, value []byte, writeID string) (putResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v1/kv/"+url.PathEscape(key), bytes.NewReader(value))
	if err != nil {
		return putResult{}, err
	}
	req.Header.Set("Tidemark-Write-Id", writeID)
	resp, err := s.http.Do(req)
	if err != nil {
		return putResult{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return putResult{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return putResult{}, fmt.Errorf("PUT %s: %s: %s", key, resp.Status, bytes.TrimSpace(body))
	}
	var r putResult
	if err := json.Unmarshal(body, &r); err != nil {
		return putResult{}, fmt.Errorf("PUT %s: %w: %s", key, err, body)
	}
	if r.Token == "" || r.Revision == 0 {
		return putResult{}, fmt.Errorf("PUT %s: no token or revision in %s", key, body)
	}
	return r, nil
}

func (s *stack) mustPut(base, key string, value []byte) putResult {
	s.t.Helper()
	r, err := s.put(context.Background(), base, key, value, newWriteID(s.t))
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// putEventually retries one write (same write id) until it succeeds.
func (s *stack) putEventually(base, key string, value []byte) putResult {
	s.t.Helper()
	id := newWriteID(s.t)
	var r putResult
	eventually(s.t, failoverWait, "PUT "+key+" through "+base, func(ctx context.Context) error {
		var err error
		r, err = s.put(ctx, base, key, value, id)
		return err
	})
	return r
}

// getResult is the gateway's answer to a read.
type getResult struct {
	status   int
	body     []byte
	replica  string // Tidemark-Replica: who served it
	revision string
}

// get reads key through the gateway at base with token; a non-empty replica
// pins the read to that replica.
func (s *stack) get(ctx context.Context, base, key, token, replica string) (getResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/kv/"+url.PathEscape(key), nil)
	if err != nil {
		return getResult{}, err
	}
	req.Header.Set("Tidemark-Token", token)
	req.Header.Set("Tidemark-Wait", "3s")
	if replica != "" {
		req.Header.Set("Tidemark-Replica", replica)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return getResult{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return getResult{}, err
	}
	return getResult{status: resp.StatusCode, body: body, replica: resp.Header.Get("Tidemark-Replica"),
		revision: resp.Header.Get("Tidemark-Revision")}, nil
}

func (s *stack) mustGet(base, key, token, replica string) getResult {
	s.t.Helper()
	r, err := s.get(context.Background(), base, key, token, replica)
	if err != nil {
		s.t.Fatal(err)
	}
	if r.status != http.StatusOK {
		s.t.Fatalf("GET %s through %s: %d %s", key, base, r.status, r.body)
	}
	return r
}

// getEventually retries a token read until it answers 200. It never accepts
// a stale answer: a 200 to a read with a token is at or past the token.
func (s *stack) getEventually(timeout time.Duration, base, key, token, replica string) getResult {
	s.t.Helper()
	var r getResult
	eventually(s.t, timeout, "GET "+key+" through "+base+" "+replica, func(ctx context.Context) error {
		var err error
		r, err = s.get(ctx, base, key, token, replica)
		if err != nil {
			return err
		}
		if r.status != http.StatusOK {
			return fmt.Errorf("%d %s", r.status, bytes.TrimSpace(r.body))
		}
		return nil
	})
	return r
}

func newWriteID(t *testing.T) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "compose-test-" + hex.EncodeToString(b[:])
}

// eventually calls f until it returns nil, pausing 250ms after the first
// failure and doubling the pause up to 2s, and fails the test with f's last
// error when timeout passes first.
func eventually(t *testing.T, timeout time.Duration, what string, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start, pause := time.Now(), 250*time.Millisecond
	var lastErr error
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil {
			if attempt > 1 {
				t.Logf("%s: done after %d attempts in %v; last error: %v", what, attempt, time.Since(start).Round(time.Millisecond), lastErr)
			}
			return
		}
		lastErr = err
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			t.Fatalf("%s: not done after %v: %v", what, timeout, err)
		case <-timer.C:
		}
		pause = min(2*pause, 2*time.Second)
	}
}
