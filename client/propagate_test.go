package client_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/internal/testenv"
)

var (
	tok5     = api.NewToken("abc123", 5)
	tok7     = api.NewToken("abc123", 7)
	tok9     = api.NewToken("abc123", 9)
	tokOther = api.NewToken("def456", 8)
)

func TestMiddleware(t *testing.T) {
	for _, tc := range []struct {
		name           string
		header, cookie string
		learn          api.Token // merged into the session by the handler
		handler        string    // "write", "header", "nothing", "own"
		wantIn         api.Token // the token the handler sees
		wantOut        string    // the response's Tidemark-Token
		wantCookie     bool
	}{
		{name: "none", handler: "write"},
		{name: "none, learns", learn: tok7, handler: "write", wantOut: tok7.String()},
		{name: "header", header: tok5.String(), handler: "write", wantIn: tok5, wantOut: tok5.String()},
		{name: "header, learns", header: tok5.String(), learn: tok7, handler: "header", wantIn: tok5, wantOut: tok7.String()},
		{name: "header, learns older", header: tok7.String(), learn: tok5, handler: "write", wantIn: tok7, wantOut: tok7.String()},
		{name: "cookie", cookie: tok5.String(), learn: tok7, handler: "write", wantIn: tok5, wantOut: tok7.String(), wantCookie: true},
		{name: "both, cookie later", header: tok5.String(), cookie: tok7.String(), handler: "write", wantIn: tok7, wantOut: tok7.String(), wantCookie: true},
		{name: "both, header later", header: tok9.String(), cookie: tok7.String(), handler: "nothing", wantIn: tok9, wantOut: tok9.String(), wantCookie: true},
		{name: "two streams: header wins", header: tok5.String(), cookie: tokOther.String(), handler: "write", wantIn: tok5, wantOut: tok5.String(), wantCookie: true},
		{name: "malformed header", header: "1.abc123.x", cookie: tok5.String(), handler: "write", wantIn: tok5, wantOut: tok5.String(), wantCookie: true},
		{name: "malformed everything", header: "garbage", cookie: "%%%", handler: "write", wantCookie: false},
		{name: "handler sets its own", header: tok5.String(), learn: tok7, handler: "own", wantIn: tok5, wantOut: tok9.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in api.Token
			h := client.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				in = client.TokenFrom(r.Context())
				if !tc.learn.IsZero() {
					if err := client.SessionFrom(r.Context()).Merge(tc.learn); err != nil {
						t.Errorf("Merge: %v", err)
					}
				}
				switch tc.handler {
				case "write":
					_, _ = io.WriteString(w, "ok")
				case "header":
					w.WriteHeader(http.StatusAccepted)
				case "own":
					w.Header().Set(api.HeaderToken, tok9.String())
					w.WriteHeader(http.StatusOK)
				}
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.header != "" {
				req.Header.Set(api.HeaderToken, tc.header)
			}
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: client.CookieToken, Value: tc.cookie})
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if in != tc.wantIn {
				t.Fatalf("handler saw token %v, want %v", in, tc.wantIn)
			}
			if got := rec.Header().Get(api.HeaderToken); got != tc.wantOut {
				t.Fatalf("response %s=%q, want %q", api.HeaderToken, got, tc.wantOut)
			}
			var cookie *http.Cookie
			for _, c := range rec.Result().Cookies() {
				if c.Name == client.CookieToken {
					cookie = c
				}
			}
			if got, want := cookie != nil && tc.wantOut != "", tc.wantCookie && tc.wantOut != ""; got != want {
				t.Fatalf("response cookie %v, want one: %v", cookie, want)
			}
			if cookie != nil && (cookie.Value != tc.wantOut || !cookie.HttpOnly || cookie.Path != "/") {
				t.Fatalf("response cookie %v, want %q, HttpOnly, Path=/", cookie, tc.wantOut)
			}
		})
	}
}

func TestRoundTripper(t *testing.T) {
	var seen string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Get(api.HeaderToken)
		w.Header().Set(api.HeaderToken, tok9.String())
	}))
	t.Cleanup(srv.Close)
	hc := &http.Client{Transport: client.RoundTripper(nil)}

	get := func(ctx context.Context, header string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set(api.HeaderToken, header)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := req.Header.Get(api.HeaderToken); got != header {
			t.Fatalf("the caller's request was changed: %s=%q, want %q", api.HeaderToken, got, header)
		}
	}

	// No session: nothing is sent or learned.
	get(context.Background(), "")
	if seen != "" {
		t.Fatalf("sent %q without a session", seen)
	}
	// A session's token goes out, the reply's comes back into it.
	ctx := client.WithToken(context.Background(), tok5)
	get(ctx, "")
	if got, want := seen, tok5.String(); got != want {
		t.Fatalf("sent %q, want %q", got, want)
	}
	if got, want := client.TokenFrom(ctx), tok9; got != want {
		t.Fatalf("session token %v after the reply, want %v", got, want)
	}
	// A token the caller set is merged with the session's.
	get(client.WithToken(context.Background(), tok5), tok7.String())
	if got, want := seen, tok7.String(); got != want {
		t.Fatalf("sent %q, want the later %q", got, want)
	}
	get(client.WithToken(context.Background(), tok5), tokOther.String())
	if got, want := seen, tokOther.String(); got != want {
		t.Fatalf("sent %q, want the caller's own %q", got, want)
	}
}

func TestNATSPropagation(t *testing.T) {
	e := testenv.Start(t)
	nc := e.Conn.Conn
	ctx := tctx(t, 10*time.Second)

	// A micro service that learns tok9 while handling a request.
	var seenMicro api.Token
	svc, err := micro.AddService(nc, micro.Config{Name: "prop-test", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	err = svc.AddEndpoint("echo", client.MicroHandler(ctx, func(ctx context.Context, req micro.Request) {
		seenMicro = client.TokenFrom(ctx)
		_ = client.SessionFrom(ctx).Merge(tok9)
		if string(req.Data()) == "fail" {
			_ = req.Error("500", "failed on purpose", nil)
			return
		}
		_ = req.Respond(req.Data(), micro.WithHeaders(micro.Headers{"X-Own": {"kept"}}))
	}), micro.WithEndpointSubject("prop.micro"))
	if err != nil {
		t.Fatal(err)
	}
	// A plain subscriber that answers with the token it was sent.
	sub, err := nc.Subscribe("prop.plain", client.MsgHandler(ctx, func(ctx context.Context, m *nats.Msg) {
		_ = client.RespondNATS(ctx, m, &nats.Msg{Data: []byte(client.TokenFrom(ctx).String())})
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	// Through the micro service: out with tok5, back with tok9.
	rctx := client.WithToken(ctx, tok5)
	reply, err := client.RequestNATS(rctx, nc, nats.NewMsg("prop.micro"))
	if err != nil {
		t.Fatal(err)
	}
	if seenMicro != tok5 {
		t.Fatalf("micro handler saw %v, want %v", seenMicro, tok5)
	}
	if got, want := reply.Header.Get(api.HeaderToken), tok9.String(); got != want {
		t.Fatalf("reply %s=%q, want %q", api.HeaderToken, got, want)
	}
	if got := reply.Header.Get("X-Own"); got != "kept" {
		t.Fatalf("reply X-Own=%q, want the handler's own header kept", got)
	}
	if got := client.TokenFrom(rctx); got != tok9 {
		t.Fatalf("session token %v after the reply, want %v", got, tok9)
	}
	// Errors carry the token too.
	m := nats.NewMsg("prop.micro")
	m.Data = []byte("fail")
	reply, err = client.RequestNATS(client.WithToken(ctx, tok5), nc, m)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Header.Get(micro.ErrorCodeHeader) != "500" || reply.Header.Get(api.HeaderToken) != tok9.String() {
		t.Fatalf("error reply headers %v, want the error and token %v", reply.Header, tok9)
	}

	// Through the plain subscriber, with InjectNATS and ExtractNATS by hand.
	m = nats.NewMsg("prop.plain")
	client.InjectNATS(client.WithToken(ctx, tok7), m)
	reply, err = nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(reply.Data), tok7.String(); got != want {
		t.Fatalf("subscriber saw %q, want %q", got, want)
	}
	if got := client.TokenFrom(client.ExtractNATS(context.Background(), reply)); got != tok7 {
		t.Fatalf("ExtractNATS of the reply=%v, want %v", got, tok7)
	}
	// Without a session nothing is injected.
	m = nats.NewMsg("prop.plain")
	client.InjectNATS(ctx, m)
	if m.Header.Get(api.HeaderToken) != "" {
		t.Fatalf("InjectNATS without a session set %q", m.Header.Get(api.HeaderToken))
	}
	// A malformed token is ignored.
	m.Header.Set(api.HeaderToken, "garbage")
	if got := client.TokenFrom(client.ExtractNATS(ctx, m)); !got.IsZero() {
		t.Fatalf("ExtractNATS of garbage=%v, want none", got)
	}
}
