package gateway_test

import (
	"github.com/tidemark/tidemark/api"

	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tidemark/tidemark/internal/stacktest"
)

// EnvScreenshot names the PNG file the browser test writes a screenshot of
// the status page to, relative to the module's root; unset, it writes none.
const envScreenshot = "TIDEMARK_SCREENSHOT"

// headlessBrowser starts headless Chromium for the test, or skips it when there is
// no chromium on PATH.
func headlessBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("no chromium on PATH: the status page's browser test needs it (Debian: apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1440, 1000), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	return ctx
}

// waitPage polls the JavaScript condition cond in the page until it holds,
// or fails the test after timeout, saying what it waited for and what the
// replicas' rows showed then.
func waitPage(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		rows, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll("#replicas tbody tr")].map(r => r.innerText.replace(/\s+/g, " ")).join(" | ")`))
		t.Fatalf("page: waiting for %s: %v; replicas: %s", what, err, rows)
	}
}

// row is a JavaScript expression for the dataset of replica id's row.
func row(id string) string {
	return fmt.Sprintf(`(document.querySelector('#replicas tbody tr[data-replica=%q]') || {dataset: {}}).dataset`, id)
}

// TestStatusPageBrowser drives the status page in headless Chromium against
// a running stack: the page lists both replicas as ready; writes move the
// stream's last sequence, the replicas' applied sequence and the writer's
// requests; errors and read waits show; a paused replica is shown lagging
// with a lag bar, and ready with no lag again after Resume, while reads that
// waited for it fill the wait histogram. The page updates itself: it is
// loaded once.
func TestStatusPageBrowser(t *testing.T) {
	ctx := headlessBrowser(t)
	s := stacktest.Start(t, stacktest.Options{Replicas: 2})
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/status")); err != nil {
		t.Fatalf("open the status page: %v", err)
	}
	waitPage(t, ctx, "both replicas ready", fmt.Sprintf(`%s.state === "ready" && %s.state === "ready" && document.querySelectorAll("#replicas tbody tr").length === 2`, row("r1"), row("r2")))
	waitPage(t, ctx, "the writer answering", `!!document.querySelector('#writers tbody tr[data-state="answering"]')`)

	var w api.WriteJSON
	for i := range 10 {
		w = put(t, s, fmt.Sprintf("k%d", i), "v")
	}
	if r := do(t, "GET", s.URL+"/v1/kv/k1", "", api.HeaderToken, w.Token); r.Status != 200 {
		t.Fatalf("token read: status=%d", r.Status)
	}
	if r := do(t, "GET", s.URL+"/v1/kv/k1", "", api.HeaderToken, "garbage"); r.Status != 400 {
		t.Fatalf("bad token read: status=%d, want 400", r.Status)
	}
	waitPage(t, ctx, "the writes in the stream and replica figures", fmt.Sprintf(
		`Number(document.getElementById("stream-last").textContent.replace(/,/g, "")) >= %d && Number(%s.applied) >= %d && Number(%s.applied) >= %d && Number(document.querySelector("#writers tbody tr").dataset.requests) >= 10`,
		w.Revision, row("r1"), w.Revision, row("r2"), w.Revision))
	waitPage(t, ctx, "the bad token among the errors", `!!document.querySelector('#errors tbody tr[data-code="invalid_token"]')`)
	waitPage(t, ctx, "the read in the wait figures", `Number(document.getElementById("wait-reads").textContent.replace(/,/g, "")) >= 1 && document.querySelectorAll("#wait-hist svg rect").length === 12`)

	// r2 is held back; reads pinned to it with the latest token wait.
	r2 := s.Replica(t, "r2").Replicator()
	r2.Pause()
	defer r2.Resume()
	for i := range 3 {
		w = put(t, s, fmt.Sprintf("p%d", i), "v")
	}
	reads := make(chan error, 4)
	for range cap(reads) {
		go func() { reads <- pinnedRead(s.URL+"/v1/kv/p0", "r2", w.Token) }()
	}
	waitPage(t, ctx, "r2 lagging by 3 with a lag bar", fmt.Sprintf(
		`%s.state === "lagging" && Number(%s.lag) >= 3 && parseFloat(document.querySelector('#replicas tr[data-replica="r2"] .lagbar .bar span').style.width) > 0 && %s.state === "ready"`,
		row("r2"), row("r2"), row("r1")))
	r2.Resume()
	for range cap(reads) {
		if err := <-reads; err != nil {
			t.Fatal(err)
		}
	}
	waitPage(t, ctx, "r2 ready with no lag after Resume", fmt.Sprintf(`%s.state === "ready" && %s.lag === "0" && Number(%s.applied) >= %d`,
		row("r2"), row("r2"), row("r2"), w.Revision))
	// The pinned reads waited a second or more: bars above 300ms.
	waitPage(t, ctx, "the waits in the histogram", `[...document.querySelectorAll("#wait-hist svg rect")].slice(9).some(r => Number(r.dataset.count) > 0)`)

	if path := os.Getenv(envScreenshot); path != "" {
		screenshot(t, ctx, s, path)
	}
}

// pinnedRead reads url from replica with token, waiting up to 30s, and
// says what went wrong (it runs off the test's goroutine).
func pinnedRead(url, replica, token string) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set(api.HeaderToken, token)
	req.Header.Set(api.HeaderReplica, replica)
	req.Header.Set(api.HeaderWait, "30s")
	resp, err := stacktest.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("read pinned to %s: %w", replica, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("read pinned to %s: status=%d", replica, resp.StatusCode)
	}
	return nil
}

// screenshot holds r2 back again so that the picture shows a lagging
// replica, and writes the page as a PNG to path (relative to the module's
// root: the test runs in the package's directory).
func screenshot(t *testing.T, ctx context.Context, s *stacktest.Stack, path string) {
	t.Helper()
	r2 := s.Replica(t, "r2").Replicator()
	r2.Pause()
	defer r2.Resume()
	for i := range 25 {
		put(t, s, fmt.Sprintf("s%d", i), "v")
	}
	waitPage(t, ctx, "r2 lagging for the screenshot", fmt.Sprintf(`%s.state === "lagging" && Number(%s.lag) >= 25`, row("r2"), row("r2")))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join("..", path)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}
