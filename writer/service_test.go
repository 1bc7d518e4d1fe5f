package writer_test

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
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/writer"
)

func request(t *testing.T, nc *nats.Conn, m *nats.Msg) (api.WriteResult, error) {
	t.Helper()
	reply, err := nc.RequestMsg(m, 10*time.Second)
	if err != nil {
		t.Fatalf("request on %s: %v", m.Subject, err)
	}
	return wire.DecodeWriteReply(reply)
}

func TestService(t *testing.T) {
	e := testenv.Start(t)
	subjects := wire.Subjects{}
	stacktest.RunWriter(t, e, subjects)
	nc := e.Conn.Conn

	res, err := request(t, nc, wire.WriteMsg(subjects.Put(), put("k", "v1")))
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if got, want := res.Key, "k"; got != want {
		t.Fatalf("put: Key=%q, want %q", got, want)
	}
	if got, want := res.Token, e.Stream.Token(res.Revision); got != want || res.Revision == 0 {
		t.Fatalf("put: Token=%v, want %v (Revision=%d)", got, want, res.Revision)
	}
	if got, want := string(getMsg(t, e, res.Revision).Data), "v1"; got != want {
		t.Fatalf("stored value=%q, want %q", got, want)
	}

	// The token travels both ways; the write id deduplicates.
	req := put("k", "v2")
	req.Token, req.WriteID = res.Token, "w-2"
	res2, err := request(t, nc, wire.WriteMsg(subjects.Put(), req))
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if res2.Revision <= res.Revision {
		t.Fatalf("put: Revision=%d, want > %d", res2.Revision, res.Revision)
	}
	again, err := request(t, nc, wire.WriteMsg(subjects.Put(), req))
	if err != nil {
		t.Fatalf("retried put: %v", err)
	}
	if got, want := again.Revision, res2.Revision; got != want {
		t.Fatalf("retried put: Revision=%d, want %d", got, want)
	}

	// Errors cross the hop and still match.
	req = put("k", "v3")
	req.IfRevision, req.Token = res.Revision, res2.Token
	failed, err := request(t, nc, wire.WriteMsg(subjects.Put(), req))
	if !errors.Is(err, api.ErrRevisionMismatch) {
		t.Fatalf("stale If-Match: err=%v, want %v", err, api.ErrRevisionMismatch)
	}
	if got, want := failed.Token, res2.Token; got != want {
		t.Fatalf("stale If-Match: Token=%v, want the request's %v", got, want)
	}
	bad := nats.NewMsg(subjects.Put()) // no key
	if _, err := request(t, nc, bad); !errors.Is(err, api.ErrInvalidKey) {
		t.Fatalf("no key: err=%v, want %v", err, api.ErrInvalidKey)
	}
	bad = wire.WriteMsg(subjects.Put(), put("k", "v"))
	bad.Header.Set(api.HeaderToken, "garbage")
	if _, err := request(t, nc, bad); !errors.Is(err, api.ErrInvalidToken) {
		t.Fatalf("bad token: err=%v, want %v", err, api.ErrInvalidToken)
	}
	future := put("k", "v")
	future.Token = e.Stream.Token(1000)
	if _, err := request(t, nc, wire.WriteMsg(subjects.Put(), future)); !errors.Is(err, api.ErrTokenFromFuture) {
		t.Fatalf("future token: err=%v, want %v", err, api.ErrTokenFromFuture)
	}

	d := del("k")
	d.Token = res2.Token
	res3, err := request(t, nc, wire.WriteMsg(subjects.Delete(), d))
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if res3.Revision <= res2.Revision {
		t.Fatalf("delete: Revision=%d, want > %d", res3.Revision, res2.Revision)
	}
	if got, want := getMsg(t, e, res3.Revision).Header.Get(api.HeaderOp), string(api.OpDelete); got != want {
		t.Fatalf("delete: op header=%q, want %q", got, want)
	}
	withBody := wire.WriteMsg(subjects.Delete(), del("k"))
	withBody.Data = []byte("x")
	if _, err := request(t, nc, withBody); !errors.Is(err, api.ErrInvalidRequest) {
		t.Fatalf("delete with body: err=%v, want %v", err, api.ErrInvalidRequest)
	}
}

func TestService_Info(t *testing.T) {
	e := testenv.Start(t)
	subjects := wire.Subjects{Prefix: "test"}
	stacktest.RunWriter(t, e, subjects)

	subj, err := micro.ControlSubject(micro.InfoVerb, writer.ServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	reply, err := e.Conn.Request(subj, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(reply.Data, &info); err != nil {
		t.Fatal(err)
	}
	if got, want := info.Version, writer.Version; got != want {
		t.Fatalf("Version=%q, want %q", got, want)
	}
	if got, want := info.Metadata["stream_id"], e.Stream.ID(); got != want {
		t.Fatalf("Metadata[stream_id]=%q, want %q", got, want)
	}
	var got []string
	for _, ep := range info.Endpoints {
		got = append(got, ep.Name+" "+ep.Subject+" "+ep.QueueGroup)
	}
	slices.Sort(got)
	want := []string{"delete test.v1.delete tidemark-writer", "put test.v1.put tidemark-writer", "txn test.v1.txn tidemark-writer"}
	if !slices.Equal(got, want) {
		t.Fatalf("Endpoints=%q, want %q", got, want)
	}
}

func TestService_Stop(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		subjects := wire.Subjects{}
		svc := writer.NewService(e.Conn.Conn, subjects, newWriter(e, writer.Config{}), zerolog.Nop())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		testenv.Eventually(t, 10*time.Second, "writer service to answer", func() bool {
			_, err := e.Conn.RequestMsg(wire.WriteMsg(subjects.Put(), put("k", "v")), time.Second)
			return err == nil
		})

		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
		if _, err := e.Conn.RequestMsg(wire.WriteMsg(subjects.Put(), put("k", "v")), time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("request after stop: err=%v, want %v", err, nats.ErrNoResponders)
		}
	})
}

func TestService_ConnectionClosed(t *testing.T) {
	inModes(t, func(t *testing.T, newWriter newWriterFunc) {
		e := testenv.Start(t)
		nc := testenv.Connect(t, e.Server.ClientURL())
		svc := writer.NewService(nc.Conn, wire.Subjects{}, newWriter(e, writer.Config{}), zerolog.Nop())
		done := make(chan error, 1)
		go func() { done <- svc.Run(context.Background()) }()
		ping, _ := micro.ControlSubject(micro.PingVerb, writer.ServiceName, "")
		testenv.Eventually(t, 10*time.Second, "writer service to answer PING", func() bool {
			_, err := e.Conn.Request(ping, nil, time.Second)
			return err == nil
		})
		nc.Close()
		select {
		case err := <-done:
			if !errors.Is(err, nats.ErrConnectionClosed) {
				t.Fatalf("Run: err=%v, want %v", err, nats.ErrConnectionClosed)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its connection closed")
		}
	})
}
