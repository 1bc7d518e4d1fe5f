package chaos

import (
	"github.com/tidemark/tidemark/internal/backoff"
	"github.com/tidemark/tidemark/internal/natsconn"

	"github.com/tidemark/tidemark/wire"

	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/netproxy"
	"github.com/tidemark/tidemark/internal/proc"
	"github.com/tidemark/tidemark/stream"
)

// Binaries are the programs a cluster runs.
type Binaries struct {
	// Tidemark is the tidemark binary (writer, replica, gateway roles).
	Tidemark string
	// NATSServer is a nats-server binary.
	NATSServer string
}

// Build compiles the tidemark binary and a nats-server binary (the version
// the module requires) into dir. It needs the Go toolchain and a working
// directory inside the module.
func Build(ctx context.Context, dir string) (Binaries, error) {
	b := Binaries{Tidemark: filepath.Join(dir, "tidemark"), NATSServer: filepath.Join(dir, "nats-server")}
	for _, t := range []struct{ out, pkg string }{
		{b.Tidemark, "github.com/tidemark/tidemark/cmd/tidemark"},
		{b.NATSServer, "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t.out, t.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return Binaries{}, fmt.Errorf("go build %s: %w\n%s", t.pkg, err, out)
		}
	}
	return b, nil
}

// Topology is what a cluster runs.
type Topology struct {
	// NATS is the number of NATS servers: 1, or 3 for a JetStream
	// cluster (the stream is then R3).
	NATS int
	// Writers, Replicas and Gateways count the Tidemark processes.
	Writers, Replicas, Gateways int
}

func (t *Topology) setDefaults() {
	if t.NATS <= 0 {
		t.NATS = 1
	}
	if t.Writers <= 0 {
		t.Writers = 2
	}
	if t.Replicas <= 0 {
		t.Replicas = 3
	}
	if t.Gateways <= 0 {
		t.Gateways = 2
	}
}

// String describes t.
func (t Topology) String() string {
	return fmt.Sprintf("%d nats, %d writers, %d replicas, %d gateways", t.NATS, t.Writers, t.Replicas, t.Gateways)
}

// natsNode is one NATS server and the proxies in front of it.
type natsNode struct {
	proc    *proc.Proc
	name    string
	client  string            // client address
	monitor string            // monitoring address
	front   *netproxy.Proxy   // the client path of the writers, gateways and workload
	routes  []*netproxy.Proxy // route paths into and out of this server
}

// node is one Tidemark process.
type node struct {
	proc *proc.Proc
	id   string
	http string // health or gateway address
	// proxies are the replica's own paths to each NATS server (replicas only).
	proxies []*netproxy.Proxy
}

// Cluster is a running set of real processes: NATS servers and the
// Tidemark writer, replica and gateway roles, each a child process, with
// loopback proxies on the paths that partitions cut.
type Cluster struct {
	topo Topology
	dir  string
	bins Binaries
	log  zerolog.Logger

	nats     []*natsNode
	writers  []*node
	replicas []*node
	gateways []*node
	proxies  []*netproxy.Proxy

	// admin is the harness's own connection, straight to every server.
	admin  *natsconn.Conn
	adminT *client.NATS
	js     jetstream.JetStream
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePorts(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		a, err := proc.FreeAddr()
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// childEnv is the environment of every child: the harness's, without
// Tidemark settings, so that only the flags configure the roles.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TIDEMARK_") {
			env = append(env, kv)
		}
	}
	return env
}

// StartCluster starts the processes of topo in dir and waits until every
// one is ready; every process gets the configuration settings set
// (key=value, as --set takes them). Close stops them.
func StartCluster(ctx context.Context, dir string, bins Binaries, topo Topology, log zerolog.Logger, set ...string) (c *Cluster, err error) {
	topo.setDefaults()
	c = &Cluster{topo: topo, dir: dir, bins: bins, log: log}
	started := c // a failing return sets c to nil before this runs
	defer func() {
		if err != nil {
			started.Close()
			c = nil
		}
	}()
	if err := c.startNATS(ctx); err != nil {
		return nil, err
	}
	direct := make([]string, len(c.nats))
	front := make([]string, len(c.nats))
	for i, n := range c.nats {
		direct[i] = "nats://" + n.client
		front[i] = "nats://" + n.front.Addr()
	}
	c.admin, err = natsconn.Connect(ctx, natsconn.ConnectConfig{URL: strings.Join(direct, ","), Name: "chaos-admin", Logger: log})
	if err != nil {
		return nil, err
	}
	if c.js, err = jetstream.New(c.admin.Conn); err != nil {
		return nil, err
	}
	c.adminT = client.NewNATS(c.admin.Conn, wire.Subjects{})
	if err := c.waitJetStream(ctx); err != nil {
		return nil, err
	}
	common := func(urls []string) []string {
		args := []string{"--nats", strings.Join(urls, ","), "--set", fmt.Sprintf("stream.replicas=%d", topo.NATS)}
		for _, kv := range set {
			args = append(args, "--set", kv)
		}
		return args
	}
	for i := range topo.Writers {
		n := &node{id: fmt.Sprintf("w%d", i+1)}
		n.proc = c.proc("writer-"+n.id, append([]string{"writer", "--set", fmt.Sprintf("writer.group_commit_min=%d", groupCommitMin)}, common(front)...))
		c.writers = append(c.writers, n)
		if err := n.proc.Start(); err != nil {
			return nil, err
		}
		if i == 0 {
			// The first writer creates the stream; the others start once
			// it exists (a writer that cannot look the stream up in time
			// at start-up exits).
			if err := c.waitStream(ctx); err != nil {
				return nil, err
			}
		}
	}
	for i := range topo.Replicas {
		n := &node{id: fmt.Sprintf("r%d", i+1)}
		if n.http, err = proc.FreeAddr(); err != nil {
			return nil, err
		}
		var urls []string
		for _, nn := range c.nats {
			p, err := c.proxy(nn.client)
			if err != nil {
				return nil, err
			}
			n.proxies = append(n.proxies, p)
			urls = append(urls, "nats://"+p.Addr())
		}
		args := append([]string{"replica", "--id", n.id, "--data", filepath.Join(dir, n.id), "--http", n.http}, common(urls)...)
		n.proc = c.proc("replica-"+n.id, args)
		c.replicas = append(c.replicas, n)
		if err := n.proc.Start(); err != nil {
			return nil, err
		}
	}
	for i := range topo.Gateways {
		n := &node{id: fmt.Sprintf("g%d", i+1)}
		if n.http, err = proc.FreeAddr(); err != nil {
			return nil, err
		}
		n.proc = c.proc("gateway-"+n.id, append([]string{"gateway", "--http", n.http}, common(front)...))
		c.gateways = append(c.gateways, n)
		if err := n.proc.Start(); err != nil {
			return nil, err
		}
	}
	for _, n := range append(append([]*node{}, c.replicas...), c.gateways...) {
		if err := proc.WaitHTTP(ctx, n.proc, "http://"+n.http+"/readyz", readyTimeout); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// readyTimeout bounds how long a process may take to become ready.
const readyTimeout = 90 * time.Second

func (c *Cluster) proc(name string, args []string) *proc.Proc {
	return &proc.Proc{Name: name, Path: c.bins.Tidemark, Args: args, Env: childEnv(), Log: filepath.Join(c.dir, name+".log")}
}

func (c *Cluster) proxy(target string) (*netproxy.Proxy, error) {
	p, err := netproxy.Start(target)
	if err != nil {
		return nil, err
	}
	c.proxies = append(c.proxies, p)
	return p, nil
}

// startNATS writes the servers' configuration files and starts them. In a
// cluster every route between two servers goes through a proxy of its
// own, so that one server can be cut off from the others; the advertised
// cluster address leads nowhere, so that no server opens a route around
// the proxies.
func (c *Cluster) startNATS(ctx context.Context) error {
	n := c.topo.NATS
	addrs, err := freePorts(3*n + 1)
	if err != nil {
		return err
	}
	nowhere := addrs[3*n]
	for i := range n {
		nn := &natsNode{name: fmt.Sprintf("n%d", i+1), client: addrs[3*i], monitor: addrs[3*i+1]}
		if nn.front, err = c.proxy(nn.client); err != nil {
			return err
		}
		c.nats = append(c.nats, nn)
	}
	for i, nn := range c.nats {
		var conf strings.Builder
		fmt.Fprintf(&conf, "server_name: %s\nlisten: %s\nhttp: %s\nmax_payload: 8MB\n", nn.name, nn.client, nn.monitor)
		conf.WriteString("ping_interval: \"2s\"\nping_max: 3\nwrite_deadline: \"2s\"\n")
		fmt.Fprintf(&conf, "jetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", filepath.Join(c.dir, nn.name))
		if n > 1 {
			fmt.Fprintf(&conf, "cluster {\n  name: chaos\n  listen: %s\n  advertise: %s\n  routes: [\n", addrs[3*i+2], nowhere)
			for j := range n {
				if j == i {
					continue
				}
				p, err := c.proxy(addrs[3*j+2])
				if err != nil {
					return err
				}
				nn.routes = append(nn.routes, p)
				c.nats[j].routes = append(c.nats[j].routes, p)
				fmt.Fprintf(&conf, "    nats-route://%s\n", p.Addr())
			}
			conf.WriteString("  ]\n}\n")
		}
		file := filepath.Join(c.dir, nn.name+".conf")
		if err := os.WriteFile(file, []byte(conf.String()), 0o644); err != nil {
			return err
		}
		nn.proc = &proc.Proc{Name: "nats-" + nn.name, Path: c.bins.NATSServer, Args: []string{"-c", file},
			Env: childEnv(), Log: filepath.Join(c.dir, "nats-"+nn.name+".log")}
		if err := nn.proc.Start(); err != nil {
			return err
		}
	}
	for _, nn := range c.nats {
		if err := proc.WaitHTTP(ctx, nn.proc, "http://"+nn.monitor+"/healthz", readyTimeout); err != nil {
			return err
		}
	}
	return nil
}

// waitJetStream waits until JetStream answers (in a cluster: once it has a
// meta leader). A writer started before that fails to create the stream.
func (c *Cluster) waitJetStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.js.AccountInfo(actx)
		acancel()
		if err == nil {
			return nil
		}
		if err := backoff.Sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("jetstream not ready: %w", err)
		}
	}
}

// waitStream waits until a writer has created the stream.
func (c *Cluster) waitStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		_, err := c.js.Stream(ctx, stream.DefaultName)
		if err == nil {
			return nil
		}
		if err := backoff.Sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("stream not created: %w", err)
		}
	}
}

// GatewayURLs returns the gateways' base URLs.
func (c *Cluster) GatewayURLs() []string {
	out := make([]string, len(c.gateways))
	for i, g := range c.gateways {
		out[i] = "http://" + g.http
	}
	return out
}

// ReplicaIDs returns the replicas' ids.
func (c *Cluster) ReplicaIDs() []string {
	out := make([]string, len(c.replicas))
	for i, r := range c.replicas {
		out[i] = r.id
	}
	return out
}

// FrontURL is the NATS URL a client uses: every server, through the
// proxies that a server partition cuts.
func (c *Cluster) FrontURL() string {
	urls := make([]string, len(c.nats))
	for i, n := range c.nats {
		urls[i] = "nats://" + n.front.Addr()
	}
	return strings.Join(urls, ",")
}

// Admin returns the harness's own connection to every server.
func (c *Cluster) Admin() *natsconn.Conn { return c.admin }

// Dir returns the directory of the cluster's data and logs.
func (c *Cluster) Dir() string { return c.dir }

// procs returns every process of the cluster.
func (c *Cluster) procs() []*proc.Proc {
	var all []*proc.Proc
	for _, nn := range c.nats {
		if nn.proc != nil {
			all = append(all, nn.proc)
		}
	}
	for _, group := range [][]*node{c.writers, c.replicas, c.gateways} {
		for _, n := range group {
			all = append(all, n.proc)
		}
	}
	return all
}

// Crashes lists every time a process exited without being killed.
func (c *Cluster) Crashes() []string {
	var out []string
	for _, p := range c.procs() {
		out = append(out, p.Crashes()...)
	}
	return out
}

// Close stops every process and proxy.
func (c *Cluster) Close() {
	if c.admin != nil {
		c.admin.Close()
	}
	all := c.procs()
	// Clients first, servers last.
	for i := len(all) - 1; i >= 0; i-- {
		_ = all[i].Close()
	}
	for _, p := range c.proxies {
		_ = p.Close()
	}
}
