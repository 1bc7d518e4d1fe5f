package netproxy_test

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/netproxy"
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
	p, err := netproxy.Start(echo(t))
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
