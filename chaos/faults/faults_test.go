package faults_test

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/chaos/faults"
)

// echo serves a TCP echo server until the test ends.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg string, wait time.Duration) (string, error) {
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, len(msg))
	n, err := io.ReadFull(c, buf)
	return string(buf[:n]), err
}

func TestProxyPartitionAndHeal(t *testing.T) {
	p, err := faults.NewProxy(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "before", 5*time.Second); err != nil || got != "before" {
		t.Fatalf("before the partition: %q, %v", got, err)
	}
	p.Partition()
	if got, err := roundTrip(c, "during", 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("during the partition: got %q, %v; want a timeout", got, err)
	}
	// A connection opened during the partition goes nowhere, and is
	// closed by the heal.
	late, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	for deadline := time.Now().Add(5 * time.Second); p.Pending() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the proxy did not accept the connection opened during the partition")
		}
		time.Sleep(time.Millisecond)
	}
	p.Heal()
	// What was sent during the partition arrives after the heal.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len("during"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "during" {
		t.Fatalf("after the heal: %q, %v", buf, err)
	}
	if _, err := roundTrip(late, "x", 5*time.Second); err == nil {
		t.Fatal("a connection accepted during the partition still works after the heal")
	}
	if got, err := roundTrip(c, "after", 5*time.Second); err != nil || got != "after" {
		t.Fatalf("after the heal: %q, %v", got, err)
	}
}

func TestProcLifecycle(t *testing.T) {
	dir := t.TempDir()
	p := &faults.Proc{Name: "sleeper", Path: "/bin/sleep", Args: []string{"60"}, Log: filepath.Join(dir, "sleep.log")}
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
	if err := p.Kill(); !errors.Is(err, faults.ErrNotRunning) {
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
	p := &faults.Proc{Name: "quitter", Path: "/bin/sh", Args: []string{"-c", "exit 3"}, Log: filepath.Join(t.TempDir(), "q.log")}
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

// TestCopyRestoreFlip: a copied tree comes back byte for byte after the
// original changed, and flipped bits change exactly the bytes at the
// offsets returned, one bit each.
func TestCopyRestoreFlip(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	if err := os.MkdirAll(filepath.Join(store, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	orig := []byte(strings.Repeat("tidemark", 512))
	file := filepath.Join(store, "sub", "f")
	if err := os.WriteFile(file, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "copy")
	if err := faults.CopyDir(store, cp); err != nil {
		t.Fatal(err)
	}
	if err := faults.CopyDir(store, cp); err == nil {
		t.Fatal("CopyDir over an existing copy succeeded")
	}
	if err := os.WriteFile(file, []byte("later"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, "new"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := faults.RestoreDir(cp, store); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(orig) {
		t.Fatalf("restored file differs: %q", got[:16])
	}
	if _, err := os.Stat(filepath.Join(store, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file written after the copy survived the restore: %v", err)
	}
	offs, err := faults.FlipBits(file, rand.New(rand.NewPCG(1, 2)), 6)
	if err != nil {
		t.Fatal(err)
	}
	got, err = os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	changed := map[int64]bool{}
	for i := range got {
		if d := got[i] ^ orig[i]; d != 0 {
			if d&(d-1) != 0 {
				t.Fatalf("byte %d: more than one bit flipped (%08b)", i, d)
			}
			changed[int64(i)] = true
		}
	}
	for _, o := range offs {
		if !changed[o] && countOf(offs, o)%2 == 1 {
			t.Fatalf("offset %d not changed", o)
		}
	}
	if len(changed) == 0 || len(changed) > len(offs) {
		t.Fatalf("%d bytes changed for offsets %v", len(changed), offs)
	}
}

func countOf(s []int64, v int64) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}
