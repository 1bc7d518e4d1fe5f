package client_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/wire"
)

// TestSessionWatch: a session's watch starts at its token, so its initial
// state has the session's own write although the replica serving the
// watch was paused when it was made; the session's token moves with the
// events; a resume point older than every replica's window ends the watch
// with api.ErrResumePointCompacted.
func TestSessionWatch(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2, WatchWindow: 3})
	c := client.New(s.Transport)
	sess := c.NewSession()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r2 := s.Replica(t, "r2").Replicator()
	r2.Pause()
	w, err := sess.Put(ctx, "doc/1", []byte("draft"))
	if err != nil {
		t.Fatal(err)
	}
	r2.Resume() // the watch below starts on r2 at the token: never before r2 has the put
	var got []api.Event
	for ev, err := range sess.Watch(ctx, "doc/", client.WatchReplica("r2"), client.WatchProgress(50*time.Millisecond)) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
		if ev.Type == api.EventSynced {
			break
		}
	}
	if len(got) != 2 || got[0].Type != api.EventPut || got[0].Key != "doc/1" || string(got[0].Value) != "draft" || got[0].Revision != w.Revision || got[0].ID != 0 {
		t.Fatalf("watch events %+v, want the session's put then synced", got)
	}
	if got[1].ID < w.Revision || sess.Token().Seq < got[1].ID {
		t.Fatalf("synced at %d, session token %v, want both at least %d", got[1].ID, sess.Token(), w.Revision)
	}

	for range 5 {
		if _, err := sess.Put(ctx, "other", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for _, err := range sess.Watch(ctx, "doc/", client.WatchAfter(w.Revision)) {
		if !errors.Is(err, api.ErrResumePointCompacted) {
			t.Fatalf("resume behind every window: %v, want %v", err, api.ErrResumePointCompacted)
		}
		break
	}
}

// TestHTTPWatch: Watch over the gateway's SSE endpoint gives the session's
// own write in the initial state, then the changes after it, with their
// ids and values, and merges their tokens; a resume point behind every
// window ends it with api.ErrResumePointCompacted (the gateway's 410).
func TestHTTPWatch(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2, WatchWindow: 3, WatchProgress: 100 * time.Millisecond})
	c := client.New(client.NewHTTP(s.URL))
	sess := c.NewSession()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := sess.Put(ctx, "doc/1", []byte("draft"))
	if err != nil {
		t.Fatal(err)
	}
	var got []api.Event
	var later api.WriteResult
	for ev, err := range sess.Watch(ctx, "doc/", client.WatchProgress(100*time.Millisecond)) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == api.EventProgress {
			continue
		}
		got = append(got, ev)
		if ev.Type == api.EventSynced {
			if later, err = sess.Put(ctx, "doc/2", []byte("final")); err != nil {
				t.Fatal(err)
			}
		}
		if ev.ID == later.Revision && later.Revision != 0 {
			break
		}
	}
	if len(got) != 3 || got[0].Key != "doc/1" || got[0].ID != 0 || got[0].Revision != first.Revision || got[1].Type != api.EventSynced ||
		got[2].Type != api.EventPut || got[2].Key != "doc/2" || string(got[2].Value) != "final" || got[2].ID != later.Revision {
		t.Fatalf("watch events %+v, want doc/1, synced, doc/2", got)
	}
	if sess.Token().Seq < later.Revision {
		t.Fatalf("session token %v, want at least %d", sess.Token(), later.Revision)
	}
	for range 5 {
		if _, err := sess.Put(ctx, "other", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for _, err := range sess.Watch(ctx, "doc/", client.WatchAfter(first.Revision)) {
		if !errors.Is(err, api.ErrResumePointCompacted) {
			t.Fatalf("resume behind every window: %v, want %v", err, api.ErrResumePointCompacted)
		}
		break
	}
}

// TestWatchResumesFromSilentReplica: a replica that starts a watch and
// then sends nothing (it died without a word) is given up after three
// progress intervals, and the watch asks again, resuming after the last
// id it got. The replica here is a NATS responder speaking the protocol.
func TestWatchResumesFromSilentReplica(t *testing.T) {
	env := testenv.Start(t)
	nc := env.Conn.Conn
	subjects := wire.Subjects{}
	requests := make(chan api.WatchRequest, 10)
	sub, err := nc.Subscribe(subjects.ReplicaWatch("silent"), func(m *nats.Msg) {
		req, deliver, err := wire.DecodeWatchRequest(m.Header, m.Data)
		if err != nil {
			t.Errorf("watch request: %v", err)
			return
		}
		requests <- req
		h, body := wire.EncodeWatchReply("silent", nc.NewInbox(), api.Token{}, nil)
		_ = m.RespondMsg(&nats.Msg{Subject: m.Reply, Header: h, Data: body})
		if !req.Resume {
			_ = nc.PublishMsg(wire.EventMsg(deliver, 1, api.Event{Type: api.EventSynced, ID: 5, Token: env.Stream.Token(5)}))
		}
		// then nothing, ever
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	c := client.New(client.NewNATS(nc, subjects))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		for range c.Watch(ctx, "p/", client.WatchReplica("silent"), client.WatchProgress(50*time.Millisecond)) {
		}
	}()
	first := <-requests
	if first.Resume {
		t.Fatalf("first request %+v, want the initial state", first)
	}
	select {
	case again := <-requests:
		if !again.Resume || again.After != 5 || again.Prefix != "p/" {
			t.Fatalf("request after the silence %+v, want a resume after 5", again)
		}
	case <-ctx.Done():
		t.Fatal("the watch did not give up the silent replica")
	}
}

// TestHTTPWatchSignedTokens: with a gateway that signs its tokens, a
// session's watch over HTTP starts with the session's signed token and
// keeps the signed tokens of its events, so that the session's next read
// is accepted and sees the watched write.
func TestHTTPWatchSignedTokens(t *testing.T) {
	signer, err := api.NewSigner([]byte("watch-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	s := stacktest.Start(t, stacktest.Options{Replicas: 2, Signer: signer, WatchProgress: 100 * time.Millisecond})
	c := client.New(client.NewHTTP(s.URL))
	sess := c.NewSession()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := sess.Put(ctx, "sig/1", []byte("a")); err != nil {
		t.Fatal(err)
	}
	// Another client writes the change the watch then sees: only the
	// watch hands this transport the signed token of its revision.
	other := client.New(client.NewHTTP(s.URL)).NewSession()
	var seen uint64
	for ev, err := range sess.Watch(ctx, "sig/") {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == api.EventSynced {
			w, err := other.Put(ctx, "sig/2", []byte("b"))
			if err != nil {
				t.Fatal(err)
			}
			seen = w.Revision
		}
		if seen != 0 && ev.ID == seen {
			break
		}
	}
	got, err := sess.Get(ctx, "sig/2")
	if err != nil || string(got.Record.Value) != "b" {
		t.Fatalf("read after the watch: %+v %v, want b", got, err)
	}
}
