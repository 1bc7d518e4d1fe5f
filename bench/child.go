package bench

import (
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// childGrace is how long a child process may take to stop after SIGTERM
// before it is killed.
const childGrace = 30 * time.Second

// child is a process the benchmark started: `tidemark dev` or a replica.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // Wait's result, once done is closed
}

// startChild starts cmd and watches for its exit.
func startChild(cmd *exec.Cmd) (*child, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	return c, nil
}

// stop ends the process, if it still runs: SIGTERM, then SIGKILL after
// childGrace.
func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(childGrace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}
