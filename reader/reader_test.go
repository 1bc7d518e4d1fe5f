package reader_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/reader"
	"github.com/tidemark/tidemark/replicator"
)

const testTimeout = 20 * time.Second

// The replicator is the Store of a replica.
var _ reader.Store = (*replicator.Replicator)(nil)

// fixture is a replica (replicator + reader) on an embedded NATS server.
type fixture struct {
	env  *testenv.Env
	repl *replicator.Replicator
	r    *reader.Reader
}

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

func setup(t *testing.T, mods ...func(*reader.Config)) *fixture {
	t.Helper()
	env := testenv.Start(t)
	repl := replicator.New(replicator.Config{ID: "r1", Dir: t.TempDir(), Stream: env.Stream, Logger: testLogger(t)})
	if err := repl.Open(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = repl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = repl.Close() })

	cfg := reader.Config{Replica: "r1", Store: repl, Stream: env.Stream, Logger: testLogger(t)}
	for _, m := range mods {
		m(&cfg)
	}
	return &fixture{env: env, repl: repl, r: reader.New(cfg)}
}

// write publishes a put (value != nil) or a delete and returns its token.
func (f *fixture) write(t *testing.T, key string, value []byte) api.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	m := nats.NewMsg(f.env.Stream.KeySubject(key))
	if value == nil {
		m.Header.Set(api.HeaderOp, string(api.OpDelete))
	} else {
		m.Header.Set(api.HeaderOp, string(api.OpPut))
		m.Data = value
	}
	ack, err := f.env.JS.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return f.env.Stream.Token(ack.Sequence)
}

func (f *fixture) put(t *testing.T, key, value string) api.Token {
	return f.write(t, key, []byte(value))
}

func (f *fixture) waitApplied(t *testing.T, tok api.Token) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := f.repl.WaitApplied(ctx, tok.Seq); err != nil {
		t.Fatal(err)
	}
}

func TestGetAndScanWithoutToken(t *testing.T) {
	f := setup(t)
	f.put(t, "a", "1")
	last := f.put(t, "b", "2")
	f.waitApplied(t, last)
	ctx := context.Background()

	res, err := f.r.Get(ctx, api.GetRequest{Key: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(res.Record.Value), "1"; got != want {
		t.Fatalf("Value=%q, want %q", got, want)
	}
	if got, want := res.Record.Revision, uint64(1); got != want {
		t.Fatalf("Revision=%d, want %d", got, want)
	}
	if got, want := res.Token, last; got != want {
		t.Fatalf("Token=%v, want %v", got, want)
	}
	if got, want := res.Replica, "r1"; got != want {
		t.Fatalf("Replica=%q, want %q", got, want)
	}
	if got, want := res.Applied, last.Seq; got != want {
		t.Fatalf("Applied=%d, want %d", got, want)
	}

	sres, err := f.r.Scan(ctx, api.ScanRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(sres.Items), 2; got != want {
		t.Fatalf("len(Items)=%d, want %d", got, want)
	}
	if got, want := sres.Token, last; got != want {
		t.Fatalf("scan Token=%v, want %v", got, want)
	}
}

func TestReadYourWrites(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	for i := range 50 {
		want := fmt.Sprint(i)
		tok := f.put(t, "k", want)
		res, err := f.r.Get(ctx, api.GetRequest{Key: "k", ReadSpec: api.ReadSpec{Token: tok}})
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if got := string(res.Record.Value); got != want {
			t.Fatalf("write %d: read %q, want %q", i, got, want)
		}
		if res.Token.Seq < tok.Seq || res.Applied < tok.Seq {
			t.Fatalf("write %d: Token=%v Applied=%d, behind %v", i, res.Token, res.Applied, tok)
		}
		sres, err := f.r.Scan(ctx, api.ScanRequest{Prefix: "k", ReadSpec: api.ReadSpec{Token: tok}})
		if err != nil || len(sres.Items) != 1 || string(sres.Items[0].Value) != want {
			t.Fatalf("write %d: scan %+v, %v", i, sres.Items, err)
		}
	}
}

func TestTokenWaitsForPausedReplica(t *testing.T) {
	f := setup(t)
	f.waitApplied(t, f.put(t, "a", "1"))
	f.repl.Pause()
	tok := f.put(t, "a", "2")

	type result struct {
		res api.GetResult
		err error
	}
	got := make(chan result, 1)
	go func() {
		res, err := f.r.Get(context.Background(), api.GetRequest{Key: "a", ReadSpec: api.ReadSpec{Token: tok, Wait: testTimeout}})
		got <- result{res, err}
	}()
	select {
	case r := <-got:
		t.Fatalf("Get returned %q, %v while the replica was paused", r.res.Record.Value, r.err)
	default:
	}
	f.repl.Resume()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if got, want := string(r.res.Record.Value), "2"; got != want {
			t.Fatalf("Value=%q, want %q", got, want)
		}
		if r.res.Token.Seq < tok.Seq {
			t.Fatalf("Token=%v, behind %v", r.res.Token, tok)
		}
	case <-time.After(testTimeout):
		t.Fatal("Get did not return after Resume")
	}
}

func TestTokenWaitTimeout(t *testing.T) {
	f := setup(t, func(c *reader.Config) { c.MaxWait = 300 * time.Millisecond })
	f.waitApplied(t, f.put(t, "a", "1"))
	f.repl.Pause()
	tok := f.put(t, "a", "2")
	ctx := context.Background()

	tests := []struct {
		name  string
		wait  time.Duration
		bound time.Duration
	}{
		{"request wait", 150 * time.Millisecond, 150 * time.Millisecond},
		{"clamped to MaxWait", time.Hour, 300 * time.Millisecond},
		{"default wait clamped to MaxWait", 0, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res, err := f.r.Get(ctx, api.GetRequest{Key: "a", ReadSpec: api.ReadSpec{Token: tok, Wait: tt.wait}})
			el := time.Since(start)
			if !errors.Is(err, api.ErrTokenWaitTimeout) {
				t.Fatalf("Get=%q, %v; want ErrTokenWaitTimeout", res.Record.Value, err)
			}
			if res.Record.Value != nil {
				t.Fatalf("Get returned the stale value %q with the timeout", res.Record.Value)
			}
			if el < tt.bound || el > tt.bound+testTimeout/4 {
				t.Fatalf("Get returned after %v, want about %v", el, tt.bound)
			}
			if got, want := res.Token, tok; got != want {
				t.Fatalf("Token=%v, want the request's %v", got, want)
			}
			if res.Waited < tt.bound {
				t.Fatalf("Waited=%v, want >= %v", res.Waited, tt.bound)
			}
		})
	}
	sres, err := f.r.Scan(ctx, api.ScanRequest{Prefix: "a", ReadSpec: api.ReadSpec{Token: tok, Wait: 50 * time.Millisecond}})
	if !errors.Is(err, api.ErrTokenWaitTimeout) || sres.Items != nil {
		t.Fatalf("Scan=%+v, %v; want ErrTokenWaitTimeout and no items", sres.Items, err)
	}
}

func TestBadTokensFailFast(t *testing.T) {
	f := setup(t)
	f.waitApplied(t, f.put(t, "a", "1"))
	const wait = 5 * time.Second
	ctx := context.Background()
	last := f.env.Stream.Token(f.repl.Applied())

	tests := []struct {
		name   string
		tok    api.Token
		paused bool
		want   error
	}{
		{"another stream", api.NewToken("abc123", 1), false, api.ErrTokenStreamMismatch},
		{"future", f.env.Stream.Token(last.Seq + 1000), false, api.ErrTokenFromFuture},
		{"future on a lagging replica", f.env.Stream.Token(last.Seq + 1000), true, api.ErrTokenFromFuture},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.paused {
				f.repl.Pause()
				defer f.repl.Resume()
				f.put(t, "b", "2") // the replica lags behind the stream
			}
			for _, op := range []string{"get", "scan"} {
				start := time.Now()
				var err error
				var tok api.Token
				if op == "get" {
					var res api.GetResult
					res, err = f.r.Get(ctx, api.GetRequest{Key: "a", ReadSpec: api.ReadSpec{Token: tt.tok, Wait: wait}})
					tok = res.Token
				} else {
					var res api.ScanResult
					res, err = f.r.Scan(ctx, api.ScanRequest{ReadSpec: api.ReadSpec{Token: tt.tok, Wait: wait}})
					tok = res.Token
				}
				if el := time.Since(start); el > wait/5 {
					t.Fatalf("%s took %v, want well under the %v wait", op, el, wait)
				}
				if !errors.Is(err, tt.want) {
					t.Fatalf("%s=%v, want %v", op, err, tt.want)
				}
				if !tok.IsZero() {
					t.Fatalf("%s Token=%v, want none for a rejected token", op, tok)
				}
			}
		})
	}
}

func TestScanPaging(t *testing.T) {
	f := setup(t)
	for i := range 7 {
		f.put(t, fmt.Sprintf("p/%d", i), fmt.Sprint(i))
	}
	f.put(t, "q", "other")
	last := f.write(t, "p/3", nil)
	ctx := context.Background()

	var keys []string
	req := api.ScanRequest{Prefix: "p/", Limit: 2, ReadSpec: api.ReadSpec{Token: last}}
	pages := 0
	for {
		res, err := f.r.Scan(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range res.Items {
			keys = append(keys, it.Key)
		}
		if res.Next == "" {
			break
		}
		req.After = res.Next
	}
	if got, want := fmt.Sprint(keys), "[p/0 p/1 p/2 p/4 p/5 p/6]"; got != want {
		t.Fatalf("keys=%s, want %s", got, want)
	}
	if got, want := pages, 3; got != want {
		t.Fatalf("pages=%d, want %d", got, want)
	}
	if _, err := f.r.Scan(ctx, api.ScanRequest{Limit: api.MaxScanLimit + 1}); !errors.Is(err, api.ErrInvalidRequest) {
		t.Fatalf("Scan with a limit over the maximum=%v, want ErrInvalidRequest", err)
	}
	res, err := f.r.Scan(ctx, api.ScanRequest{Prefix: "none/"})
	if err != nil || res.Items == nil || len(res.Items) != 0 || res.Next != "" {
		t.Fatalf("empty Scan=%+v, %v; want an empty page", res, err)
	}
}

func TestNotFound(t *testing.T) {
	f := setup(t)
	f.put(t, "a", "1")
	delTok := f.write(t, "a", nil)
	ctx := context.Background()

	res, err := f.r.Get(ctx, api.GetRequest{Key: "a", ReadSpec: api.ReadSpec{Token: delTok}})
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get(deleted)=%v, want ErrNotFound", err)
	}
	if got, want := res.Record.Revision, delTok.Seq; got != want || !res.Record.Deleted {
		t.Fatalf("Record=%+v, want deleted at revision %d", res.Record, want)
	}
	if got, want := res.Token, delTok; got != want {
		t.Fatalf("Token=%v, want %v", got, want)
	}

	res, err = f.r.Get(ctx, api.GetRequest{Key: "never"})
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get(never)=%v, want ErrNotFound", err)
	}
	if res.Record.Revision != 0 || res.Record.Deleted || res.Token.Stream != f.env.Stream.ID() {
		t.Fatalf("Get(never)=%+v, want no revision and a token of the stream", res)
	}

	if _, err := f.r.Get(ctx, api.GetRequest{Key: ""}); !errors.Is(err, api.ErrInvalidKey) {
		t.Fatalf("Get(\"\")=%v, want ErrInvalidKey", err)
	}
}

func TestUnavailable(t *testing.T) {
	f := setup(t)
	f.waitApplied(t, f.put(t, "a", "1"))
	if err := f.repl.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := f.r.Get(ctx, api.GetRequest{Key: "a"}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("Get on a closed store=%v, want ErrUnavailable", err)
	}
	if _, err := f.r.Scan(ctx, api.ScanRequest{}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("Scan on a closed store=%v, want ErrUnavailable", err)
	}
}

// TestStoreStopsDuringWait checks that a read waiting for its token fails
// at once, not at the end of its wait, when the store stops.
func TestStoreStopsDuringWait(t *testing.T) {
	f := setup(t)
	f.waitApplied(t, f.put(t, "a", "1"))
	f.repl.Pause()
	tok := f.put(t, "a", "2")
	const wait = 10 * time.Second
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := f.r.Get(context.Background(), api.GetRequest{Key: "a", ReadSpec: api.ReadSpec{Token: tok, Wait: wait}})
		errc <- err
	}()
	_ = f.repl.Close()
	if err := <-errc; !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("Get=%v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > wait/5 {
		t.Fatalf("Get took %v, want well under the %v wait", el, wait)
	}
}

// TestTokenAheadOfStaleAnswer reads with a token the server's answers do not
// show yet, as a cluster's stream info lagging its followers does, until the
// write lands and the replica applies it: the read is served, not refused
// as token_from_future.
func TestTokenAheadOfStaleAnswer(t *testing.T) {
	f := setup(t)
	last := f.put(t, "a", "1")
	f.waitApplied(t, last)
	jsz := func() uint64 {
		j, err := f.env.Server.Jsz(nil)
		if err != nil {
			t.Fatal(err)
		}
		return j.API.Total
	}
	base := jsz()
	type result struct {
		res api.GetResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := f.r.Get(context.Background(), api.GetRequest{Key: "b", ReadSpec: api.ReadSpec{Token: f.env.Stream.Token(last.Seq + 1), Wait: 5 * time.Second}})
		done <- result{res, err}
	}()
	var early *result
	testenv.Eventually(t, 5*time.Second, "the reader asking the server three times", func() bool {
		select {
		case r := <-done:
			early = &r
			return true
		default:
			return jsz() >= base+3
		}
	})
	if early != nil {
		t.Fatalf("Get before the write landed=%q, %v; want it to wait", early.res.Record.Value, early.err)
	}
	f.put(t, "b", "2")
	got := <-done
	if got.err != nil || string(got.res.Record.Value) != "2" {
		t.Fatalf("Get=%q, %v; want %q", got.res.Record.Value, got.err, "2")
	}
}
