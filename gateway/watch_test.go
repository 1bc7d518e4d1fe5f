package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"bufio"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/stacktest"
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
