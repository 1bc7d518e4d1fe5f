package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tidemark/tidemark/internal/proc"
)

// devTimeout bounds how long `tidemark dev` may take to start serving.
const devTimeout = time.Minute

// devProcess is a `tidemark dev` the benchmark started.
type devProcess struct {
	natsURL, gatewayURL string
	dir                 string
	proc                *proc.Proc
}

// startDev starts `tidemark dev` for mode in a process of its own, on free
// loopback ports and a temporary directory, and waits until its gateway is
// ready; args are added to its command line. stop ends it and removes its
// directory.
func startDev(ctx context.Context, cfg Config, mode string, args ...string) (*devProcess, error) {
	dir, err := os.MkdirTemp(cfg.Dir, "tidemark-bench-dev-"+mode+"-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	d := &devProcess{dir: dir}
	if err := d.start(ctx, cfg, mode, args); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

func (d *devProcess) start(ctx context.Context, cfg Config, mode string, extra []string) error {
	natsAddr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	gwAddr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	d.natsURL, d.gatewayURL = "nats://"+natsAddr, "http://"+gwAddr
	args := append([]string{"dev", "--data", filepath.Join(d.dir, "data"), "--nats-listen", natsAddr, "--http", gwAddr,
		"--replicas", strconv.Itoa(cfg.Replicas), "--log-level", "warn",
		"--set", "dev.durable=" + strconv.FormatBool(mode == ModeDurable)}, extra...)
	d.proc = command(cfg, "tidemark dev", filepath.Join(d.dir, "dev.log"), args...)
	if err := d.proc.Start(); err != nil {
		return err
	}
	if err := proc.WaitHTTP(ctx, d.proc, d.gatewayURL+"/readyz", devTimeout); err != nil {
		return fmt.Errorf("%w; its log: %s", err, d.proc.LogTail(2000))
	}
	return nil
}

// stop ends the process, if it was started, and removes its directory.
func (d *devProcess) stop() {
	if d.proc != nil {
		_ = d.proc.Close()
	}
	_ = os.RemoveAll(d.dir)
}

// command returns the tidemark binary of cfg run with args as a child
// process named name, logging to log.
func command(cfg Config, name, log string, args ...string) *proc.Proc {
	cmd := cfg.Command(args...)
	return &proc.Proc{Name: name, Path: cmd.Path, Args: cmd.Args[1:], Env: cmd.Env, Log: log}
}
