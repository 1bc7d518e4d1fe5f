package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"encoding/json"
	"net/http"
	"testing"

	"github.com/tidemark/tidemark/internal/stacktest"
)

// tokenCookie is the session token cookie a response sets, or "".
func tokenCookie(r reply) string {
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == "tidemark_token" {
			return c.Value
		}
	}
	return ""
}

// TestHeadAnswersAsGetWithoutBody checks that HEAD carries the headers a
// GET does (token header and cookie, revision, ETag, length), with no
// body, for a key that exists and one that does not; and that a scan's
// body carries the token its header and cookie do.
func TestHeadAnswersAsGetWithoutBody(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	w := put(t, s, "h", "value")
	get := do(t, "GET", s.URL+"/v1/kv/h", "", api.HeaderToken, w.Token)
	head := do(t, "HEAD", s.URL+"/v1/kv/h", "", api.HeaderToken, w.Token)
	if get.Status != 200 || head.Status != 200 || get.Body != "value" || head.Body != "" {
		t.Fatalf("GET %d %q, HEAD %d %q", get.Status, get.Body, head.Status, head.Body)
	}
	for _, name := range []string{api.HeaderToken, api.HeaderRevision, "ETag", "Content-Length", "Content-Type", "Cache-Control", api.HeaderReplica} {
		if g, h := get.Header.Get(name), head.Header.Get(name); g == "" || g != h {
			t.Fatalf("%s: GET %q, HEAD %q", name, g, h)
		}
	}
	if c := tokenCookie(head); c == "" || c != head.Header.Get(api.HeaderToken) {
		t.Fatalf("HEAD cookie %q, header %q", c, head.Header.Get(api.HeaderToken))
	}

	missing := do(t, "HEAD", s.URL+"/v1/kv/none", "", api.HeaderToken, w.Token)
	if missing.Status != 404 || missing.Header.Get(api.HeaderToken) == "" || tokenCookie(missing) == "" {
		t.Fatalf("HEAD of a missing key: status=%d token=%q cookie=%q", missing.Status, missing.Header.Get(api.HeaderToken), tokenCookie(missing))
	}

	scan := do(t, "GET", s.URL+"/v1/kv?prefix=h", "", api.HeaderToken, w.Token)
	var page api.ScanJSON
	if err := json.Unmarshal([]byte(scan.Body), &page); err != nil {
		t.Fatalf("scan body %q: %v", scan.Body, err)
	}
	if tok := scan.Header.Get(api.HeaderToken); scan.Status != 200 || page.Token == "" || page.Token != tok || tokenCookie(scan) != tok {
		t.Fatalf("scan: status=%d body token %q, header %q, cookie %q", scan.Status, page.Token, tok, tokenCookie(scan))
	}
}
