package gateway

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// recorder is the gateway's Writer and Reader in fuzz tests: it accepts
// whatever reaches it and remembers that something did.
type recorder struct{ writes, reads int }

func (r *recorder) Write(_ context.Context, req api.WriteRequest) (api.WriteResult, error) {
	r.writes++
	if err := api.ValidateKey(req.Key); err != nil {
		panic("gateway passed an invalid key to the writer: " + err.Error())
	}
	return api.WriteResult{Key: req.Key, Revision: 1, Token: api.NewToken("ab", 1)}, nil
}

func (r *recorder) Get(_ context.Context, req api.GetRequest) (api.GetResult, error) {
	r.reads++
	return api.GetResult{Record: api.Record{Key: req.Key, Value: []byte("v"), Revision: 1}, Token: api.NewToken("ab", 1)}, nil
}

func (r *recorder) Scan(_ context.Context, req api.ScanRequest) (api.ScanResult, error) {
	r.reads++
	if req.Limit < 1 || req.Limit > api.MaxScanLimit {
		panic("gateway passed a bad limit")
	}
	return api.ScanResult{Token: api.NewToken("ab", 1)}, nil
}

// FuzzHTTPRequest sends arbitrary methods, paths, headers and bodies to the
// gateway: it never panics, answers every request, and a request it rejects
// (4xx) never reaches the writer.
func FuzzHTTPRequest(f *testing.F) {
	f.Add("PUT", "/v1/kv/a", "1.ab.1", "", "2s", "", "value")
	f.Add("GET", "/v1/kv?prefix=a&limit=3&after=b", "", "1.ab.2", "", "", "")
	f.Add("DELETE", "/v1/kv/a%2Fb", "garbage", "", "", `"4"`, "")
	f.Add("PUT", "/v1/kv/../x", "", "", "-1s", "*", "x")
	f.Fuzz(func(t *testing.T, method, path, tok, cookie, wait, ifMatch, body string) {
		rec := &recorder{}
		g := New(Config{Writer: rec, Reader: rec, MaxValueBytes: 64})
		req, err := http.NewRequest("GET", "http://x/", strings.NewReader(body))
		if err != nil {
			t.Skip()
		}
		req.Method = method
		req.URL.RawPath, req.URL.Path = "", path
		if i := strings.IndexByte(path, '?'); i >= 0 {
			req.URL.Path, req.URL.RawQuery = path[:i], path[i+1:]
		}
		req.Header.Set(api.HeaderToken, tok)
		req.Header.Set(api.HeaderWait, wait)
		req.Header.Set("If-Match", ifMatch)
		if cookie != "" {
			req.Header.Set("Cookie", "tidemark_token="+cookie)
		}
		w := httptest.NewRecorder()
		g.Handler().ServeHTTP(w, req)
		if w.Code == 0 {
			t.Fatal("no status")
		}
		if w.Code >= 400 && w.Code < 500 && rec.writes > 0 {
			t.Fatalf("%s %s answered %d after writing", method, path, w.Code)
		}
	})
}
