package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/tidemark/tidemark/internal/stacktest"
)

// BenchmarkHTTP measures the gateway's handlers over the whole pipeline
// (writer service and replicas over NATS): a put, and a point read with a
// token the replicas have reached, called in-process (the handler alone)
// and over a loopback keep-alive connection.
func BenchmarkHTTP(b *testing.B) {
	s := stacktest.Start(b, stacktest.Options{})
	value := make([]byte, 128)
	const keys = 100
	var tok string
	for i := range keys {
		resp, err := http.Post(s.URL+"/v1/kv/key-"+strconv.Itoa(i), "", bytes.NewReader(value))
		if err != nil {
			b.Fatal(err)
		}
		_ = resp.Body.Close()
		req, _ := http.NewRequest(http.MethodPut, s.URL+"/v1/kv/key-"+strconv.Itoa(i), bytes.NewReader(value))
		resp, err = http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("put: %v %v", err, resp)
		}
		tok = resp.Header.Get(api.HeaderToken)
		_ = resp.Body.Close()
	}
	h := s.Gateway.Handler()
	serve := func(b *testing.B, method, key string, body []byte) {
		req := httptest.NewRequest(method, "/v1/kv/"+key, bytes.NewReader(body))
		req.Header.Set(api.HeaderToken, tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%s %s: %d %s", method, key, w.Code, w.Body)
		}
	}
	b.Run("handler/get", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				serve(b, http.MethodGet, "key-"+strconv.Itoa(i%keys), nil)
			}
		})
	})
	b.Run("handler/put", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				serve(b, http.MethodPut, "key-"+strconv.Itoa(i%keys), value)
			}
		})
	})
	large := make([]byte, 4<<10)
	b.Run("handler/put-4KiB", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				serve(b, http.MethodPut, "key-"+strconv.Itoa(i%keys), large)
			}
		})
	})
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Run("loopback/get", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/kv/key-"+strconv.Itoa(i%keys), nil)
				req.Header.Set(api.HeaderToken, tok)
				resp, err := c.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("get: %d", resp.StatusCode)
					return
				}
			}
		})
	})
}
