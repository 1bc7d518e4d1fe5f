package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/stacktest"
)

// rawReply is a response read off a raw connection.
type rawReply struct {
	Status int
	Code   string // the JSON error code, if the body is one
	Body   string
}

// raw sends request, byte for byte, on a new TCP connection to the stack's
// gateway and reads one response. It is how requests that no HTTP client
// would send (bad escapes, dot segments) reach the server unchanged.
func raw(t *testing.T, s *stacktest.Stack, request string) rawReply {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	return readRaw(t, c)
}

func readRaw(t *testing.T, c net.Conn) rawReply {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := rawReply{Status: resp.StatusCode, Body: string(b)}
	var e api.ErrorJSON
	if json.Unmarshal(b, &e) == nil {
		r.Code = e.Error.Code
	}
	return r
}

// streamLast is the stream's last sequence.
func streamLast(t *testing.T, s *stacktest.Stack) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := s.Stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestAbuse throws what a hostile or broken client would at one gateway:
// huge headers and bodies, slow clients, invalid keys, path tricks and a
// flood of forged tokens. Every request gets a clear error, the gateway
// keeps serving, and nothing written before is lost or changed; nothing
// the abuse sent is written either, except the keys the path tricks name
// literally.
func TestAbuse(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2})
	const keys = 20
	values := map[string]string{}
	var token string
	for i := range keys {
		k := fmt.Sprintf("keep/%02d", i)
		values[k] = fmt.Sprintf("value %d", i)
		token = put(t, s, k, values[k]).Token
	}
	written := streamLast(t, s)

	t.Run("huge headers", func(t *testing.T) {
		r := raw(t, s, "GET /v1/kv/keep/00 HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 200<<10)+"\r\n\r\n")
		if got, want := r.Status, http.StatusRequestHeaderFieldsTooLarge; got != want {
			t.Fatalf("200 KiB header: status=%d, want %d", got, want)
		}
		r2 := do(t, "GET", s.URL+"/v1/kv/keep/00", "", api.HeaderToken, strings.Repeat("1", 4096))
		if r2.Status != http.StatusBadRequest || errorCode(t, r2) != api.CodeInvalidToken {
			t.Fatalf("4 KiB token: status=%d body=%s, want 400 invalid_token", r2.Status, r2.Body)
		}
	})

	t.Run("huge bodies", func(t *testing.T) {
		big := strings.Repeat("b", 2<<20)
		r := do(t, "PUT", s.URL+"/v1/kv/abuse/big", big)
		if r.Status != http.StatusRequestEntityTooLarge || errorCode(t, r) != api.CodeValueTooLarge {
			t.Fatalf("2 MiB body: status=%d body=%s, want 413 value_too_large", r.Status, r.Body)
		}
		// Chunked: no Content-Length to reject up front.
		req := "PUT /v1/kv/abuse/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		for range 4 {
			req += fmt.Sprintf("%x\r\n%s\r\n", 1<<19, strings.Repeat("c", 1<<19))
		}
		req += "0\r\n\r\n"
		rr := raw(t, s, req)
		if rr.Status != http.StatusRequestEntityTooLarge || rr.Code != api.CodeValueTooLarge {
			t.Fatalf("2 MiB chunked body: status=%d body=%.200s, want 413 value_too_large", rr.Status, rr.Body)
		}
		// A body that claims more than it sends, then stalls, is not stored.
		c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, "PUT /v1/kv/abuse/short HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
		_ = c.Close()
	})

	t.Run("slow clients", func(t *testing.T) {
		const slow = 16
		request := "GET /v1/kv/keep/01 HTTP/1.1\r\nHost: x\r\n" + api.HeaderToken + ": " + token + "\r\n\r\n"
		conns := make([]net.Conn, slow)
		for i := range conns {
			c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			conns[i] = c
		}
		// Trickle every request a few bytes at a time; meanwhile other
		// clients are served at once.
		var wg sync.WaitGroup
		errs := make(chan error, slow)
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < len(request); i += 4 {
					if _, err := io.WriteString(c, request[i:min(i+4, len(request))]); err != nil {
						errs <- err
						return
					}
					time.Sleep(15 * time.Millisecond) // the trickle itself, not a wait for something
				}
			}()
		}
		for range 10 {
			start := time.Now()
			r := do(t, "GET", s.URL+"/v1/kv/keep/02", "", api.HeaderToken, token)
			if r.Status != http.StatusOK || r.Body != values["keep/02"] {
				t.Fatalf("a normal read during the slow clients: status=%d body=%q", r.Status, r.Body)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("a normal read took %v while slow clients trickled", d)
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("trickling: %v", err)
		}
		for _, c := range conns {
			if r := readRaw(t, c); r.Status != http.StatusOK || r.Body != values["keep/01"] {
				t.Fatalf("a slow client's read: status=%d body=%q", r.Status, r.Body)
			}
		}
	})

	t.Run("invalid keys", func(t *testing.T) {
		for _, path := range []string{"/v1/kv/%ff", "/v1/kv/a%c3%28b", "/v1/kv/%ed%a0%80", "/v1/kv/", "/v1/kv/" + strings.Repeat("k", 1025)} {
			for _, method := range []string{"PUT", "GET", "DELETE"} {
				r := do(t, method, s.URL+path, "v")
				if r.Status != http.StatusBadRequest || errorCode(t, r) != api.CodeInvalidKey {
					t.Fatalf("%s %.60s: status=%d body=%s, want 400 invalid_key", method, path, r.Status, r.Body)
				}
			}
		}
		// Raw bytes that are not UTF-8, unescaped in the request line.
		r := raw(t, s, "PUT /v1/kv/\xff\xfe HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv")
		if r.Status != http.StatusBadRequest {
			t.Fatalf("raw invalid UTF-8 key: status=%d body=%s, want 400", r.Status, r.Body)
		}
		// A scan prefix that is not UTF-8.
		r2 := do(t, "GET", s.URL+"/v1/kv?prefix=%ff", "")
		if r2.Status != http.StatusBadRequest || errorCode(t, r2) != api.CodeInvalidKey {
			t.Fatalf("scan prefix %%ff: status=%d body=%s, want 400 invalid_key", r2.Status, r2.Body)
		}
	})

	t.Run("path tricks", func(t *testing.T) {
		// Dot segments and doubled slashes are not cleaned: they are part
		// of the key, never a way to another key or endpoint.
		literal := []struct{ path, key string }{
			{"/v1/kv/../x", "../x"},
			{"/v1/kv//a", "/a"},
			{"/v1/kv/%2e%2e", ".."},
			{"/v1/kv/a/./b", "a/./b"},
		}
		for _, tt := range literal {
			r := raw(t, s, "PUT "+tt.path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\ntrick")
			if r.Status != http.StatusOK {
				t.Fatalf("PUT %s: status=%d body=%s, want 200 (the key %q)", tt.path, r.Status, r.Body, tt.key)
			}
			var w api.WriteJSON
			if err := json.Unmarshal([]byte(r.Body), &w); err != nil || w.Key != tt.key {
				t.Fatalf("PUT %s wrote key %q, want %q", tt.path, w.Key, tt.key)
			}
			written++
		}
		for _, key := range []string{"x", "a", "a/b"} {
			if r := do(t, "GET", s.URL+"/v1/kv/"+key, "", api.HeaderToken, token); r.Status != http.StatusNotFound {
				t.Fatalf("GET %s after the path tricks: status=%d body=%q, want 404", key, r.Status, r.Body)
			}
		}
		answered := []struct {
			request string
			status  int
		}{
			{"GET /v1/kv/%zz HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest},
			{"PUT /v1/kv/a%zzb HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv", http.StatusBadRequest},
			{"GET //v1/kv/keep/00 HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusNotFound},
			{"GET /v1/kv/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusNotFound},
			{"GET /v2/kv/keep/00 HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusNotFound},
			{"PATCH /v1/kv/keep/00 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv", http.StatusMethodNotAllowed},
			// The absolute form names the same path on this server.
			{"GET http://evil.example/v1/kv/keep/00 HTTP/1.1\r\nHost: evil.example\r\n\r\n", http.StatusOK},
		}
		for _, tt := range answered {
			r := raw(t, s, tt.request)
			if r.Status != tt.status {
				t.Fatalf("%q: status=%d body=%s, want %d", strings.SplitN(tt.request, "\r\n", 2)[0], r.Status, r.Body, tt.status)
			}
		}
	})

	t.Run("token flood", func(t *testing.T) {
		good, err := api.ParseToken(token)
		if err != nil {
			t.Fatal(err)
		}
		bad := []string{
			api.NewToken(good.Stream, 1<<62).String(), // far future
			api.NewToken(good.Stream, good.Seq+1e6).String(),
			api.NewToken("deadbeef0000", good.Seq).String(), // another stream
			"1." + good.Stream + ".-1", "1." + good.Stream + ".01", "2." + good.Stream + ".1",
			"1..1", "...", "1.UPPER.1", strings.Repeat("9", 300), "1." + good.Stream + ".18446744073709551616",
		}
		codes := []string{api.CodeInvalidToken, api.CodeTokenFromFuture, api.CodeTokenStreamMismatch}
		const requests = 400
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		failures := make(chan string, requests)
		client := &http.Client{Timeout: 10 * time.Second}
		for i := range requests {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				tok := bad[i%len(bad)]
				method, body := "GET", ""
				if i%3 == 0 {
					method, body = "PUT", "flood"
				}
				req, _ := http.NewRequest(method, fmt.Sprintf("%s/v1/kv/keep/%02d", s.URL, i%keys), strings.NewReader(body))
				if i%5 == 0 {
					req.AddCookie(&http.Cookie{Name: "tidemark_token", Value: tok})
				} else {
					req.Header.Set(api.HeaderToken, tok)
				}
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failures <- fmt.Sprintf("%s with token %.40q: %v", method, tok, err)
					return
				}
				defer resp.Body.Close()
				var e api.ErrorJSON
				_ = json.NewDecoder(resp.Body).Decode(&e)
				switch {
				case resp.StatusCode != http.StatusBadRequest || !slices.Contains(codes, e.Error.Code):
					failures <- fmt.Sprintf("%s with token %.40q: status=%d code=%q, want 400 and a token error", method, tok, resp.StatusCode, e.Error.Code)
				case time.Since(start) > 5*time.Second:
					failures <- fmt.Sprintf("%s with token %.40q took %v: a bad token must fail at once", method, tok, time.Since(start))
				}
			}()
		}
		wg.Wait()
		close(failures)
		for f := range failures {
			t.Fatal(f)
		}
	})

	// The gateway is up and nothing written before is lost or changed;
	// nothing the abuse sent was written but the literal path-trick keys.
	if r := do(t, "GET", s.URL+"/healthz", ""); r.Status != http.StatusOK {
		t.Fatalf("healthz after the abuse: %d", r.Status)
	}
	for k, v := range values {
		r := do(t, "GET", s.URL+"/v1/kv/"+k, "", api.HeaderToken, token)
		if r.Status != http.StatusOK || r.Body != v {
			t.Fatalf("GET %s after the abuse: status=%d body=%q, want %q", k, r.Status, r.Body, v)
		}
	}
	for _, k := range []string{"abuse/big", "abuse/chunked", "abuse/short"} {
		if r := do(t, "GET", s.URL+"/v1/kv/"+k, "", api.HeaderToken, token); r.Status != http.StatusNotFound {
			t.Fatalf("GET %s: status=%d, want 404: a rejected write was stored", k, r.Status)
		}
	}
	if got, want := streamLast(t, s), written; got != want {
		t.Fatalf("stream last sequence=%d after the abuse, want %d: something the abuse sent was written", got, want)
	}
}
