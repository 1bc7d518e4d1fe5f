package replicator_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/stream"
)

// sessionWrite publishes a put of key=value as write seq of session sess.
func sessionWrite(t *testing.T, env *testenv.Env, sess string, seq uint64, key, value string) uint64 {
	t.Helper()
	m := nats.NewMsg(stream.KeySubject(env.Config.Subject, key))
	m.Header.Set(api.HeaderOp, string(api.OpPut))
	api.SetSession(m.Header, sess, seq)
	m.Data = []byte(value)
	ack, err := env.JS.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// TestSessionOrder: a session's write that lands in the stream after a later
// write of the same session is left out, the same way by every replica and
// after a restart; other sessions and writes without a session are not
// affected.
func TestSessionOrder(t *testing.T) {
	env := testenv.Start(t)
	sessionWrite(t, env, "s1", 1, "a", "s1-1")
	sessionWrite(t, env, "s1", 3, "b", "s1-3")
	sessionWrite(t, env, "s1", 2, "b", "s1-2-late")    // late: after 3
	sessionWrite(t, env, "s1", 3, "a", "s1-3-again")   // a replay of 3 with other content
	sessionWrite(t, env, "s2", 1, "b", "s2-1")         // another session: applied
	last := sessionWrite(t, env, "s2", 2, "c", "s2-2") // applied
	publish(t, env, put("d", "no-session"))
	last++

	want := map[string]string{"a": "s1-1", "b": "s2-1", "c": "s2-2", "d": "no-session"}
	dirs := []string{filepath.Join(t.TempDir(), "one"), filepath.Join(t.TempDir(), "two")}
	for _, dir := range dirs {
		r := open(t, env, dir)
		stop := run(t, r)
		waitApplied(t, r, last)
		for k, v := range want {
			rec, _, err := r.Get(k)
			if err != nil || string(rec.Value) != v {
				t.Fatalf("%s: Get(%s)=%q, %v; want %q", dir, k, rec.Value, err, v)
			}
		}
		if got, want := r.Stats().Skipped, uint64(2); got != want {
			t.Fatalf("Skipped=%d, want %d", got, want)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// After a restart the sessions' highest sequences are still known: a
	// late write arriving now is left out too.
	sessionWrite(t, env, "s2", 1, "c", "s2-1-very-late")
	last += 1
	r := open(t, env, dirs[0])
	run(t, r)
	waitApplied(t, r, last)
	rec, _, err := r.Get("c")
	if err != nil || string(rec.Value) != "s2-2" {
		t.Fatalf("after restart Get(c)=%q, %v; want s2-2", rec.Value, err)
	}
	if _, _, err := r.Get("zz"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get(zz)=%v", err)
	}
}
