package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/stacktest"
)

type reply = stacktest.Response

func do(t *testing.T, method, url, body string, hdr ...string) reply {
	t.Helper()
	return stacktest.Do(t, method, url, body, hdr...)
}

func put(t *testing.T, s *stacktest.Stack, key, value string, hdr ...string) api.WriteJSON {
	t.Helper()
	r := do(t, "PUT", s.URL+"/v1/kv/"+key, value, hdr...)
	if r.Status != 200 {
		t.Fatalf("PUT %s: status=%d body=%s", key, r.Status, r.Body)
	}
	var w api.WriteJSON
	if err := json.Unmarshal([]byte(r.Body), &w); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Header.Get(api.HeaderToken), w.Token; got != want {
		t.Fatalf("token header=%q, body token %q", got, want)
	}
	return w
}

func errorCode(t *testing.T, r reply) string {
	t.Helper()
	var e api.ErrorJSON
	if err := json.Unmarshal([]byte(r.Body), &e); err != nil {
		t.Fatalf("error body %q: %v", r.Body, err)
	}
	return e.Error.Code
}

// TestReadYourWritesAcrossReplicas holds replica r2 back: a read without the
// token that lands on it returns the old value, and the same read with the
// token waits until r2 has applied the write and returns it.
func TestReadYourWritesAcrossReplicas(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2})
	w1 := put(t, s, "profile", "old")
	for _, id := range []string{"r1", "r2"} {
		if r := do(t, "GET", s.URL+"/v1/kv/profile", "", api.HeaderToken, w1.Token, api.HeaderReplica, id); r.Body != "old" {
			t.Fatalf("%s: %q", id, r.Body)
		}
	}
	lag := s.Replica(t, "r2").Replicator()
	lag.Pause()
	w2 := put(t, s, "profile", "new")

	// Without the token, the lagging replica serves the old value.
	r := do(t, "GET", s.URL+"/v1/kv/profile", "", api.HeaderReplica, "r2")
	if got, want := r.Body, "old"; got != want {
		t.Fatalf("tokenless read on lagging replica=%q, want %q (the test must show staleness)", got, want)
	}
	// The up-to-date replica has it already.
	r = do(t, "GET", s.URL+"/v1/kv/profile", "", api.HeaderToken, w2.Token, api.HeaderReplica, "r1")
	if got, want := r.Body, "new"; got != want {
		t.Fatalf("token read on r1=%q, want %q", got, want)
	}
	// With the token, the lagging replica waits and then serves the write.
	resumed := make(chan time.Time, 1)
	time.AfterFunc(150*time.Millisecond, func() { resumed <- time.Now(); lag.Resume() })
	r = do(t, "GET", s.URL+"/v1/kv/profile", "", api.HeaderToken, w2.Token, api.HeaderReplica, "r2")
	done := time.Now()
	if r.Status != 200 || r.Body != "new" {
		t.Fatalf("token read on lagging replica: status=%d body=%q, want 200 new", r.Status, r.Body)
	}
	if done.Before(<-resumed) {
		t.Fatal("token read returned before the lagging replica was resumed")
	}
	if got, want := r.Header.Get(api.HeaderReplica), "r2"; got != want {
		t.Fatalf("served by %s, want %s", got, want)
	}
	if d, err := time.ParseDuration(r.Header.Get(api.HeaderWaited)); err != nil || d <= 0 {
		t.Fatalf("Tidemark-Waited=%q, want > 0", r.Header.Get(api.HeaderWaited))
	}
	if got, want := r.Header.Get(api.HeaderToken), w2.Token; got != want {
		t.Fatalf("reply token=%s, want %s", got, want)
	}
}

// TestTokenWaitTimeout: a replica that cannot catch up in time answers 504
// and never the stale value.
func TestTokenWaitTimeout(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	put(t, s, "k", "stale")
	s.Replicas[0].Replicator().Pause()
	defer s.Replicas[0].Replicator().Resume()
	w := put(t, s, "k", "fresh")
	r := do(t, "GET", s.URL+"/v1/kv/k", "", api.HeaderToken, w.Token, api.HeaderWait, "200ms")
	if got, want := r.Status, http.StatusGatewayTimeout; got != want {
		t.Fatalf("status=%d, want %d (body %s)", got, want, r.Body)
	}
	if got, want := errorCode(t, r), api.CodeTokenWaitTimeout; got != want {
		t.Fatalf("code=%s, want %s", got, want)
	}
	if strings.Contains(r.Body, "stale") {
		t.Fatalf("timeout body carries stale data: %s", r.Body)
	}
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("504 without Retry-After")
	}
	if got, want := r.Header.Get(api.HeaderToken), w.Token; got != want {
		t.Fatalf("504 token=%q, want the request's %q", got, want)
	}
	// Scans too.
	r = do(t, "GET", s.URL+"/v1/kv?prefix=k", "", api.HeaderToken, w.Token, api.HeaderWait, "100ms")
	if got, want := r.Status, http.StatusGatewayTimeout; got != want {
		t.Fatalf("scan status=%d, want %d", got, want)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1, MaxValueBytes: 1024})
	w := put(t, s, "seed", "v")
	ctx := context.Background()
	last, err := s.Stream.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ahead := s.Stream.Token(w.Revision + 1000).String()
	foreign := api.NewToken("0123456789ab", 1).String()
	long := strings.Repeat("k", api.MaxKeyLen+1)
	for _, tt := range []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
	}{
		{"malformed token", "PUT", "/v1/kv/a", "v", []string{api.HeaderToken, "nope"}, 400, api.CodeInvalidToken},
		{"malformed token read", "GET", "/v1/kv/a", "", []string{api.HeaderToken, "1.ab"}, 400, api.CodeInvalidToken},
		{"malformed cookie", "GET", "/v1/kv/a", "", []string{"Cookie", "x.y.z"}, 400, api.CodeInvalidToken},
		{"foreign token write", "PUT", "/v1/kv/a", "v", []string{api.HeaderToken, foreign}, 400, api.CodeTokenStreamMismatch},
		{"foreign token read", "GET", "/v1/kv/seed", "", []string{api.HeaderToken, foreign}, 400, api.CodeTokenStreamMismatch},
		{"future token write", "PUT", "/v1/kv/a", "v", []string{api.HeaderToken, ahead}, 400, api.CodeTokenFromFuture},
		{"future token read", "GET", "/v1/kv/seed", "", []string{api.HeaderToken, ahead}, 400, api.CodeTokenFromFuture},
		{"future token cookie", "GET", "/v1/kv/seed", "", []string{"Cookie", ahead}, 400, api.CodeTokenFromFuture},
		{"empty key", "PUT", "/v1/kv/", "v", nil, 400, api.CodeInvalidKey},
		{"long key", "PUT", "/v1/kv/" + long, "v", nil, 400, api.CodeInvalidKey},
		{"invalid utf-8 key", "PUT", "/v1/kv/a%FFb", "v", nil, 400, api.CodeInvalidKey},
		{"value too large", "PUT", "/v1/kv/a", strings.Repeat("x", 1025), nil, 413, api.CodeValueTooLarge},
		{"bad if-match", "PUT", "/v1/kv/a", "v", []string{"If-Match", "W/\"x\""}, 400, api.CodeInvalidRequest},
		{"bad if-none-match", "PUT", "/v1/kv/a", "v", []string{"If-None-Match", `"3"`}, 400, api.CodeInvalidRequest},
		{"bad wait", "GET", "/v1/kv/seed", "", []string{api.HeaderWait, "soon"}, 400, api.CodeInvalidRequest},
		{"bad limit", "GET", "/v1/kv?limit=x", "", nil, 400, api.CodeInvalidRequest},
		{"limit too big", "GET", "/v1/kv?limit=100000", "", nil, 400, api.CodeInvalidRequest},
		{"limit zero", "GET", "/v1/kv?limit=0", "", nil, 400, api.CodeInvalidRequest},
		{"limit negative", "GET", "/v1/kv?limit=-1", "", nil, 400, api.CodeInvalidRequest},
		{"long write id", "PUT", "/v1/kv/a", "v", []string{"Idempotency-Key", strings.Repeat("i", 200)}, 400, api.CodeInvalidRequest},
		{"bad method", "POST", "/v1/kv/a", "v", nil, 405, api.CodeInvalidRequest},
		{"unknown path", "GET", "/v2/kv/a", "", nil, 404, api.CodeInvalidRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, tt.method, s.URL+tt.path, tt.body, tt.hdr...)
			if r.Status != tt.status {
				t.Fatalf("status=%d, want %d (body %s)", r.Status, tt.status, r.Body)
			}
			if got := errorCode(t, r); got != tt.code {
				t.Fatalf("code=%s, want %s", got, tt.code)
			}
		})
	}
	after, err := s.Stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := after.State.LastSeq, last; got != want {
		t.Fatalf("stream last sequence=%d after bad requests, want %d: something was written", got, want)
	}
}

func TestRetriedWriteSameRevision(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	a := put(t, s, "order", "1", "Idempotency-Key", "order-1-create")
	b := put(t, s, "order", "1", "Idempotency-Key", "order-1-create")
	if a.Revision != b.Revision {
		t.Fatalf("retried write revisions %d and %d, want equal", a.Revision, b.Revision)
	}
	info, err := s.Stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.State.Msgs, uint64(1); got != want {
		t.Fatalf("stream holds %d messages, want %d", got, want)
	}
	c := put(t, s, "order", "1", api.HeaderWriteID, "order-1-update")
	if c.Revision <= a.Revision {
		t.Fatalf("new write id got revision %d, want > %d", c.Revision, a.Revision)
	}
}

func TestCookieCarriesToken(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	r := do(t, "PUT", s.URL+"/v1/kv/c", "v")
	var cookie string
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == "tidemark_token" {
			cookie = c.Value
			if !c.HttpOnly || c.Path != "/" || c.SameSite != http.SameSiteLaxMode {
				t.Fatalf("cookie attributes %+v", c)
			}
		}
	}
	if cookie == "" || cookie != r.Header.Get(api.HeaderToken) {
		t.Fatalf("cookie %q, header %q", cookie, r.Header.Get(api.HeaderToken))
	}
	// Header and cookie: the later token wins.
	w2 := put(t, s, "c", "v2")
	g := do(t, "GET", s.URL+"/v1/kv/c", "", api.HeaderToken, cookie, "Cookie", w2.Token)
	if got, want := g.Header.Get(api.HeaderToken), w2.Token; got != want || g.Body != "v2" {
		t.Fatalf("token=%s body=%s, want %s v2", got, g.Body, want)
	}
	// A stale cookie of another stream is cleared.
	g = do(t, "GET", s.URL+"/v1/kv/c", "", "Cookie", api.NewToken("0123456789ab", 1).String())
	if g.Status != 400 || !strings.Contains(strings.Join(g.Header.Values("Set-Cookie"), ";"), "Max-Age=0") {
		t.Fatalf("foreign cookie: status=%d set-cookie=%v", g.Status, g.Header.Values("Set-Cookie"))
	}
}

func TestDeleteAndScan(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2})
	var tok string
	for _, k := range []string{"u/1", "u/2", "u/3", "u/4", "u/5", "v/1"} {
		tok = put(t, s, k, "val-"+k, api.HeaderToken, tok).Token
	}
	r := do(t, "DELETE", s.URL+"/v1/kv/u/3", "", api.HeaderToken, tok)
	if r.Status != 200 {
		t.Fatalf("DELETE status=%d", r.Status)
	}
	tok = r.Header.Get(api.HeaderToken)
	delRev := r.Header.Get(api.HeaderRevision)
	g := do(t, "GET", s.URL+"/v1/kv/u%2F3", "", api.HeaderToken, tok)
	if g.Status != 404 || g.Header.Get(api.HeaderRevision) != delRev {
		t.Fatalf("GET deleted: status=%d revision=%q, want 404 %s", g.Status, g.Header.Get(api.HeaderRevision), delRev)
	}
	var keys []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("scan does not end")
		}
		r := do(t, "GET", s.URL+"/v1/kv?prefix=u/&limit=2&after="+after, "", api.HeaderToken, tok)
		if r.Status != 200 {
			t.Fatalf("scan status=%d body=%s", r.Status, r.Body)
		}
		var page api.ScanJSON
		if err := json.Unmarshal([]byte(r.Body), &page); err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			if string(it.Value) != "val-"+it.Key {
				t.Fatalf("item %s value %q", it.Key, it.Value)
			}
			keys = append(keys, it.Key)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if got, want := strings.Join(keys, ","), "u/1,u/2,u/4,u/5"; got != want {
		t.Fatalf("scan keys=%s, want %s", got, want)
	}
}

func TestConditionalWrites(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	a := put(t, s, "doc", "v1", "If-None-Match", "*")
	r := do(t, "PUT", s.URL+"/v1/kv/doc", "again", "If-None-Match", "*")
	if r.Status != http.StatusPreconditionFailed || errorCode(t, r) != api.CodeRevisionMismatch {
		t.Fatalf("second create: status=%d body=%s", r.Status, r.Body)
	}
	b := put(t, s, "doc", "v2", "If-Match", `"`+itoa(a.Revision)+`"`)
	r = do(t, "PUT", s.URL+"/v1/kv/doc", "v3", "If-Match", `"`+itoa(a.Revision)+`"`)
	if r.Status != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match: status=%d body=%s", r.Status, r.Body)
	}
	g := do(t, "GET", s.URL+"/v1/kv/doc", "", api.HeaderToken, b.Token)
	if g.Body != "v2" {
		t.Fatalf("value=%q, want v2", g.Body)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := do(t, "GET", s.URL+p, ""); r.Status != 200 {
			t.Fatalf("%s status=%d", p, r.Status)
		}
	}
	put(t, s, "m", "v")
	r := do(t, "GET", s.URL+"/metrics", "")
	if r.Status != 200 || !strings.Contains(r.Body, `tidemark_gateway_requests_total{op="put",status="200"} 1`) {
		t.Fatalf("metrics status=%d body lacks the put counter", r.Status)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
