package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
)

// browser is an HTTP client with a cookie jar, as a browser keeps cookies.
type browser struct {
	t   *testing.T
	c   *http.Client
	url *url.URL
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: stacktest.HTTPClient.Timeout}, url: u}
}

// setCookie puts the session token cookie into the jar, as an earlier
// response (or a tampering user) would have.
func (b *browser) setCookie(value string) {
	b.c.Jar.SetCookies(b.url, []*http.Cookie{{Name: "tidemark_token", Value: value, Path: "/"}})
}

// cookie returns the session token cookie the jar holds, or "".
func (b *browser) cookie() string {
	for _, c := range b.c.Jar.Cookies(b.url) {
		if c.Name == "tidemark_token" {
			return c.Value
		}
	}
	return ""
}

// get sends GET path with header name and value pairs; it returns the status
// and the error code, if any.
func (b *browser) get(path string, hdr ...string) (int, string) {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.url.String()+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	var e api.ErrorJSON
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(body, &e); err != nil {
			b.t.Fatalf("error body %q: %v", body, err)
		}
	}
	return resp.StatusCode, e.Error.Code
}

// TestBadCookieIsCleared sends the session cookie a browser may be left
// with (garbage, another stream's token, a token from the future): the 400
// clears it, so the browser's next request works. A bad header token gets
// its 400 and leaves a good cookie as it is.
func TestBadCookieIsCleared(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	w := put(t, s, "seed", "v")
	// A request whose cookie is cleared carries no token: the replica must
	// have the seed for it to be found.
	testenv.Eventually(t, 10*time.Second, "r1 to apply the seed", func() bool { return s.Replicas[0].Applied() >= w.Revision })
	for _, tt := range []struct {
		name, cookie, code string
	}{
		{"garbage", "x.y.z", api.CodeInvalidToken},
		{"another stream", api.NewToken("0123456789ab", 1).String(), api.CodeTokenStreamMismatch},
		{"from the future", s.Stream.Token(w.Revision + 1000).String(), api.CodeTokenFromFuture},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t, s.URL)
			b.setCookie(tt.cookie)
			if status, code := b.get("/v1/kv/seed"); status != 400 || code != tt.code {
				t.Fatalf("GET with the bad cookie: %d %s, want 400 %s", status, code, tt.code)
			}
			if got := b.cookie(); got != "" {
				t.Fatalf("cookie after the 400=%q, want it cleared", got)
			}
			if status, code := b.get("/v1/kv/seed"); status != 200 {
				t.Fatalf("next GET: %d %s, want 200", status, code)
			}
			if got := b.cookie(); !strings.HasPrefix(got, "1.") {
				t.Fatalf("cookie after the next GET=%q, want a token", got)
			}
		})
	}
	t.Run("bad header token", func(t *testing.T) {
		b := newBrowser(t, s.URL)
		b.setCookie(w.Token)
		for _, tok := range []string{"nope", s.Stream.Token(w.Revision + 1000).String()} {
			if status, _ := b.get("/v1/kv/seed", api.HeaderToken, tok); status != 400 {
				t.Fatalf("GET with header token %q: %d, want 400", tok, status)
			}
			if got := b.cookie(); got != w.Token {
				t.Fatalf("cookie after a bad header token=%q, want the good %q kept", got, w.Token)
			}
		}
	})
	t.Run("garbage cookie with a good header", func(t *testing.T) {
		b := newBrowser(t, s.URL)
		b.setCookie("x.y.z")
		if status, code := b.get("/v1/kv/seed", api.HeaderToken, w.Token); status != 200 {
			t.Fatalf("GET: %d %s, want 200", status, code)
		}
		if got := b.cookie(); got != w.Token {
			t.Fatalf("cookie=%q, want the header's %q", got, w.Token)
		}
	})
}
