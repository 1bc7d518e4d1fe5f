package bench

import (
	"github.com/tidemark/tidemark/api"

	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidemark/tidemark/stream"
)

// phases runs the measurements of one run on one env and collects rows.
type phases struct {
	e     *env
	cfg   Config
	value []byte
	rows  []Row

	serviceWriteRate float64 // the writer service's rate, for the RYW loads

	fill     *stream.Stream // the benchmark's own Tidemark stream
	applyDir string         // the apply phase's replica, at the fill stream's end
	distinct int            // distinct keys published to the fill stream
}

func (p *phases) progress(format string, args ...any) {
	fmt.Fprintf(p.cfg.Progress, "  "+format+"\n", args...)
}

func (p *phases) add(r Row) Row {
	p.rows = append(p.rows, r)
	return r
}

// load is the closed-loop load of a phase.
func (p *phases) load() load {
	return load{workers: p.cfg.Concurrency, duration: p.cfg.Duration, ops: p.cfg.Ops}
}

// warm runs fn briefly, unmeasured, so that connections, caches and the
// scheduler are warm when the measured phase starts.
func (p *phases) warm(ctx context.Context, fn op) { p.warmTimed(ctx, p.cfg.Concurrency, timed(fn)) }

// warmTimed is warm with workers callers of a timed operation.
func (p *phases) warmTimed(ctx context.Context, workers int, fn timedOp) {
	d := min(time.Second, max(p.cfg.Duration/10, 100*time.Millisecond))
	closedLoopTimed(ctx, load{workers: workers, duration: d, ops: 20 * workers}, fn)
}

func writeKey(i int) string { return "bench/w/" + strconv.Itoa(i%10000) }
func readKey(i int) string  { return "bench/r/" + strconv.Itoa(i) }

// writes measures writes through each path next to raw JetStream publishes
// of the same message to the same server. Every row's ratio is to raw
// sync publish by the same closed loop of callers; the raw async row,
// another shape, is there to read the others by.
func (p *phases) writes(ctx context.Context) error {
	e := p.e
	// The baselines publish the very messages the writer would, to the same
	// stream, so that the replicas apply them as they apply the writer's:
	// both sides of each ratio run under the same load.
	rawMsg := func(i int) *nats.Msg { return envelope(e.st.Subject(), writeKey(i), p.value) }

	p.progress("writes: raw JetStream async publish")
	async := latencyRow("writes", "raw JetStream async publish", asyncPublish(ctx, e.js, p.load(), p.cfg.Window, rawMsg))
	async.Note = joinNote(async.Note, fmt.Sprintf("one publisher with %d acks outstanding, not %d callers each awaiting its ack: another shape, which no row is compared with", p.cfg.Window, p.cfg.Concurrency))
	p.add(async)

	p.progress("writes: raw JetStream sync publish")
	rawSync := func(ctx context.Context, i int) error {
		_, err := e.js.PublishMsg(ctx, rawMsg(i))
		return err
	}
	p.warm(ctx, rawSync)
	base := latencyRow("writes", "raw JetStream sync publish", closedLoop(ctx, p.load(), rawSync))
	base.Note = joinNote(base.Note, fmt.Sprintf("%d callers, each publishing its next message when the last one's ack arrives: the shape of every row compared with it", p.cfg.Concurrency))
	p.add(base)

	// A fast gateway write can at best be an HTTP exchange that does
	// nothing, measured in this run; a durable one, by gathering
	// concurrent writes into one fsync, twice the per-message publish.
	gateway := goal{minRatio: 0.7, of: httpCeiling}
	if e.durable {
		gateway = goal{minRatio: 2}
	}

	put := func(i int) api.WriteRequest {
		return api.WriteRequest{Op: api.OpPut, Key: writeKey(i), Value: p.value}
	}
	paths := []path{
		{"writer in the benchmark's process", func(ctx context.Context, i int) error { _, err := e.writer.Write(ctx, put(i)); return err }, goal{}},
		{writerService, func(ctx context.Context, i int) error { _, err := e.transport.Write(ctx, put(i)); return err }, goal{minRatio: 0.6}},
	}
	for _, gw := range e.gateways {
		paths = append(paths, path{gw.name, p.httpPutOp(gw.url, p.value), gateway})
	}
	paths = append(paths, path{httpCeiling, p.httpPutOp(e.emptyHTTP, p.value), goal{}})
	for _, r := range p.measure(ctx, "writes", base, paths) {
		if r.Name == writerService {
			p.serviceWriteRate = r.Value
		}
	}
	return nil
}

// measure runs each path as a closed loop after a warm-up and adds its row,
// compared with base; it returns the rows.
func (p *phases) measure(ctx context.Context, section string, base Row, paths []path) []Row {
	rows := make([]Row, 0, len(paths))
	for _, path := range paths {
		p.progress("%s: %s", section, path.name)
		p.warm(ctx, path.fn)
		r := latencyRow(section, path.name, closedLoop(ctx, p.load(), path.fn))
		compare(&r, base)
		r.goal = path.goal
		rows = append(rows, p.add(r))
	}
	return rows
}

// writerService names the writes row whose rate the ryw phase loads a
// fraction of.
const writerService = "writer service over NATS"

// path is one way of doing a phase's operation, measured against the
// phase's baseline.
type path struct {
	name string
	fn   op
	goal goal
}

// httpCeiling names the rows of an HTTP server that does nothing, measured
// with the same client and callers as the gateway rows: no HTTP path can
// beat it on this machine.
const httpCeiling = "HTTP alone: a handler that does nothing (ceiling of any HTTP path)"

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// httpPutOp is the operation of putting value at writeKey(i) through the
// gateway at base, without a session.
func (p *phases) httpPutOp(base string, value []byte) op {
	return func(ctx context.Context, i int) error {
		_, err := p.httpPut(ctx, base, writeKey(i), value, "")
		return err
	}
}

// httpPut writes value at key through a gateway, with the session's token
// (none when empty), and returns the session's token the gateway answered.
func (p *phases) httpPut(ctx context.Context, base, key string, value []byte, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v1/kv/"+url.PathEscape(key), bytes.NewReader(value))
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set(api.HeaderToken, token)
	}
	return p.do(req)
}

// httpGet reads key through a gateway with a token.
func (p *phases) httpGet(ctx context.Context, base, key, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/kv/"+url.PathEscape(key), nil)
	if err != nil {
		return err
	}
	req.Header.Set(api.HeaderToken, token)
	_, err = p.do(req)
	return err
}

// do sends req, reads the response body and returns the response's token.
func (p *phases) do(req *http.Request) (string, error) {
	resp, err := p.e.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s: status %d", req.Method, req.URL.Path, resp.StatusCode)
	}
	return resp.Header.Get(api.HeaderToken), nil
}

// ryw measures read-your-writes: a write through the writer service, then
// at once a read with its token on a replica named in the request, at
// 10%, 50% and 90% of the writer service's maximum rate.
func (p *phases) ryw(ctx context.Context) error {
	e := p.e
	rate := p.serviceWriteRate
	if rate == 0 {
		p.progress("ryw: measuring the writer service's maximum rate")
		fn := func(ctx context.Context, i int) error {
			_, err := e.transport.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: writeKey(i), Value: p.value})
			return err
		}
		p.warm(ctx, fn)
		rate = closedLoop(ctx, p.load(), fn).rate()
	}
	if rate < 10 {
		return fmt.Errorf("the writer service managed %.1f writes/s", rate)
	}
	duration := p.cfg.Duration
	if duration <= 0 {
		duration = DefaultDuration
	}
	for _, frac := range []float64{0.1, 0.5, 0.9} {
		p.progress("ryw: %.0f%% of %.0f writes/s", frac*100, rate)
		waited := &recorder{}
		waits := make(chan time.Duration, 1024)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for w := range waits {
				waited.record(w, nil)
			}
		}()
		s := openLoop(ctx, frac*rate, 4*p.cfg.Concurrency, duration, func(ctx context.Context, i int) (time.Duration, error) {
			key := writeKey(i)
			res, err := e.transport.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: key, Value: p.value})
			if err != nil {
				return 0, err
			}
			start := time.Now()
			g, err := e.transport.Get(ctx, api.GetRequest{Key: key, ReadSpec: api.ReadSpec{Token: res.Token, Replica: e.serviceIDs[i%len(e.serviceIDs)]}})
			d := time.Since(start)
			if err == nil && g.Record.Revision < res.Revision {
				err = fmt.Errorf("read-your-writes violated: wrote revision %d, read %d", res.Revision, g.Record.Revision)
			}
			if err == nil {
				waits <- g.Waited
			}
			return d, err
		})
		close(waits)
		<-done
		r := latencyRow("ryw", fmt.Sprintf("read after write, %.0f%% load: whole read", frac*100), s)
		r.Unit = "writes/s"
		r.Note = joinNote(r.Note, fmt.Sprintf("load %.0f of %.0f writes/s, each write then a token read on replica %s", frac*rate, rate, strings.Join(e.serviceIDs, " or ")))
		p.add(r)
		ws := merge(s.elapsed, []*recorder{waited})
		w := latencyRow("ryw", fmt.Sprintf("read after write, %.0f%% load: token wait", frac*100), ws)
		w.Unit = "reads/s"
		w.Note = "how long the replica held the read until it had applied the write (Tidemark-Waited); the rest of the whole read is the NATS round trip"
		if frac == 0.5 {
			w.goal = goal{maxP99: 2 * time.Millisecond}
		}
		p.add(w)
	}
	p.ackToValue(ctx)
	return nil
}

// rywClients is the number of callers of the ack-to-value rows.
const rywClients = 8

func rywKey(i int) string { return "bench/ryw/" + strconv.Itoa(i) }

// ackToValue measures, through each gateway, how long after a write's ack
// a client that reads its own writes gets the value: rywClients callers,
// each with a session of its own, put a new key, then get it with the
// token the put returned; the row's latencies are the gets'.
func (p *phases) ackToValue(ctx context.Context) {
	bound := time.Millisecond
	if p.e.durable {
		bound = 2 * time.Millisecond
	}
	for _, gw := range p.e.gateways {
		// A caller takes a session from the pool for each operation and
		// puts it back with its new token; with as many sessions as
		// callers, none waits.
		sessions := make(chan string, rywClients)
		for range rywClients {
			sessions <- ""
		}
		fn := func(ctx context.Context, i int) (d time.Duration, err error) {
			token := <-sessions
			defer func() { sessions <- token }()
			key := rywKey(i)
			t, err := p.httpPut(ctx, gw.url, key, p.value, token)
			if err != nil {
				return 0, err
			}
			if t != "" {
				token = t
			}
			start := time.Now()
			err = p.httpGet(ctx, gw.url, key, token) // a new key: a read that misses the write is a 404
			return time.Since(start), err
		}
		name := fmt.Sprintf("ack to value, %d clients: %s", rywClients, gw.name)
		p.progress("ryw: %s", name)
		p.warmTimed(ctx, rywClients, fn)
		r := latencyRow("ryw", name, closedLoopTimed(ctx, load{workers: rywClients, duration: p.cfg.Duration, ops: p.cfg.Ops}, fn))
		r.Unit = "writes/s"
		r.Note = joinNote(r.Note, fmt.Sprintf("%d callers, each a put of a new key with its session's token, then a get of it with the token the put returned; the latencies are the gets': from the write's ack to its value", rywClients))
		r.goal = goal{maxP99: bound}
		p.add(r)
	}
}

// valueSizes are the value sizes of the sizes section; the first is the
// baseline of the others.
var valueSizes = []int{256, 4 << 10, 64 << 10}

// sizes measures writes through the first gateway with values of each of
// valueSizes, whatever the run's value size, each compared with the
// smallest.
func (p *phases) sizes(ctx context.Context) error {
	if len(p.e.gateways) == 0 {
		return fmt.Errorf("no gateway to write to")
	}
	gw := p.e.gateways[0]
	paths := make([]path, 0, len(valueSizes))
	for _, size := range valueSizes {
		g := goal{}
		if size == 4<<10 {
			g = goal{minRatio: 0.6}
		}
		paths = append(paths, path{"gateway writes, " + sizeText(size) + " values", p.httpPutOp(gw.url, value(size)), g})
	}
	base := p.measure(ctx, "sizes", Row{}, paths[:1])[0]
	p.measure(ctx, "sizes", base, paths[1:])
	first := &p.rows[len(p.rows)-len(paths)]
	first.Note = joinNote(first.Note, fmt.Sprintf("this section: %d callers putting values of the size named, whatever the run's value size, through the %s", p.cfg.Concurrency, gw.name))
	return nil
}

// sizeText is a size in bytes as B or KiB.
func sizeText(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return strconv.Itoa(n>>10) + " KiB"
	}
	return strconv.Itoa(n) + " B"
}

// value returns a value of n bytes.
func value(n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}

// reads measures token point reads of the same keys through each path,
// next to NATS KV Get of the same data on the same server.
func (p *phases) reads(ctx context.Context) error {
	e := p.e
	n := p.cfg.Keys
	p.progress("reads: writing %d keys to Tidemark and to a NATS KV bucket", n)
	res := closedLoop(ctx, load{workers: p.cfg.Concurrency, ops: n}, func(ctx context.Context, i int) error {
		_, err := e.transport.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: readKey(i), Value: p.value})
		return err
	})
	if res.errs > 0 {
		return fmt.Errorf("writing the read keys: %w", res.firstErr)
	}
	last, err := e.st.LastSeq(ctx)
	if err != nil {
		return err
	}
	tok := e.st.Token(last)
	token := tok.String()

	_ = e.js.DeleteKeyValue(ctx, kvBucket)
	kv, err := e.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: kvBucket, Storage: jetstream.FileStorage})
	if err != nil {
		return fmt.Errorf("create kv bucket: %w", err)
	}
	res = closedLoop(ctx, load{workers: p.cfg.Concurrency, ops: n}, func(ctx context.Context, i int) error {
		_, err := kv.Put(ctx, kvKey(i), p.value)
		return err
	})
	if res.errs > 0 {
		return fmt.Errorf("writing the kv keys: %w", res.firstErr)
	}

	kvGet := func(ctx context.Context, i int) error {
		_, err := kv.Get(ctx, kvKey(i%n))
		return err
	}
	p.progress("reads: NATS KV Get")
	p.warm(ctx, kvGet)
	base := p.add(latencyRow("reads", "NATS KV Get", closedLoop(ctx, p.load(), kvGet)))

	local := e.replicas[0]
	paths := []path{
		{"in-process replica Get, token", func(ctx context.Context, i int) error {
			_, err := local.Get(ctx, api.GetRequest{Key: readKey(i % n), ReadSpec: api.ReadSpec{Token: tok}})
			return err
		}, goal{minRatio: 20}},
		{"reader service over NATS, token", func(ctx context.Context, i int) error {
			_, err := e.transport.Get(ctx, api.GetRequest{Key: readKey(i % n), ReadSpec: api.ReadSpec{Token: tok}})
			return err
		}, goal{}},
	}
	for _, gw := range e.gateways {
		paths = append(paths, path{gw.name + ", token", func(ctx context.Context, i int) error { return p.httpGet(ctx, gw.url, readKey(i%n), token) }, goal{minRatio: 2}})
	}
	paths = append(paths, path{httpCeiling, func(ctx context.Context, i int) error { return p.httpGet(ctx, e.emptyHTTP, readKey(i%n), token) }, goal{}})
	p.measure(ctx, "reads", base, paths)
	return nil
}

// kvKey is readKey in the characters a KV key allows.
func kvKey(i int) string { return "bench.r." + strconv.Itoa(i) }
