package gateway_test

import (
	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/internal/testenv"

	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/stacktest"
)

// With gateway.access_log on, each request logs one line with its method,
// path, status, bytes, duration, the replica that served it and the token's
// sequence; off, none.
func TestAccessLog(t *testing.T) {
	for _, on := range []bool{true, false} {
		var logs testenv.LogBuffer
		s := stacktest.Start(t, stacktest.Options{Replicas: 1, AccessLog: on, Logger: zerolog.New(&logs)})
		w := put(t, s, "greeting", "hello")
		r := do(t, "GET", s.URL+"/v1/kv/greeting", "", api.HeaderToken, w.Token)
		if r.Status != 200 || r.Body != "hello" {
			t.Fatalf("GET greeting: %d %q", r.Status, r.Body)
		}
		tok, err := api.ParseToken(r.Header.Get(api.HeaderToken))
		if err != nil {
			t.Fatal(err)
		}
		lines := logs.Lines("request")
		if !on {
			if len(lines) != 0 {
				t.Fatalf("access log off: %d request lines logged: %v", len(lines), lines)
			}
			continue
		}
		if len(lines) != 2 {
			t.Fatalf("access log on: %d request lines after a PUT and a GET, want 2: %v", len(lines), lines)
		}
		get := lines[1]
		for field, want := range map[string]any{
			"method": "GET", "path": "/v1/kv/greeting", "status": float64(200), "bytes": float64(len("hello")),
			"replica": "r1", "token_seq": float64(tok.Seq), "level": "info",
		} {
			if got := get[field]; got != want {
				t.Errorf("GET line %s=%v (%T), want %v: %v", field, got, got, want, get)
			}
		}
		if d, err := time.ParseDuration(get["duration"].(string)); err != nil || d <= 0 {
			t.Errorf("GET line duration=%v, want a duration with its unit: %v", get["duration"], err)
		}
		if got, want := lines[0]["method"], "PUT"; got != want {
			t.Errorf("first line method=%v, want %v", got, want)
		}
		if _, ok := lines[0]["replica"]; ok {
			t.Errorf("PUT line names a replica: %v", lines[0])
		}
	}
}
