// Package proc runs programs as child processes that can be controlled
// from outside, as a fault does or a measurement needs: it starts a program
// in its own process group, kills it with SIGKILL, pauses it with SIGSTOP,
// resumes and restarts it, waits until it serves HTTP, and finds the
// binaries the tools run.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ErrNotRunning means the process is not running.
var ErrNotRunning = errors.New("process not running")

// DefaultStopTimeout is how long Close waits after SIGTERM before SIGKILL.
const DefaultStopTimeout = 10 * time.Second

// Proc is a program run as a child process, in its own process group so
// that signals meant for the parent never reach it. Its output goes to a
// log file, appended to across restarts. It is safe for concurrent use.
type Proc struct {
	// Name names the process in errors.
	Name string
	// Path and Args are the program and its arguments; Env its environment.
	Path string
	Args []string
	Env  []string
	// Log is the file that receives its stdout and stderr.
	Log string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	stopped bool          // SIGSTOPped
	ending  bool          // a kill or close is under way: the exit is expected
	starts  int
	crashes []string
}

// Start starts the process. It fails if it is running already.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s: already running", p.Name)
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: log: %w", p.Name, err)
	}
	fmt.Fprintf(f, "--- start %d at %s\n", p.starts+1, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = p.Env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("%s: start: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if !p.ending {
			msg := fmt.Sprintf("%s exited on its own at %s: %v", p.Name, time.Now().Format(time.RFC3339Nano), err)
			p.crashes = append(p.crashes, msg)
			fmt.Fprintf(f, "--- %s\n", msg)
		}
		p.mu.Unlock()
		_ = f.Close()
		close(done)
	}()
	p.cmd, p.done, p.stopped, p.ending = cmd, done, false, false
	p.starts++
	return nil
}

// Pid returns the process id, or 0 when it is not running.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process has been started and has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Exited returns a channel closed when the current process exits, or nil
// when none was started.
func (p *Proc) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Starts returns how many times the process was started.
func (p *Proc) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// signal sends sig to the process; it fails with ErrNotRunning when there
// is none.
func (p *Proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s: %w", p.Name, ErrNotRunning)
	}
	select {
	case <-p.done:
		// It exited on its own: forget it.
		p.cmd, p.done, p.stopped = nil, nil, false
		return fmt.Errorf("%s: %w", p.Name, ErrNotRunning)
	default:
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		p.ending = true
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: %v: %w", p.Name, sig, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.stopped = true
	case syscall.SIGCONT:
		p.stopped = false
	}
	return nil
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Proc) Kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	p.reap()
	return nil
}

// reap waits for the current process to exit and forgets it.
func (p *Proc) reap() {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return
	}
	<-done
	p.mu.Lock()
	if p.done == done {
		p.cmd, p.done, p.stopped = nil, nil, false
	}
	p.mu.Unlock()
}

// Restart kills the process with SIGKILL, if it runs, and starts it again.
func (p *Proc) Restart() error {
	if err := p.Kill(); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	return p.Start()
}

// Stop pauses the process with SIGSTOP.
func (p *Proc) Stop() error { return p.signal(syscall.SIGSTOP) }

// Cont resumes a paused process with SIGCONT.
func (p *Proc) Cont() error { return p.signal(syscall.SIGCONT) }

// Crashes lists the times the process exited without being killed or
// closed.
func (p *Proc) Crashes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.crashes...)
}

// Stopped reports whether the process is paused.
func (p *Proc) Stopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// Close ends the process: SIGCONT (in case it is paused), SIGTERM, and
// SIGKILL if it has not exited within DefaultStopTimeout. It is idempotent.
func (p *Proc) Close() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = p.signal(syscall.SIGCONT)
	_ = p.signal(syscall.SIGTERM)
	t := time.NewTimer(DefaultStopTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	p.reap()
	return nil
}

// LogTail returns the last n bytes of the process's log file, trimmed.
func (p *Proc) LogTail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}
