package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// devTimeout bounds how long `tidemark dev` may take to start serving.
const devTimeout = time.Minute

// devProcess is a `tidemark dev` the benchmark started.
type devProcess struct {
	natsURL, gatewayURL string
	dir                 string
	proc                *child
}

// startDev starts `tidemark dev` for mode in a process of its own, on free
// loopback ports and a temporary directory, and waits until its gateway is
// ready. stop ends it and removes its directory.
func startDev(ctx context.Context, cfg Config, mode string) (*devProcess, error) {
	dir, err := os.MkdirTemp(cfg.Dir, "tidemark-bench-dev-"+mode+"-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	d := &devProcess{dir: dir}
	if err := d.start(ctx, cfg, mode); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

func (d *devProcess) start(ctx context.Context, cfg Config, mode string) error {
	natsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	gwAddr, err := freeAddr()
	if err != nil {
		return err
	}
	d.natsURL, d.gatewayURL = "nats://"+natsAddr, "http://"+gwAddr
	logPath := filepath.Join(d.dir, "dev.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("dev log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor once started
	cmd := cfg.Command("dev", "--data", filepath.Join(d.dir, "data"), "--nats-listen", natsAddr, "--http", gwAddr,
		"--replicas", strconv.Itoa(cfg.Replicas), "--log-level", "warn",
		"--set", "dev.durable="+strconv.FormatBool(mode == ModeDurable))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if d.proc, err = startChild(cmd); err != nil {
		return fmt.Errorf("tidemark dev: %w", err)
	}
	if err := d.waitReady(ctx); err != nil {
		return fmt.Errorf("tidemark dev: %w; its log: %s", err, tail(logPath, 2000))
	}
	return nil
}

// stop ends the process, if it was started, and removes its directory.
func (d *devProcess) stop() {
	if d.proc != nil {
		d.proc.stop()
	}
	_ = os.RemoveAll(d.dir)
}

// waitReady polls the gateway's /readyz until it answers 200.
func (d *devProcess) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, devTimeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.gatewayURL+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-d.proc.done:
			return fmt.Errorf("exited before it was ready: %v", d.proc.err)
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v: %w", devTimeout, ctx.Err())
		}
	}
}

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// tail returns the last n bytes of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}
