package client_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"testing"
	"time"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
)

// TestWatchTxn: over NATS and over HTTP, a session's transaction comes to
// its watch as consecutive events, each with Txn set to the transaction's
// revision and op count and its op's revision as ID, More on all but the
// last; the single put after it is not marked.
func TestWatchTxn(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2, WatchProgress: 100 * time.Millisecond})
	for _, tt := range []struct {
		name      string
		transport client.Transport
	}{{"nats", s.Transport}, {"http", client.NewHTTP(s.URL)}} {
		t.Run(tt.name, func(t *testing.T) {
			prefix := tt.name + "/"
			sess := client.New(tt.transport).NewSession()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := sess.Put(ctx, prefix+"b", []byte("old")); err != nil {
				t.Fatal(err)
			}
			var res api.TxnResult
			var after api.WriteResult
			var got []api.Event
			for ev, err := range sess.Watch(ctx, prefix, client.WatchProgress(100*time.Millisecond)) {
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case ev.Type == api.EventSynced:
					if res, err = sess.Txn(ctx, client.TxnPut(prefix+"a", []byte("1")), client.TxnDelete(prefix+"b"),
						client.TxnPut(prefix+"c", []byte("3"))); err != nil {
						t.Fatal(err)
					}
					if after, err = sess.Put(ctx, prefix+"d", []byte("4")); err != nil {
						t.Fatal(err)
					}
				case ev.ID != 0 && (ev.Type == api.EventPut || ev.Type == api.EventDelete):
					got = append(got, ev)
				}
				if after.Revision != 0 && ev.ID == after.Revision {
					break
				}
			}
			mark := api.TxnMark{Revision: res.Revision, Ops: 3}
			want := []api.Event{
				{Type: api.EventPut, Key: prefix + "a", ID: res.Ops[0].Revision, Txn: mark, More: true},
				{Type: api.EventDelete, Key: prefix + "b", ID: res.Ops[1].Revision, Txn: mark, More: true},
				{Type: api.EventPut, Key: prefix + "c", ID: res.Ops[2].Revision, Txn: mark},
				{Type: api.EventPut, Key: prefix + "d", ID: after.Revision},
			}
			if len(got) != len(want) {
				t.Fatalf("changes %+v, want %+v", got, want)
			}
			for i, w := range want {
				g := got[i]
				if g.Type != w.Type || g.Key != w.Key || g.ID != w.ID || g.Revision != w.ID || g.Txn != w.Txn || g.More != w.More {
					t.Fatalf("change %d %+v, want %+v", i, g, w)
				}
			}
		})
	}
}
