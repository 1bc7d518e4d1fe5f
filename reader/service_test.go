package reader_test

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/reader"
)

// runService runs a reader service for f until the test ends or stop is
// called; stop returns Run's error.
func runService(t *testing.T, f *fixture, ready func(context.Context) error) (stop func() error) {
	t.Helper()
	svc := reader.NewService(f.env.Conn.Conn, wire.Subjects{}, f.r, testLogger(t))
	svc.Ready = ready
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case err = <-done:
			case <-time.After(testTimeout):
				t.Fatal("service Run did not return")
			}
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func request(t *testing.T, nc *nats.Conn, m *nats.Msg) *nats.Msg {
	t.Helper()
	reply, err := nc.RequestMsg(m, testTimeout)
	if err != nil {
		t.Fatalf("request %s: %v", m.Subject, err)
	}
	return reply
}

// waitServing waits until subject answers a get of key with something other
// than "no responders".
func waitServing(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	testenv.Eventually(t, testTimeout, subject+" to answer", func() bool {
		reply, err := nc.RequestMsg(wire.GetMsg(subject, api.GetRequest{Key: "probe"}), time.Second)
		if err != nil {
			return false
		}
		_, err = wire.DecodeGetReply("probe", reply)
		return !errors.Is(err, api.ErrUnavailable)
	})
}

func TestServiceEndToEnd(t *testing.T) {
	f := setup(t)
	subjects := wire.Subjects{}
	stop := runService(t, f, f.repl.WaitReady)
	nc := f.env.Conn.Conn
	waitServing(t, nc, subjects.Get())

	f.put(t, "a", "1")
	tok := f.put(t, "b", "2")
	delTok := f.write(t, "a", nil)

	for _, subject := range []string{subjects.Get(), subjects.ReplicaGet("r1")} {
		res, err := wire.DecodeGetReply("b", request(t, nc, wire.GetMsg(subject, api.GetRequest{Key: "b", ReadSpec: api.ReadSpec{Token: tok}})))
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		if got, want := string(res.Record.Value), "2"; got != want {
			t.Fatalf("%s: Value=%q, want %q", subject, got, want)
		}
		if got, want := res.Record.Revision, tok.Seq; got != want {
			t.Fatalf("%s: Revision=%d, want %d", subject, got, want)
		}
		if res.Token.Seq < tok.Seq || res.Token.Stream != tok.Stream {
			t.Fatalf("%s: Token=%v, behind %v", subject, res.Token, tok)
		}
		if got, want := res.Replica, "r1"; got != want {
			t.Fatalf("%s: Replica=%q, want %q", subject, got, want)
		}
	}

	// A deleted key: not found, with the delete's revision and the token.
	res, err := wire.DecodeGetReply("a", request(t, nc, wire.GetMsg(subjects.Get(), api.GetRequest{Key: "a", ReadSpec: api.ReadSpec{Token: delTok}})))
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("get deleted=%v, want ErrNotFound", err)
	}
	if got, want := res.Record.Revision, delTok.Seq; got != want || !res.Record.Deleted {
		t.Fatalf("get deleted Record=%+v, want deleted at %d", res.Record, want)
	}
	if got, want := res.Token, delTok; got != want {
		t.Fatalf("get deleted Token=%v, want %v", got, want)
	}

	// Scan, shared and per replica.
	for _, subject := range []string{subjects.Scan(), subjects.ReplicaScan("r1")} {
		sres, err := wire.DecodeScanReply(request(t, nc, wire.ScanMsg(subject, api.ScanRequest{Limit: 10, ReadSpec: api.ReadSpec{Token: delTok}})))
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		if len(sres.Items) != 1 || sres.Items[0].Key != "b" || string(sres.Items[0].Value) != "2" {
			t.Fatalf("%s: Items=%+v, want [b=2]", subject, sres.Items)
		}
		if sres.Token.Seq < delTok.Seq {
			t.Fatalf("%s: Token=%v, behind %v", subject, sres.Token, delTok)
		}
	}

	// Bad requests are answered with their error.
	bad := nats.NewMsg(subjects.Get()) // no key
	if _, err := wire.DecodeGetReply("", request(t, nc, bad)); !errors.Is(err, api.ErrInvalidKey) {
		t.Fatalf("get without a key=%v, want ErrInvalidKey", err)
	}
	badScan := wire.ScanMsg(subjects.Scan(), api.ScanRequest{})
	badScan.Data = []byte("{")
	if _, err := wire.DecodeScanReply(request(t, nc, badScan)); !errors.Is(err, api.ErrInvalidRequest) {
		t.Fatalf("scan with a bad body=%v, want ErrInvalidRequest", err)
	}
	future := f.env.Stream.Token(delTok.Seq + 100)
	start := time.Now()
	if _, err := wire.DecodeGetReply("b", request(t, nc, wire.GetMsg(subjects.Get(), api.GetRequest{Key: "b", ReadSpec: api.ReadSpec{Token: future, Wait: 5 * time.Second}}))); !errors.Is(err, api.ErrTokenFromFuture) {
		t.Fatalf("get with a future token=%v, want ErrTokenFromFuture", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("future token took %v, want well under its 5s wait", el)
	}

	// The wait bound crosses the wire.
	f.repl.Pause()
	ahead := f.put(t, "b", "3")
	if res, err := wire.DecodeGetReply("b", request(t, nc, wire.GetMsg(subjects.Get(), api.GetRequest{Key: "b", ReadSpec: api.ReadSpec{Token: ahead, Wait: 100 * time.Millisecond}}))); !errors.Is(err, api.ErrTokenWaitTimeout) || len(res.Record.Value) != 0 {
		t.Fatalf("get while paused=%q, %v; want ErrTokenWaitTimeout and no value", res.Record.Value, err)
	}
	f.repl.Resume()

	// Discovery: the service describes itself and its endpoints.
	info := serviceInfo(t, nc)
	if got, want := info.Metadata["replica"], "r1"; got != want {
		t.Fatalf("metadata replica=%q, want %q", got, want)
	}
	var names []string
	for _, e := range info.Endpoints {
		names = append(names, e.Name+"@"+e.Subject+"/"+e.QueueGroup)
	}
	slices.Sort(names)
	want := []string{
		"get@" + subjects.Get() + "/" + reader.QueueGroup,
		"replica_get@" + subjects.ReplicaGet("r1") + "/",
		"replica_scan@" + subjects.ReplicaScan("r1") + "/",
		"replica_watch@" + subjects.ReplicaWatch("r1") + "/",
		"scan@" + subjects.Scan() + "/" + reader.QueueGroup,
		"watch@" + subjects.Watch() + "/" + reader.QueueGroup,
	}
	if !slices.Equal(names, want) {
		t.Fatalf("endpoints=%v, want %v", names, want)
	}

	if err := stop(); err != nil {
		t.Fatalf("Run=%v", err)
	}
	if _, err := nc.RequestMsg(wire.GetMsg(subjects.ReplicaGet("r1"), api.GetRequest{Key: "b"}), testTimeout); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("get after stop=%v, want no responders", err)
	}
}

func serviceInfo(t *testing.T, nc *nats.Conn) micro.Info {
	t.Helper()
	subject, err := micro.ControlSubject(micro.InfoVerb, reader.ServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	reply, err := nc.Request(subject, nil, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(reply.Data, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// TestServiceJoinsWhenReady checks that a replica answers its own subjects
// at once but takes shared reads only once it is ready.
func TestServiceJoinsWhenReady(t *testing.T) {
	f := setup(t)
	subjects := wire.Subjects{}
	ready := make(chan struct{})
	runService(t, f, func(ctx context.Context) error {
		select {
		case <-ready:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	nc := f.env.Conn.Conn
	waitServing(t, nc, subjects.ReplicaGet("r1"))
	if _, err := nc.RequestMsg(wire.GetMsg(subjects.Get(), api.GetRequest{Key: "k"}), testTimeout); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("shared get before ready=%v, want no responders", err)
	}
	close(ready)
	waitServing(t, nc, subjects.Get())
}

// TestServiceStopAnswersWaiting checks that stopping the service answers a
// read that is waiting for its token at once, with ErrUnavailable.
func TestServiceStopAnswersWaiting(t *testing.T) {
	f := setup(t)
	subjects := wire.Subjects{}
	stop := runService(t, f, nil)
	nc := f.env.Conn.Conn
	waitServing(t, nc, subjects.ReplicaGet("r1"))

	f.repl.Pause()
	tok := f.put(t, "a", "1")
	const wait = 10 * time.Second
	before := endpointRequests(t, nc, "replica_get")
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	m := wire.GetMsg(subjects.ReplicaGet("r1"), api.GetRequest{Key: "a", ReadSpec: api.ReadSpec{Token: tok, Wait: wait}})
	m.Reply = inbox
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	// The request is in flight once micro has handed it to the pool.
	testenv.Eventually(t, testTimeout, "the request to be in flight", func() bool {
		return endpointRequests(t, nc, "replica_get") > before
	})
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run=%v", err)
	}
	reply, err := sub.NextMsg(testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wire.DecodeGetReply("a", reply); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("reply=%v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > wait/5 {
		t.Fatalf("stop took %v, want well under the %v wait", el, wait)
	}
}

func TestServiceRejectsBadReplicaID(t *testing.T) {
	env := testenv.Start(t)
	r := reader.New(reader.Config{Replica: "a.b", Stream: env.Stream})
	if err := reader.NewService(env.Conn.Conn, wire.Subjects{}, r, testLogger(t)).Run(context.Background()); err == nil {
		t.Fatal("Run with a dotted replica id succeeded")
	}
}

// endpointRequests returns how many requests the service's endpoint name
// has taken, from the micro STATS verb.
func endpointRequests(t *testing.T, nc *nats.Conn, name string) int {
	t.Helper()
	subject, err := micro.ControlSubject(micro.StatsVerb, reader.ServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	reply, err := nc.Request(subject, nil, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var st micro.Stats
	if err := json.Unmarshal(reply.Data, &st); err != nil {
		t.Fatal(err)
	}
	for _, e := range st.Endpoints {
		if e.Name == name {
			return e.NumRequests
		}
	}
	t.Fatalf("no endpoint %s in %+v", name, st)
	return 0
}
