package proc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// healthClient bounds each poll of WaitHTTP.
var healthClient = &http.Client{Timeout: 2 * time.Second}

// WaitHTTP polls url every 100 ms until it answers 200, p exits or timeout
// passes.
func WaitHTTP(ctx context.Context, p *Proc, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil); err == nil {
			if resp, err := healthClient.Do(req); err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited before it was ready (see %s)", p.Name, p.Log)
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s (see %s): %w", p.Name, url, p.Log, ctx.Err())
		}
	}
}

// FreeAddr returns a loopback address whose port was free at the time of
// the call.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
