package client_test

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// respond answers every request on subject with fn's reply, until the test
// ends; a nil reply answers nothing.
func respond(t *testing.T, nc *nats.Conn, subject string, fn func(*nats.Msg) *nats.Msg) {
	t.Helper()
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if r := fn(m); r != nil {
			if err := m.RespondMsg(r); err != nil {
				t.Errorf("respond: %v", err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error, msg string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err=%v, want %v", err, want)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Fatalf("err=%q, want it to mention %q", err, msg)
	}
}

func TestNATS_Write(t *testing.T) {
	e := testenv.Start(t)
	subjects := wire.Subjects{}
	stacktest.RunWriter(t, e, subjects)
	c := client.NewNATS(e.Conn.Conn, subjects)

	put, err := c.Write(testContext(t), api.WriteRequest{Op: api.OpPut, Key: "k", Value: []byte("v")})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if got, want := put.Key, "k"; got != want {
		t.Fatalf("put: Key=%q, want %q", got, want)
	}
	if got, want := put.Token, e.Stream.Token(put.Revision); got != want || put.Revision == 0 {
		t.Fatalf("put: Token=%v, want %v (Revision %d)", got, want, put.Revision)
	}

	// No deadline on the context: the transport sets one.
	del, err := c.Write(context.Background(), api.WriteRequest{Op: api.OpDelete, Key: "k", Token: put.Token, IfRevision: put.Revision})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if del.Revision <= put.Revision {
		t.Fatalf("delete: Revision=%d, want > %d", del.Revision, put.Revision)
	}

	// The writer's errors come back as the stream sentinels.
	res, err := c.Write(testContext(t), api.WriteRequest{Op: api.OpPut, Key: "k", Value: []byte("v"), Token: del.Token, IfRevision: put.Revision})
	wantErr(t, err, api.ErrRevisionMismatch, "deleted at revision")
	if got, want := res.Token, del.Token; got != want {
		t.Fatalf("failed write: Token=%v, want %v", got, want)
	}
	if got, want := res.Key, "k"; got != want {
		t.Fatalf("failed write: Key=%q, want %q", got, want)
	}
	_, err = c.Write(testContext(t), api.WriteRequest{Op: api.OpPut, Key: ""})
	wantErr(t, err, api.ErrInvalidKey, "empty")
	_, err = c.Write(testContext(t), api.WriteRequest{Op: "merge", Key: "k"})
	wantErr(t, err, api.ErrInvalidRequest, "merge")
}

func TestNATS_NoResponders(t *testing.T) {
	e := testenv.Start(t)
	c := client.NewNATS(e.Conn.Conn, wire.Subjects{})

	_, err := c.Write(testContext(t), api.WriteRequest{Op: api.OpPut, Key: "k"})
	wantErr(t, err, api.ErrUnavailable, "no writer")
	res, err := c.Get(testContext(t), api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Token: e.Stream.Token(1)}})
	wantErr(t, err, api.ErrUnavailable, "no replica")
	if got, want := res.Token, e.Stream.Token(1); got != want {
		t.Fatalf("Get: Token=%v, want the request's %v", got, want)
	}
	// A named replica no one serves is unknown, not worth retrying.
	_, err = c.Get(testContext(t), api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Replica: "r1"}})
	wantErr(t, err, api.ErrUnknownReplica, "replica.r1.get")
	_, err = c.Get(testContext(t), api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Replica: "r1", Forward: true}})
	wantErr(t, err, api.ErrUnknownReplica, "replica.r1.get")
	_, err = c.Scan(testContext(t), api.ScanRequest{Prefix: "k"})
	wantErr(t, err, api.ErrUnavailable, "no replica")
	_, err = c.Scan(testContext(t), api.ScanRequest{ReadSpec: api.ReadSpec{Replica: "r1"}})
	wantErr(t, err, api.ErrUnknownReplica, "replica.r1.scan")
}

func TestNATS_Timeout(t *testing.T) {
	e := testenv.Start(t)
	subjects := wire.Subjects{}
	// A replica that receives reads and never answers.
	respond(t, e.Conn.Conn, subjects.Get(), func(*nats.Msg) *nats.Msg { return nil })
	c := client.NewNATS(e.Conn.Conn, subjects)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Get(ctx, api.GetRequest{Key: "k"})
	wantErr(t, err, api.ErrUnavailable, "no reply")

	// Without a deadline, the read's wait and the margin bound it.
	c.ReadMargin = 50 * time.Millisecond
	start := time.Now()
	_, err = c.Get(context.Background(), api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Wait: 50 * time.Millisecond}})
	wantErr(t, err, api.ErrUnavailable, "no reply")
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("Get took %v, want about 100ms", elapsed)
	}

	// A caller that gives up gets its own error back.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := c.Get(ctx, api.GetRequest{Key: "k"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err=%v, want %v", err, context.Canceled)
	}
}

func TestNATS_Read(t *testing.T) {
	e := testenv.Start(t)
	subjects := wire.Subjects{Prefix: "test"}
	tok := e.Stream.Token(7)
	// Stand-in replicas that speak the protocol with stream's encoders.
	respond(t, e.Conn.Conn, subjects.Get(), func(m *nats.Msg) *nats.Msg {
		req, err := wire.DecodeGetRequest(m.Header)
		if err != nil {
			t.Errorf("DecodeGetRequest: %v", err)
			return nil
		}
		var h nats.Header
		var body []byte
		switch req.Key {
		case "missing":
			h, body = wire.EncodeGetReply(api.GetResult{Token: req.Token, Record: api.Record{Revision: 5}, ServedBy: api.ServedBy{Replica: "any"}}, api.Errorf(api.ErrNotFound, "key %q not found", req.Key))
		case "slow":
			h, body = wire.EncodeGetReply(api.GetResult{Token: req.Token}, api.Errorf(api.ErrTokenWaitTimeout, "replica any did not reach the token in %v", req.Wait))
		default:
			h, body = wire.EncodeGetReply(api.GetResult{Token: tok, Record: api.Record{Key: req.Key, Value: []byte("v:" + req.Key), Revision: 6}, ServedBy: api.ServedBy{Replica: "any", Applied: 7}}, nil)
		}
		return &nats.Msg{Header: h, Data: body}
	})
	respond(t, e.Conn.Conn, subjects.ReplicaGet("r2"), func(m *nats.Msg) *nats.Msg {
		h, body := wire.EncodeGetReply(api.GetResult{Token: tok, Record: api.Record{Value: []byte("from r2"), Revision: 6}, ServedBy: api.ServedBy{Replica: "r2", Applied: 7}}, nil)
		return &nats.Msg{Header: h, Data: body}
	})
	respond(t, e.Conn.Conn, subjects.Scan(), func(m *nats.Msg) *nats.Msg {
		req, err := wire.DecodeScanRequest(m.Header, m.Data)
		if err != nil {
			t.Errorf("DecodeScanRequest: %v", err)
			return nil
		}
		items := []api.Record{{Key: req.Prefix + "1", Value: []byte("a"), Revision: 3}, {Key: req.Prefix + "2", Value: []byte("b"), Revision: 4}}
		h, body := wire.EncodeScanReply(api.ScanResult{Items: items[:req.Limit], Next: items[req.Limit-1].Key, Token: tok, ServedBy: api.ServedBy{Replica: "any", Applied: 7}}, nil)
		return &nats.Msg{Header: h, Data: body}
	})
	c := client.NewNATS(e.Conn.Conn, subjects)

	got, err := c.Get(testContext(t), api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Token: e.Stream.Token(3), Wait: time.Second}})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Record.Key != "k" || string(got.Record.Value) != "v:k" || got.Record.Revision != 6 || got.Token != tok || got.Replica != "any" {
		t.Fatalf("Get=%+v", got)
	}
	got, err = c.Get(testContext(t), api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Replica: "r2"}})
	if err != nil {
		t.Fatalf("Get from r2: %v", err)
	}
	if got, want := string(got.Record.Value), "from r2"; got != want {
		t.Fatalf("Get from r2: Value=%q, want %q", got, want)
	}

	miss, err := c.Get(testContext(t), api.GetRequest{Key: "missing", ReadSpec: api.ReadSpec{Token: tok}})
	wantErr(t, err, api.ErrNotFound, "missing")
	if !miss.Record.Deleted || miss.Record.Revision != 5 || miss.Token != tok {
		t.Fatalf("Get missing=%+v, want a delete at revision 5 and the token", miss)
	}
	_, err = c.Get(testContext(t), api.GetRequest{Key: "slow", ReadSpec: api.ReadSpec{Wait: 10 * time.Millisecond}})
	wantErr(t, err, api.ErrTokenWaitTimeout, "did not reach")

	page, err := c.Scan(testContext(t), api.ScanRequest{Prefix: "p/", Limit: 1})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if len(page.Items) != 1 || page.Items[0].Key != "p/1" || page.Next != "p/1" || page.Token != tok {
		t.Fatalf("Scan=%+v", page)
	}

	_, err = c.Get(testContext(t), api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Replica: "r.*"}})
	wantErr(t, err, api.ErrInvalidRequest, "replica")
}

func TestNATS_ConnectionClosed(t *testing.T) {
	e := testenv.Start(t)
	nc := testenv.Connect(t, e.Server.ClientURL())
	c := client.NewNATS(nc.Conn, wire.Subjects{})
	nc.Close()
	_, err := c.Write(testContext(t), api.WriteRequest{Op: api.OpPut, Key: "k"})
	wantErr(t, err, api.ErrUnavailable, "closed")
	_, err = c.Get(testContext(t), api.GetRequest{Key: "k"})
	wantErr(t, err, api.ErrUnavailable, "closed")
}

// TestNATS_ForwardSilentReplica pins reads with Forward to a replica that
// receives them and never answers, as a paused process does: the read goes
// on to another replica with the rest of the wait, within the caller's
// deadline; when none answers, it is a token wait timeout, not unavailable.
func TestNATS_ForwardSilentReplica(t *testing.T) {
	e := testenv.Start(t)
	subjects := wire.Subjects{Prefix: "test"}
	tok := e.Stream.Token(7)
	respond(t, e.Conn.Conn, subjects.ReplicaGet("r1"), func(*nats.Msg) *nats.Msg { return nil })
	respond(t, e.Conn.Conn, subjects.Get(), func(m *nats.Msg) *nats.Msg {
		h, body := wire.EncodeGetReply(api.GetResult{Token: tok, Record: api.Record{Value: []byte("from r2"), Revision: 6}, ServedBy: api.ServedBy{Replica: "r2", Applied: 7}}, nil)
		return &nats.Msg{Header: h, Data: body}
	})
	c := client.NewNATS(e.Conn.Conn, subjects)
	c.ReadMargin = 100 * time.Millisecond
	const wait = 400 * time.Millisecond
	// As the gateway calls it: a deadline of the wait and a margin.
	ctx, cancel := context.WithTimeout(context.Background(), wait+time.Second)
	defer cancel()
	got, err := c.Get(ctx, api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Token: tok, Replica: "r1", Wait: wait, Forward: true}})
	if err != nil || got.Replica != "r2" || string(got.Record.Value) != "from r2" {
		t.Fatalf("forwarded read pinned to the silent r1: %+v, %v; want the value from r2", got, err)
	}

	silent := wire.Subjects{Prefix: "silent"}
	respond(t, e.Conn.Conn, silent.ReplicaGet("r1"), func(*nats.Msg) *nats.Msg { return nil })
	respond(t, e.Conn.Conn, silent.Get(), func(*nats.Msg) *nats.Msg { return nil })
	c = client.NewNATS(e.Conn.Conn, silent)
	c.ReadMargin = 100 * time.Millisecond
	_, err = c.Get(context.Background(), api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Token: tok, Replica: "r1", Wait: wait, Forward: true}})
	wantErr(t, err, api.ErrTokenWaitTimeout, "no replica answered")
}
