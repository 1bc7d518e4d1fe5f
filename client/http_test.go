package client_test

import (
	"github.com/tidemark/tidemark/api"

	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/stacktest"
)

func TestHTTP_Keys(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	ctx := tctx(t, 30*time.Second)
	h := client.NewHTTP(s.URL + "/") // a trailing slash is fine
	sess := client.New(h).NewSession()
	for _, key := range []string{"plain", "a/b", "a/../b", ".", "..", "100%", "sp ace", "q?x=1#f", "ключ", "+&="} {
		if _, err := sess.Put(ctx, key, []byte("v:"+key)); err != nil {
			t.Fatalf("Put %q: %v", key, err)
		}
		// Read it back over NATS: the key the gateway stored is the key sent.
		got, err := client.New(s.Transport).Get(client.WithSession(ctx, sess), key)
		if err != nil {
			t.Fatalf("Get %q over NATS: %v", key, err)
		}
		if want := "v:" + key; string(got.Record.Value) != want {
			t.Fatalf("Get %q=%q, want %q", key, got.Record.Value, want)
		}
		got, err = sess.Get(ctx, key)
		if err != nil || string(got.Record.Value) != "v:"+key {
			t.Fatalf("Get %q over HTTP=%q, %v", key, got.Record.Value, err)
		}
	}
}

func TestHTTP_ServedBy(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	ctx := tctx(t, 30*time.Second)
	sess := client.New(client.NewHTTP(s.URL)).NewSession()
	w, err := sess.Put(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r1", "r2"} {
		got, err := sess.Get(ctx, "k", client.WithReplica(id))
		if err != nil {
			t.Fatalf("Get from %s: %v", id, err)
		}
		if got.Replica != id || got.Applied < w.Revision {
			t.Fatalf("Get from %s: Replica=%q Applied=%d, want %s and at least %d", id, got.Replica, got.Applied, id, w.Revision)
		}
	}
}

func TestHTTP_Unreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	h := client.NewHTTP("http://" + addr)
	ctx := tctx(t, 10*time.Second)
	if _, err := h.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: "k"}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("Write: err=%v, want %v", err, api.ErrUnavailable)
	}
	if _, err := h.Get(ctx, api.GetRequest{Key: "k"}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("Get: err=%v, want %v", err, api.ErrUnavailable)
	}
	if _, err := h.Scan(ctx, api.ScanRequest{}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("Scan: err=%v, want %v", err, api.ErrUnavailable)
	}
}

func TestHTTP_BadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x", "http://", "http://x/?a=b", "http://[::1"} {
		h := client.NewHTTP(u)
		if _, err := h.Get(tctx(t, time.Second), api.GetRequest{Key: "k"}); !errors.Is(err, api.ErrInvalidRequest) {
			t.Fatalf("NewHTTP(%q).Get: err=%v, want %v", u, err, api.ErrInvalidRequest)
		}
	}
}

// TestHTTP_Replies covers replies no gateway of ours sends: a proxy's error
// page, garbage, a hung server.
func TestHTTP_Replies(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		test := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
		if r.URL.Path == "/v1/kv" {
			test = r.URL.Query().Get("prefix")
		}
		switch test {
		case "502":
			http.Error(w, "bad gateway", http.StatusBadGateway)
		case "404":
			http.NotFound(w, r)
		case "garbage":
			_, _ = io.WriteString(w, "{not json")
		case "bad-token":
			w.Header().Set(api.HeaderToken, "garbage")
			_, _ = io.WriteString(w, `{"key":"k","revision":1}`)
		case "big":
			_, _ = io.WriteString(w, strings.Repeat("x", 2048))
		case "hang":
			<-block
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) }) // first: Close waits for the hung handler
	h := client.NewHTTP(srv.URL)
	h.MaxResponseBytes = 1024
	for _, tc := range []struct {
		test string
		want error
	}{
		{"502", api.ErrUnavailable},
		{"404", api.ErrInvalidRequest},
		{"garbage", api.ErrInternal},
		{"bad-token", api.ErrInternal},
		{"big", api.ErrInternal},
	} {
		t.Run(tc.test, func(t *testing.T) {
			ctx := tctx(t, 10*time.Second)
			_, err := h.Write(ctx, api.WriteRequest{Op: api.OpPut, Key: tc.test, Value: []byte("v")})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Write: err=%v, want %v", err, tc.want)
			}
			if tc.test == "garbage" || tc.test == "bad-token" {
				return
			}
			if _, err := h.Scan(ctx, api.ScanRequest{Prefix: tc.test}); !errors.Is(err, tc.want) {
				t.Fatalf("Scan: err=%v, want %v", err, tc.want)
			}
		})
	}
	t.Run("hang", func(t *testing.T) {
		h.ReadMargin = 50 * time.Millisecond
		_, err := h.Get(t.Context(), api.GetRequest{Key: "hang", ReadSpec: api.ReadSpec{Wait: 50 * time.Millisecond}})
		if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "in time") {
			t.Fatalf("Get of a hung server: err=%v, want %v in time", err, api.ErrUnavailable)
		}
	})
}

// TestHTTP_SignedTokens runs a session against a gateway that signs its
// tokens: the transport sends back the signed form it received.
func TestHTTP_SignedTokens(t *testing.T) {
	signer, err := api.NewSigner([]byte("0123456789abcdef-key"))
	if err != nil {
		t.Fatal(err)
	}
	s := stacktest.Start(t, stacktest.Options{Replicas: 1, Signer: signer})
	ctx := tctx(t, 30*time.Second)
	sess := client.New(client.NewHTTP(s.URL)).NewSession()
	w, err := sess.Put(ctx, "signed", []byte("v"))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := sess.Put(ctx, "signed", []byte("w"), client.IfRevision(w.Revision)); err != nil {
		t.Fatalf("Put with the signed token: %v", err)
	}
	got, err := sess.Get(ctx, "signed")
	if err != nil || string(got.Record.Value) != "w" {
		t.Fatalf("Get=%q, %v; want w", got.Record.Value, err)
	}
	if page, err := sess.Scan(ctx, "sig"); err != nil || len(page.Items) != 1 {
		t.Fatalf("Scan=%+v, %v", page, err)
	}
	// A token the gateway did not sign is refused.
	forged, err := client.ResumeSession(client.New(client.NewHTTP(s.URL)), sess.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := forged.Get(ctx, "signed"); !errors.Is(err, api.ErrInvalidToken) {
		t.Fatalf("Get with an unsigned token: err=%v, want %v", err, api.ErrInvalidToken)
	}
}
