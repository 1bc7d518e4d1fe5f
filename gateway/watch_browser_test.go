package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tidemark/tidemark/internal/stacktest"
	"github.com/tidemark/tidemark/internal/testenv"
)

// waitWatchPage polls the JavaScript condition cond in the example page
// until it holds, or fails the test saying what it waited for and what
// the page showed.
func waitWatchPage(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("state").textContent + ": " + [...document.querySelectorAll("#items li")].map(l => l.innerText.replace(/\s+/g, " ")).join(" | ")`))
		t.Fatalf("page: waiting for %s: %v; page shows %s", what, err, shown)
	}
}

// shows is a JavaScript condition: the page lists key with value.
func shows(key, value string) string {
	return fmt.Sprintf(`(document.querySelector('#items li[data-key=%q]') || {dataset: {}}).dataset.value === %q`, key, value)
}

// TestWatchPageBrowser drives two windows of the example page (separate
// browser sessions, so separate cookies) in headless Chromium: a put made
// with curl shows in both; a put made with one page's form shows in that
// page at once, even with the other replica paused, because the put's
// session token (its cookie) makes the page's watch include it; the other
// page shows it once its replica has it.
func TestWatchPageBrowser(t *testing.T) {
	browser := headlessBrowser(t)
	s := stacktest.Start(t, stacktest.Options{Replicas: 2, WatchProgress: 200 * time.Millisecond})
	if err := chromedp.Do(browser, chromedp.Navigate("about:blank")); err != nil { // starts the browser
		t.Fatal(err)
	}
	writer, cancelWriter := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer cancelWriter()
	other, cancelOther := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer cancelOther()
	open := func(page context.Context) {
		t.Helper()
		if err := chromedp.Do(page, chromedp.Navigate(s.URL+"/examples/watch?prefix=todo/")); err != nil {
			t.Fatalf("open the example page: %v", err)
		}
		waitWatchPage(t, page, "the watch live", `document.getElementById("state").dataset.state === "live"`)
	}
	open(writer)
	var serving string // the replica that serves the writer's watch
	testenv.Eventually(t, 10*time.Second, "a replica serving the writer's watch", func() bool {
		for _, id := range []string{"r1", "r2"} {
			if s.Replica(t, id).Watches() == 1 {
				serving = id
				return true
			}
		}
		return false
	})
	open(other)
	put(t, s, "todo/milk", "2 litres")
	put(t, s, "elsewhere", "not listed")
	for _, page := range []context.Context{writer, other} {
		waitWatchPage(t, page, "a put made elsewhere", shows("todo/milk", "2 litres"))
	}

	// The writer's watch stays behind on its paused replica: only the
	// put's token brings its own write.
	lag := s.Replica(t, serving).Replicator()
	lag.Pause()
	defer lag.Resume()
	if _, err := chromedp.Run(writer, chromedp.Evaluate[bool](`document.getElementById("key").value = "bread";
		document.getElementById("value").value = "one loaf";
		document.querySelector("#add button").click(); true`)); err != nil {
		t.Fatalf("put with the form: %v", err)
	}
	waitWatchPage(t, writer, "the writer's own put, with its replica paused", shows("todo/bread", "one loaf"))
	lag.Resume()
	waitWatchPage(t, other, "the put in the other window", shows("todo/bread", "one loaf"))
	n, err := chromedp.Run(other, chromedp.Evaluate[int](`document.querySelectorAll("#items li").length`))
	if err != nil || n != 2 {
		t.Fatalf("other page lists %d items (%v), want 2 (nothing outside the prefix)", n, err)
	}
}
