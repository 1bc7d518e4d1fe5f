package client_test

import (
	"github.com/tidemark/tidemark/api"

	"errors"
	"testing"
	"time"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
)

// WithTTL over both transports: the key reads until it expires, then 404
// with a token that covers the expiry; If-Match on it is 412 and
// If-None-Match recreates it; a later put without a TTL clears it; bad
// TTLs and a TTL on a delete are refused and store nothing.
func TestWithTTL(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	for _, tr := range transports(s) {
		t.Run(tr.name, func(t *testing.T) {
			c := client.New(tr.t)
			sess := c.NewSession()
			ctx := tctx(t, 60*time.Second)
			key, kept := "ttl/"+tr.name, "ttl-kept/"+tr.name

			put, err := sess.Put(ctx, key, []byte("v1"), client.WithTTL(time.Second))
			if err != nil {
				t.Fatalf("Put with TTL: %v", err)
			}
			if _, err := sess.Put(ctx, kept, []byte("v1"), client.WithTTL(time.Second)); err != nil {
				t.Fatalf("Put with TTL: %v", err)
			}
			cleared, err := sess.Put(ctx, kept, []byte("v2"))
			if err != nil {
				t.Fatalf("Put without TTL: %v", err)
			}
			if got, err := sess.Get(ctx, key); err != nil || string(got.Record.Value) != "v1" {
				t.Fatalf("Get before expiry=%+v, %v; want v1", got.Record, err)
			}
			// The session reads until a replica has expired the key: its
			// 404's token then makes every later read of the session wait
			// for a replica that has expired it too (a read without the
			// session may still find a replica that has not).
			testenv.Eventually(t, 20*time.Second, "the key to expire", func() bool {
				_, err := sess.Get(ctx, key)
				return errors.Is(err, api.ErrNotFound)
			})
			got, err := sess.Get(ctx, key)
			if !errors.Is(err, api.ErrNotFound) || got.Record.Revision <= put.Revision || got.Token.Seq < got.Record.Revision || sess.Token().Seq < got.Record.Revision {
				t.Fatalf("Get after expiry=%+v (token %v, session %v), %v; want not found with a token covering the expiry", got.Record, got.Token, sess.Token(), err)
			}
			if got, err := sess.Get(ctx, kept); err != nil || string(got.Record.Value) != "v2" || got.Record.Revision != cleared.Revision {
				t.Fatalf("Get of the key put again without TTL=%+v, %v; want v2 at %d", got.Record, err, cleared.Revision)
			}

			if _, err := sess.Put(ctx, key, []byte("v2"), client.IfRevision(put.Revision)); !errors.Is(err, api.ErrRevisionMismatch) {
				t.Fatalf("If-Match on an expired key: %v, want revision_mismatch", err)
			}
			again, err := sess.Put(ctx, key, []byte("v3"), client.IfAbsent(), client.WithTTL(time.Hour))
			if err != nil {
				t.Fatalf("If-None-Match on an expired key: %v", err)
			}
			if _, err := sess.Put(ctx, key, []byte("v4"), client.IfAbsent()); !errors.Is(err, api.ErrRevisionMismatch) {
				t.Fatalf("If-None-Match on a live TTL key: %v, want revision_mismatch", err)
			}
			if got, err := sess.Get(ctx, key); err != nil || string(got.Record.Value) != "v3" || got.Record.Revision != again.Revision {
				t.Fatalf("Get of the recreated key=%+v, %v; want v3 at %d", got.Record, err, again.Revision)
			}

			bad := "ttl-bad/" + tr.name
			for _, d := range []time.Duration{500 * time.Millisecond, -time.Second, api.MaxTTL + time.Second} {
				if _, err := sess.Put(ctx, bad, []byte("v"), client.WithTTL(d)); !errors.Is(err, api.ErrInvalidRequest) {
					t.Errorf("Put with TTL %v: %v, want invalid_request", d, err)
				}
			}
			if _, err := sess.Delete(ctx, key, client.WithTTL(time.Minute)); !errors.Is(err, api.ErrInvalidRequest) {
				t.Errorf("Delete with a TTL: %v, want invalid_request", err)
			}
			if got, err := sess.Get(ctx, bad); !errors.Is(err, api.ErrNotFound) || got.Record.Revision != 0 {
				t.Fatalf("Get of the key of refused writes=%+v, %v; want never written", got.Record, err)
			}
			if got, err := sess.Get(ctx, key); err != nil || string(got.Record.Value) != "v3" {
				t.Fatalf("the refused delete changed the key: %+v, %v", got.Record, err)
			}
		})
	}
}
