package gateway

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"iter"
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

// watchRecorder is a Watcher that checks what reaches it and answers with
// one synced event.
type watchRecorder struct{ watches int }

func (r *watchRecorder) Watch(_ context.Context, req api.WatchRequest) iter.Seq2[api.Event, error] {
	r.watches++
	if err := req.Validate(); err != nil {
		panic("gateway passed an invalid watch request: " + err.Error())
	}
	return func(yield func(api.Event, error) bool) {
		yield(api.Event{Type: api.EventSynced, ID: 1, Token: api.NewToken("ab", 1)}, nil)
	}
}

// FuzzWatchRequest sends arbitrary queries, Last-Event-ID, token and wait
// headers to GET /v1/watch: it never panics, a request it rejects (4xx)
// never reaches the watcher, and one it accepts is an event stream.
func FuzzWatchRequest(f *testing.F) {
	f.Add("prefix=a/&after=3", "", "1.ab.1", "2s", "")
	f.Add("prefix=%ff", "x", "", "", "r1")
	f.Add("after=-1", "18446744073709551616", "garbage", "-1s", "a.b")
	f.Fuzz(func(t *testing.T, query, lastID, tok, wait, replica string) {
		rec := &watchRecorder{}
		g := New(Config{Reader: &recorder{}, Watcher: rec})
		req, err := http.NewRequest("GET", "http://x/v1/watch", nil)
		if err != nil {
			t.Skip()
		}
		req.URL.RawQuery = query
		req.Header.Set(HeaderLastEventID, lastID)
		req.Header.Set(api.HeaderToken, tok)
		req.Header.Set(api.HeaderWait, wait)
		req.Header.Set(api.HeaderReplica, replica)
		w := httptest.NewRecorder()
		g.Handler().ServeHTTP(w, req)
		switch {
		case w.Code >= 400 && w.Code < 500 && rec.watches > 0:
			t.Fatalf("?%s answered %d after watching", query, w.Code)
		case w.Code == 200 && (w.Header().Get("Content-Type") != "text/event-stream" || !strings.Contains(w.Body.String(), "event: synced\n")):
			t.Fatalf("?%s: 200 with %q %q", query, w.Header().Get("Content-Type"), w.Body.String())
		case w.Code != 200 && w.Code < 400:
			t.Fatalf("?%s: status %d", query, w.Code)
		}
	})
}
