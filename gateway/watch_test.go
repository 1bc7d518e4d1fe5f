package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidemark/tidemark/client"
	"github.com/tidemark/tidemark/gateway"
	"github.com/tidemark/tidemark/internal/backoff"
	"github.com/tidemark/tidemark/internal/stack"
	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/wire"

	"github.com/nats-io/nats.go"
)

// sseEvent is one Server-Sent Event as a browser's EventSource sees it.
type sseEvent struct {
	ID    string // the id field; "" when the event has none
	HasID bool
	Type  string
	Data  string
}

// change decodes the data of a put or delete event.
func (e sseEvent) change(t testing.TB) api.EventJSON {
	t.Helper()
	var d api.EventJSON
	if err := json.Unmarshal([]byte(e.Data), &d); err != nil {
		t.Fatalf("event %+v: data: %v", e, err)
	}
	return d
}

// sseStream is an open watch.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
}

// openWatch sends GET url with hdr (name, value pairs) and returns the
// response status, its body when it is not a stream, and the stream.
func openWatch(t testing.TB, url string, hdr ...string) (int, string, *sseStream) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Cookie" {
			req.AddCookie(&http.Cookie{Name: "tidemark_token", Value: hdr[i+1]})
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		defer resp.Body.Close()
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text())
		}
		return resp.StatusCode, b.String(), nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type=%q, want text/event-stream", ct)
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 4096)}
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 4<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Type != "" || ev.Data != "" {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.ID, ev.HasID = strings.TrimPrefix(line, "id: "), true
			case strings.HasPrefix(line, "event: "):
				ev.Type = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = strings.TrimPrefix(line, "data: ")
			case strings.HasPrefix(line, "retry: "):
			default:
				s.events <- sseEvent{Type: "malformed", Data: line}
			}
		}
	}()
	return 200, "", s
}

// next returns the next event that is not progress, failing the test when
// none comes within d or the stream ends.
func (s *sseStream) next(t testing.TB, d time.Duration) sseEvent {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatal("the watch stream ended")
			}
			if ev.Type == "malformed" {
				t.Fatalf("malformed SSE line %q", ev.Data)
			}
			if ev.Type != "progress" {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event within %v", d)
		}
	}
}

// TestWatchInitialStateThenChanges: a watch of a prefix starts with the
// live keys under it in key order (puts without an id), then synced with
// the snapshot's position, then every change under the prefix with its
// revision as id; keys outside the prefix never appear, a delete is a
// delete event, and every event carries a token.
func TestWatchInitialStateThenChanges(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2, WatchProgress: 100 * time.Millisecond})
	put(t, s, "a/2", "two")
	put(t, s, "a/1", "one")
	put(t, s, "b/1", "other")
	del := do(t, "DELETE", s.URL+"/v1/kv/a/gone", "")
	if del.Status != 200 {
		t.Fatalf("DELETE: %d %s", del.Status, del.Body)
	}
	last := put(t, s, "a/3", "three")
	deleted := do(t, "DELETE", s.URL+"/v1/kv/a/3", "")
	if deleted.Status != 200 {
		t.Fatalf("DELETE: %d %s", deleted.Status, deleted.Body)
	}

	status, body, w := openWatch(t, s.URL+"/v1/watch?prefix=a/", api.HeaderToken, deleted.Header.Get(api.HeaderToken))
	if status != 200 {
		t.Fatalf("watch: %d %s", status, body)
	}
	for _, want := range []struct{ key, value string }{{"a/1", "one"}, {"a/2", "two"}} {
		ev := w.next(t, 10*time.Second)
		d := ev.change(t)
		if ev.Type != "put" || ev.HasID || d.Key != want.key || string(d.Value) != want.value || d.Token == "" || d.Revision == 0 {
			t.Fatalf("initial event %+v (%+v), want a put of %s=%s without id, with a token", ev, d, want.key, want.value)
		}
	}
	synced := w.next(t, 10*time.Second)
	id, err := strconv.ParseUint(synced.ID, 10, 64)
	if synced.Type != "synced" || err != nil || id < last.Revision || !strings.Contains(synced.Data, `"token":"`) {
		t.Fatalf("synced event %+v, want id >= %d and a token", synced, last.Revision)
	}

	put(t, s, "b/2", "outside")
	p := put(t, s, "a/4", "four")
	d := do(t, "DELETE", s.URL+"/v1/kv/a/1", "")
	var dw api.WriteJSON
	if err := json.Unmarshal([]byte(d.Body), &dw); err != nil {
		t.Fatal(err)
	}
	ev := w.next(t, 10*time.Second)
	if c := ev.change(t); ev.Type != "put" || ev.ID != strconv.FormatUint(p.Revision, 10) || c.Key != "a/4" || string(c.Value) != "four" || c.Revision != p.Revision {
		t.Fatalf("event %+v (%+v), want the put of a/4 at %d", ev, c, p.Revision)
	}
	if !strings.Contains(ev.Data, `"value":"`+base64.StdEncoding.EncodeToString([]byte("four"))+`"`) {
		t.Fatalf("data %s: want the value in base64", ev.Data)
	}
	ev = w.next(t, 10*time.Second)
	if c := ev.change(t); ev.Type != "delete" || ev.ID != strconv.FormatUint(dw.Revision, 10) || c.Key != "a/1" || c.Value != nil {
		t.Fatalf("event %+v, want the delete of a/1 at %d", ev, dw.Revision)
	}
}

// TestWatchResume: after= (and Last-Event-ID) resumes after a revision the
// replicas' watch window holds, with every later change and nothing
// before; a revision older than the window is 410 resume_point_compacted
// before the stream starts.
func TestWatchResume(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2, WatchWindow: 5, WatchProgress: 100 * time.Millisecond})
	var revs []uint64
	for i := range 12 {
		revs = append(revs, put(t, s, "k/"+strconv.Itoa(i), "v").Revision)
	}
	tok := put(t, s, "other", "x").Token
	status, body, _ := openWatch(t, s.URL+"/v1/watch?prefix=k/&after="+strconv.FormatUint(revs[2], 10), api.HeaderToken, tok)
	if status != http.StatusGone || !strings.Contains(body, api.CodeResumePointCompacted) {
		t.Fatalf("resume from %d with a window of 5: %d %s, want 410 %s", revs[2], status, body, api.CodeResumePointCompacted)
	}
	status, body, w := openWatch(t, s.URL+"/v1/watch?prefix=k/", api.HeaderToken, tok, "Last-Event-ID", strconv.FormatUint(revs[9], 10))
	if status != 200 {
		t.Fatalf("resume from %d: %d %s", revs[9], status, body)
	}
	for _, want := range revs[10:] {
		ev := w.next(t, 10*time.Second)
		if ev.Type != "put" || ev.ID != strconv.FormatUint(want, 10) {
			t.Fatalf("event %+v, want the put at %d", ev, want)
		}
	}
	status, body, _ = openWatch(t, s.URL+"/v1/watch?prefix=k/&after=x")
	if status != 400 || !strings.Contains(body, api.CodeInvalidRequest) {
		t.Fatalf("after=x: %d %s, want 400", status, body)
	}
}

// ackedWrite is a write the gateway acknowledged.
type ackedWrite struct {
	key, value string
	rev        uint64
	del        bool
}

// sseWatcher follows a watch as an EventSource does: when the stream
// ends it reconnects, to the next of urls, with Last-Event-ID set to the
// last id it saw; without one it starts over (a new initial state).
type sseWatcher struct {
	mu       sync.Mutex
	initial  map[string]string // the initial state
	synced   uint64
	changes  []sseEvent
	lastID   uint64
	connects int
	err      error
}

// state returns the watcher's synced id and the error it stopped on.
func (w *sseWatcher) state() (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced, w.err
}

// state returns the watcher's synced id and the error it stopped on.
func (w *goWatcher) state() (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced, w.err
}

func (w *sseWatcher) run(t testing.TB, ctx context.Context, urls []string, prefix string) {
	for i := 0; ctx.Err() == nil; i++ {
		url := urls[i%len(urls)] + "/v1/watch?prefix=" + prefix
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		w.mu.Lock()
		if w.synced != 0 || w.lastID != 0 {
			req.Header.Set("Last-Event-ID", strconv.FormatUint(w.lastID, 10))
		} else {
			w.initial = map[string]string{}
		}
		w.mu.Unlock()
		w.mu.Lock()
		w.connects++
		w.mu.Unlock()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			_ = backoff.Sleep(ctx, 20*time.Millisecond) // EventSource's retry
			continue
		}
		if resp.StatusCode == http.StatusServiceUnavailable {
			// No replica to serve it yet (a gateway that has not heard
			// one): a client that honours Retry-After tries again.
			resp.Body.Close()
			_ = backoff.Sleep(ctx, 50*time.Millisecond)
			continue
		}
		if resp.StatusCode != 200 {
			w.fail(fmt.Errorf("watch on %s: status %d", url, resp.StatusCode))
			resp.Body.Close()
			return
		}
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				w.event(t, ev)
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.ID, ev.HasID = strings.TrimPrefix(line, "id: "), true
			case strings.HasPrefix(line, "event: "):
				ev.Type = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = strings.TrimPrefix(line, "data: ")
			}
		}
		resp.Body.Close()
	}
}

func (w *sseWatcher) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *sseWatcher) event(t testing.TB, ev sseEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ev.Type == "" {
		return
	}
	if ev.HasID {
		id, err := strconv.ParseUint(ev.ID, 10, 64)
		if err != nil || id < w.lastID {
			w.err = fmt.Errorf("event %+v: id goes back from %d", ev, w.lastID)
		}
		w.lastID = id
	}
	switch {
	case ev.Type == "error":
		// The stream ends; the reconnect resumes from lastID.
	case ev.Type == "synced":
		w.synced = w.lastID
	case ev.Type == "put" && !ev.HasID && w.synced == 0:
		var d api.EventJSON
		_ = json.Unmarshal([]byte(ev.Data), &d)
		w.initial[d.Key] = string(d.Value)
	case ev.Type == "put" || ev.Type == "delete":
		if !ev.HasID { // more changes of its revision follow
			ev.ID = strconv.FormatUint(ev.change(t).Revision, 10)
		}
		w.changes = append(w.changes, ev)
	}
}

// goWatcher follows a watch with the Go client over NATS.
type goWatcher struct {
	mu      sync.Mutex
	initial map[string]string
	synced  uint64
	changes []api.Event
	lastID  uint64
	err     error
}

func (w *goWatcher) run(ctx context.Context, c *client.Client, prefix string) {
	w.mu.Lock()
	w.initial = map[string]string{}
	w.mu.Unlock()
	for ev, err := range c.Watch(ctx, prefix, client.WatchProgress(100*time.Millisecond)) {
		w.mu.Lock()
		switch {
		case err != nil:
			if ctx.Err() == nil {
				w.err = err
			}
		case ev.ID != 0 && ev.ID < w.lastID:
			w.err = fmt.Errorf("event %+v: id goes back from %d", ev, w.lastID)
		case ev.Type == api.EventSynced:
			w.synced = ev.ID
		case ev.Type == api.EventPut && ev.ID == 0:
			w.initial[ev.Key] = string(ev.Value)
		case ev.Type == api.EventPut, ev.Type == api.EventDelete:
			w.changes = append(w.changes, ev)
		}
		w.lastID = max(w.lastID, ev.ID)
		stop := w.err != nil
		w.mu.Unlock()
		if stop {
			return
		}
	}
}

// checkFeed checks what a watcher saw against the acknowledged writes:
// the initial state is the prefix's state at synced, and the changes are
// exactly the writes of the prefix after synced, once each, in revision
// order, with their keys, ops and values.
func checkFeed(t *testing.T, name string, writes []ackedWrite, prefix string, initial map[string]string, synced uint64, changes []ackedWrite) {
	t.Helper()
	state := map[string]string{}
	var want []ackedWrite
	for _, w := range writes {
		if !strings.HasPrefix(w.key, prefix) {
			continue
		}
		if w.rev <= synced {
			if w.del {
				delete(state, w.key)
			} else {
				state[w.key] = w.value
			}
			continue
		}
		want = append(want, w)
	}
	if !maps.Equal(state, initial) {
		t.Fatalf("%s: initial state at %d is %v, want %v", name, synced, initial, state)
	}
	if len(changes) != len(want) {
		t.Fatalf("%s: %d changes after %d, want %d", name, len(changes), synced, len(want))
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("%s: change %d is %+v, want %+v", name, i, changes[i], want[i])
		}
	}
}

// TestWatchExactlyOnceAcrossFaults: many watchers, over NATS with the Go
// client and over SSE through two gateways, each see every acknowledged
// write of their prefix exactly once, in revision order, and nothing else,
// while a replica is paused, another is stopped and started again, and the
// gateway an SSE watcher is on is shut down (it resumes on the other with
// Last-Event-ID).
func TestWatchExactlyOnceAcrossFaults(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 3, WatchProgress: 100 * time.Millisecond})
	var writes []ackedWrite
	write := func(i int) {
		key := "x/" + strconv.Itoa(i%7)
		if i%5 == 0 {
			key = "y/" + strconv.Itoa(i%3) // outside the prefix
		}
		if i%4 == 3 {
			r := do(t, "DELETE", s.URL+"/v1/kv/"+key, "")
			var w api.WriteJSON
			if r.Status != 200 || json.Unmarshal([]byte(r.Body), &w) != nil {
				t.Fatalf("DELETE %s: %d %s", key, r.Status, r.Body)
			}
			writes = append(writes, ackedWrite{key: key, rev: w.Revision, del: true})
			return
		}
		value := "v" + strconv.Itoa(i)
		writes = append(writes, ackedWrite{key: key, value: value, rev: put(t, s, key, value).Revision})
	}
	for i := range 10 {
		write(i)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gateways := make([]string, 2)
	stops := make([]func(), 2)
	for i := range gateways {
		front, err := stack.NewFront(s.Env.Conn.Conn, s.Env.Stream.Name(), wire.Subjects{}, gateway.Config{WatchProgress: 100 * time.Millisecond}, false)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gctx, gcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- front.Gateway.Serve(gctx, ln) }()
		gateways[i] = "http://" + ln.Addr().String()
		var once sync.Once
		stops[i] = func() {
			once.Do(func() {
				gcancel()
				if err := <-done; err != nil {
					t.Errorf("gateway %d: %v", i, err)
				}
				_ = front.Close()
			})
		}
		defer stops[i]()
	}

	c := client.New(s.Transport)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	gos := make([]*goWatcher, 12)
	for i := range gos {
		gos[i] = &goWatcher{}
		wg.Add(1)
		go func() { defer wg.Done(); gos[i].run(ctx, c, "x/") }()
	}
	sses := make([]*sseWatcher, 4)
	for i := range sses {
		sses[i] = &sseWatcher{}
		wg.Add(1)
		go func() { defer wg.Done(); sses[i].run(t, ctx, gateways, "x/") }()
	}
	var all []interface{ state() (uint64, error) }
	for _, w := range gos {
		all = append(all, w)
	}
	for _, w := range sses {
		all = append(all, w)
	}
	synced := func() bool {
		for i, w := range all {
			synced, err := w.state()
			if err != nil {
				t.Fatalf("watcher %d stopped before it synced: %v", i, err)
			}
			if synced == 0 {
				return false
			}
		}
		return true
	}
	testenv.Eventually(t, 20*time.Second, "every watcher synced", synced)

	for i := 10; i < 200; i++ {
		switch i {
		case 40:
			s.Replica(t, "r2").Replicator().Pause()
		case 70:
			s.StopReplica(t, "r1")
		case 100:
			stops[0]() // the SSE watchers on gateway 0 move to gateway 1
		case 130:
			if err := s.Stack.StartReplica("r1"); err != nil {
				t.Fatal(err)
			}
		case 160:
			s.Replica(t, "r2").Replicator().Resume()
		}
		write(i)
	}
	last := writes[len(writes)-1].rev
	testenv.Eventually(t, 30*time.Second, "every watcher at the last write", func() bool {
		for _, w := range gos {
			w.mu.Lock()
			ok := w.lastID >= last || w.err != nil
			w.mu.Unlock()
			if !ok {
				return false
			}
		}
		for _, w := range sses {
			w.mu.Lock()
			ok := w.lastID >= last || w.err != nil
			w.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	})
	cancel()
	wg.Wait()
	for i, w := range gos {
		if w.err != nil {
			t.Fatalf("go watcher %d: %v", i, w.err)
		}
		var got []ackedWrite
		for _, ev := range w.changes {
			got = append(got, ackedWrite{key: ev.Key, value: string(ev.Value), rev: ev.ID, del: ev.Type == api.EventDelete})
		}
		checkFeed(t, fmt.Sprintf("go watcher %d", i), writes, "x/", w.initial, w.synced, got)
	}
	connects := 0
	for _, w := range sses {
		connects += w.connects
	}
	if connects <= len(sses) {
		t.Fatalf("the SSE watchers connected %d times: none moved to the other gateway", connects)
	}
	for i, w := range sses {
		if w.err != nil {
			t.Fatalf("SSE watcher %d: %v", i, w.err)
		}
		var got []ackedWrite
		for _, ev := range w.changes {
			d := ev.change(t)
			rev, _ := strconv.ParseUint(ev.ID, 10, 64)
			if rev != d.Revision {
				t.Fatalf("SSE watcher %d: event %+v: id and revision differ", i, ev)
			}
			got = append(got, ackedWrite{key: d.Key, value: string(d.Value), rev: rev, del: ev.Type == "delete"})
		}
		checkFeed(t, fmt.Sprintf("SSE watcher %d", i), writes, "x/", w.initial, w.synced, got)
	}
}

// TestWatchReadsYourWrite: a session writes while replica r1 is paused and
// then opens a watch that r1 serves: the watch waits for the session's
// token, and its initial state has the write.
func TestWatchReadsYourWrite(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2, WatchProgress: 100 * time.Millisecond})
	put(t, s, "cart/1", "old")
	r1 := s.Replica(t, "r1").Replicator()
	r1.Pause()
	defer r1.Resume()
	w := put(t, s, "cart/1", "mine")
	type opened struct {
		status int
		body   string
		stream *sseStream
	}
	got := make(chan opened, 1)
	go func() {
		status, body, stream := openWatch(t, s.URL+"/v1/watch?prefix=cart/", "Cookie", w.Token, api.HeaderReplica, "r1", api.HeaderWait, "10s")
		got <- opened{status, body, stream}
	}()
	testenv.Eventually(t, 10*time.Second, "the watch to wait on r1 for the token", func() bool { return r1.Waiting() > 0 })
	if r1.Applied() >= w.Revision {
		t.Fatalf("r1 applied %d while paused, the write is %d", r1.Applied(), w.Revision)
	}
	r1.Resume()
	o := <-got
	if o.status != 200 {
		t.Fatalf("watch: %d %s", o.status, o.body)
	}
	ev := o.stream.next(t, 10*time.Second)
	if d := ev.change(t); ev.Type != "put" || d.Key != "cart/1" || string(d.Value) != "mine" || d.Revision != w.Revision {
		t.Fatalf("initial event %+v, want the session's own write %d", ev, w.Revision)
	}
	if ev := o.stream.next(t, 10*time.Second); ev.Type != "synced" {
		t.Fatalf("event %+v, want synced", ev)
	}
}

// TestWatchSlowConsumer, over the NATS protocol as any client speaks it: a
// watcher that stops acknowledging is cut off with an error event once
// the replica's window of unacknowledged events is full and it stays
// silent; it resumes with its last event id and gets the rest, once.
// A watcher that falls behind the watch window is cut off as a slow
// consumer, and its resume point is then gone (410): it lists again.
func TestWatchSlowConsumer(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1, WatchWindow: 20, WatchUnacked: 4, WatchClientTimeout: 300 * time.Millisecond})
	nc := s.Env.Conn.Conn
	subjects := wire.Subjects{}
	start := func(req api.WatchRequest) (*nats.Subscription, string, error) {
		inbox := nc.NewInbox()
		sub, err := nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
		reply, err := nc.RequestMsg(wire.WatchMsg(subjects.ReplicaWatch("r1"), req, inbox), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		control, _, err := wire.DecodeWatchReply(reply)
		return sub, control, err
	}
	recv := func(sub *nats.Subscription) api.Event {
		t.Helper()
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, ev, err := wire.DecodeEvent(m)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	var revs []uint64
	var tok api.Token
	for i := range 3 {
		w := put(t, s, "s/"+strconv.Itoa(i), "v")
		revs = append(revs, w.Revision)
		var err error
		if tok, err = api.ParseToken(w.Token); err != nil {
			t.Fatal(err)
		}
	}
	// Silent: 3 records and synced fit the window of 4; the writes after
	// them wait for an acknowledgement that never comes.
	sub, _, err := start(api.WatchRequest{Prefix: "s/", Token: tok, Progress: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if ev := recv(sub); ev.Type != api.EventPut {
			t.Fatalf("event %+v, want a record", ev)
		}
	}
	synced := recv(sub)
	if synced.Type != api.EventSynced {
		t.Fatalf("event %+v, want synced", synced)
	}
	for i := range 3 {
		revs = append(revs, put(t, s, "s/"+strconv.Itoa(i), "w").Revision)
	}
	ev := recv(sub)
	if ev.Type != api.EventError || !errors.Is(ev.Err, api.ErrUnavailable) || !strings.Contains(ev.Err.Error(), "no acknowledgement") {
		t.Fatalf("event %+v, want the watch cut off for not acknowledging", ev)
	}
	// Resumed from its last id, acknowledging, it gets every later change once.
	sub, control, err := start(api.WatchRequest{Prefix: "s/", Resume: true, After: synced.ID})
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, want := range revs[3:] {
		ev := recv(sub)
		n++
		for ev.Type == api.EventProgress {
			ev = recv(sub)
			n++
		}
		_ = nc.Publish(control, wire.WatchControlMsg(n, false))
		if ev.Type != api.EventPut || ev.ID != want {
			t.Fatalf("event %+v, want the put at %d", ev, want)
		}
	}

	// Behind the window: unacknowledged, the watch stalls at 4 events
	// while 60 more writes push its position out of the window of 20 (it
	// holds at most the few it took from the window before it stalled).
	sub, control, err = start(api.WatchRequest{Prefix: "s/", Resume: true, After: revs[len(revs)-1], Progress: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		put(t, s, "s/"+strconv.Itoa(i), "z")
		_ = nc.Publish(control, wire.WatchControlMsg(0, false)) // alive, acknowledging nothing
	}
	n = 0
	var lastID uint64
	for {
		ev := recv(sub)
		n++
		_ = nc.Publish(control, wire.WatchControlMsg(n, false))
		if ev.Type == api.EventError {
			if !errors.Is(ev.Err, api.ErrResumePointCompacted) || !strings.Contains(ev.Err.Error(), "slow consumer: fell more than") {
				t.Fatalf("error %v, want a slow consumer cut off", ev.Err)
			}
			break
		}
		lastID = ev.ID
	}
	if _, _, err := start(api.WatchRequest{Prefix: "s/", Resume: true, After: lastID}); !errors.Is(err, api.ErrResumePointCompacted) {
		t.Fatalf("resume at %d behind the window: %v, want %v", lastID, err, api.ErrResumePointCompacted)
	}
	if _, _, err := start(api.WatchRequest{Prefix: "s/"}); err != nil {
		t.Fatalf("listing again: %v", err)
	}
}

// TestWatchNoReplica: with no replica serving, a watch fails within its
// wait with 503 before any stream starts, rather than hang.
func TestWatchNoReplica(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 1})
	s.StopReplica(t, "r1")
	status, body, _ := openWatch(t, s.URL+"/v1/watch?prefix=a/", api.HeaderWait, "500ms")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, api.CodeUnavailable) {
		t.Fatalf("watch with no replica: %d %s, want 503 %s", status, body, api.CodeUnavailable)
	}
}

// TestWatchExpiry: a key whose time to live runs out is a delete event of
// the watch, at the revision of the message it expires at, after the put.
func TestWatchExpiry(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Replicas: 2, WatchProgress: 100 * time.Millisecond})
	status, body, w := openWatch(t, s.URL+"/v1/watch?prefix=t/")
	if status != 200 {
		t.Fatalf("watch: %d %s", status, body)
	}
	if ev := w.next(t, 10*time.Second); ev.Type != "synced" {
		t.Fatalf("event %+v, want synced", ev)
	}
	keys := []string{"t/a", "t/b", "t/c"}
	var last api.WriteJSON
	for _, k := range keys {
		last = put(t, s, k, "x", api.HeaderTTL, "1s")
	}
	for _, k := range keys {
		if ev := w.next(t, 10*time.Second); ev.Type != "put" || ev.change(t).Key != k || !ev.HasID {
			t.Fatalf("event %+v, want the put of %s", ev, k)
		}
	}
	// The three expire, likely at one message: the changes of one
	// revision name it only on the last of them.
	expired := map[string]bool{}
	var d api.EventJSON
	var ev sseEvent
	for range keys {
		ev = w.next(t, 20*time.Second)
		d = ev.change(t)
		if ev.Type != "delete" || !strings.HasPrefix(d.Key, "t/") || d.Revision <= last.Revision || expired[d.Key] {
			t.Fatalf("event %+v, want an expiry after %d", ev, last.Revision)
		}
		expired[d.Key] = true
		if ev.HasID && ev.ID != strconv.FormatUint(d.Revision, 10) {
			t.Fatalf("event %+v: id is not its revision", ev)
		}
	}
	if !ev.HasID {
		t.Fatalf("the last expiry %+v names no id", ev)
	}
	if r := do(t, "GET", s.URL+"/v1/kv/t/c", "", api.HeaderToken, d.Token); r.Status != 404 {
		t.Fatalf("read at the last expiry's token: %d, want 404", r.Status)
	}
}
