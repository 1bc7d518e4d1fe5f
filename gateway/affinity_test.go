package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
)

func replicaCookie(r reply) string {
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == "tidemark_replica" {
			return c.Value
		}
	}
	return ""
}

// TestAffinityAloneLosesReadYourWrites compares the two approaches of the
// design. With sticky sessions alone (no token), a session pinned to a
// replica sees its writes only while that replica lives and keeps up: when
// it is lost, the session lands on another replica that is behind and reads
// the past. With the token, the same read waits and sees the write.
func TestAffinityAloneLosesReadYourWrites(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2, Affinity: true, NoRouter: true})
	put(t, s, "profile", "old")
	for _, id := range []string{"r1", "r2"} {
		testenv.Eventually(t, 10*time.Second, id+" to apply", func() bool { return s.Replica(t, id).Applied() >= 1 })
	}
	// The session's first read pins it to a replica; pin it to r1.
	first := do(t, "GET", s.URL+"/v1/kv/profile", "", api.HeaderReplica, "r1")
	if first.Status != 200 {
		t.Fatalf("first read: %d", first.Status)
	}
	pinned := "r1"
	// Subsequent reads stay on the pinned replica.
	r := do(t, "GET", s.URL+"/v1/kv/profile", "", "Cookie:tidemark_replica", pinned)
	if got := r.Header.Get(api.HeaderReplica); got != pinned {
		t.Fatalf("sticky read served by %s, want %s", got, pinned)
	}

	// r2 falls behind; the session writes; its pinned replica r1 has it.
	s.Replica(t, "r2").Replicator().Pause()
	defer s.Replica(t, "r2").Replicator().Resume()
	w := put(t, s, "profile", "new")
	testenv.Eventually(t, 10*time.Second, "r1 to apply", func() bool { return s.Replica(t, "r1").Applied() >= w.Revision })
	if r := do(t, "GET", s.URL+"/v1/kv/profile", "", "Cookie:tidemark_replica", pinned); r.Body != "new" {
		t.Fatalf("sticky read before the loss: %q, want new", r.Body)
	}

	// The pinned replica is lost. Affinity moves the session to r2, which
	// is behind: without the token, the session reads the past.
	s.StopReplica(t, "r1")
	r = do(t, "GET", s.URL+"/v1/kv/profile", "", "Cookie:tidemark_replica", pinned)
	if r.Status != 200 || r.Body != "old" {
		t.Fatalf("affinity alone after losing the pinned replica: status=%d body=%q, want 200 old (read-your-writes lost)", r.Status, r.Body)
	}
	if got := replicaCookie(r); got != "r2" {
		t.Fatalf("session re-pinned to %q, want r2", got)
	}
	// With the token, the same read waits for r2 to catch up.
	time.AfterFunc(100*time.Millisecond, s.Replica(t, "r2").Replicator().Resume)
	r = do(t, "GET", s.URL+"/v1/kv/profile", "", "Cookie:tidemark_replica", "r2", "Cookie:tidemark_token", w.Token)
	if r.Status != 200 || r.Body != "new" {
		t.Fatalf("affinity with token: status=%d body=%q, want 200 new", r.Status, r.Body)
	}
}

// TestSignedTokens: with signing keys, the gateway hands out signed tokens
// and rejects forged or altered ones; keys rotate.
func TestSignedTokens(t *testing.T) {
	signer, err := api.NewSigner([]byte("first-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	s := stacktest.Start(t, stacktest.Options{Replicas: 1, Signer: signer})
	w := put(t, s, "k", "v")
	if !strings.HasPrefix(w.Token, s.Stream.Token(w.Revision).String()+".") {
		t.Fatalf("token %q is not signed", w.Token)
	}
	if r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderToken, w.Token); r.Status != 200 || r.Header.Get(api.HeaderToken) != w.Token {
		t.Fatalf("signed token read: status=%d token=%q", r.Status, r.Header.Get(api.HeaderToken))
	}
	forged := []string{
		s.Stream.Token(w.Revision).String(),                                // unsigned
		strings.Replace(w.Token, "."+itoa(w.Revision)+".", ".1000000.", 1), // altered sequence
		w.Token[:len(w.Token)-2] + "xx",                                    // altered signature
	}
	for _, f := range forged {
		r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderToken, f)
		if r.Status != 400 || errorCode(t, r) != api.CodeInvalidToken {
			t.Fatalf("forged token %q: status=%d body=%s, want 400 invalid_token", f, r.Status, r.Body)
		}
	}
}
