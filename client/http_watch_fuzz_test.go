package client

import (
	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/wire"

	"errors"
	"testing"

	"github.com/nats-io/nats.go"
)

// FuzzSSEChangeID: any SSE event of a resumed watch, once sseChangeID has
// named a change without an id by its revision, decodes or fails with
// ErrInternal; a change it named is its revision's, with More, and keeps
// its transaction mark.
func FuzzSSEChangeID(f *testing.F) {
	f.Add("put", "", `{"key":"a","revision":5,"value":"dg==","txn":{"revision":7,"ops":3},"token":"1.ab.5"}`)
	f.Add("delete", "", `{"key":"a","revision":6,"txn":{"revision":6,"ops":0},"token":"1.ab.6"}`)
	f.Add("put", "5", `{"key":"a","revision":5,"value":"dg==","token":"1.ab.5"}`)
	f.Add("progress", "", `{"revision":5,"token":"1.ab.5"}`)
	f.Add("put", "", `{"revision":"x"}`)
	f.Fuzz(func(t *testing.T, typ, id, data string) {
		m := nats.NewMsg("sse")
		m.Header.Set(wire.HeaderEvent, typ)
		m.Header.Set(wire.HeaderEventSeq, "1")
		if id != "" {
			m.Header.Set(wire.HeaderEventID, id)
		}
		m.Data = []byte(data)
		sseChangeID(m)
		named := id == "" && m.Header.Get(wire.HeaderEventID) != ""
		_, ev, err := wire.DecodeEvent(m)
		if err != nil {
			if !errors.Is(err, api.ErrInternal) {
				t.Fatalf("DecodeEvent: %v, want ErrInternal", err)
			}
			return
		}
		if named && (ev.ID != ev.Revision || !ev.More || (ev.Type != api.EventPut && ev.Type != api.EventDelete)) {
			t.Fatalf("named change %+v", ev)
		}
		if !ev.Txn.IsZero() && (ev.ID == 0 || ev.Txn.Ops < 1 || ev.Txn.Revision < ev.Revision) {
			t.Fatalf("bad transaction mark %+v", ev)
		}
	})
}
