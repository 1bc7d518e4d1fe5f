package proc_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/proc"
)

func TestProcLifecycle(t *testing.T) {
	dir := t.TempDir()
	p := &proc.Proc{Name: "sleeper", Path: "/bin/sleep", Args: []string{"60"}, Log: filepath.Join(dir, "sleep.log")}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.Running() {
		t.Fatal("not running after Start")
	}
	if err := p.Stop(); err != nil || !p.Stopped() {
		t.Fatalf("Stop: %v, Stopped()=%v", err, p.Stopped())
	}
	if err := p.Cont(); err != nil || p.Stopped() {
		t.Fatalf("Cont: %v, Stopped()=%v", err, p.Stopped())
	}
	pid := p.Pid()
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if p.Pid() == pid || !p.Running() {
		t.Fatalf("Restart: pid %d -> %d, running %v", pid, p.Pid(), p.Running())
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("running after Kill")
	}
	if err := p.Kill(); !errors.Is(err, proc.ErrNotRunning) {
		t.Fatalf("second Kill: %v, want ErrNotRunning", err)
	}
	if got, want := p.Starts(), 2; got != want {
		t.Fatalf("Starts()=%d, want %d", got, want)
	}
	if c := p.Crashes(); len(c) != 0 {
		t.Fatalf("Crashes()=%q after kills only", c)
	}
}

func TestProcCrashIsRecorded(t *testing.T) {
	p := &proc.Proc{Name: "quitter", Path: "/bin/sh", Args: []string{"-c", "exit 3"}, Log: filepath.Join(t.TempDir(), "q.log")}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("the process did not exit")
	}
	c := p.Crashes()
	if len(c) != 1 || !strings.Contains(c[0], "exit status 3") {
		t.Fatalf("Crashes()=%q, want one with exit status 3", c)
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
}
