package main

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/stacktest"
)

// TestRun runs the quickstart while every replica is held back: its reads
// can only succeed once the replicas have applied its writes, and then they
// return those writes, over HTTP and, with the exported token, over NATS.
func TestRun(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	for _, r := range s.Replicas {
		r.Replicator().Pause()
	}
	var resumed atomic.Bool
	timer := time.AfterFunc(300*time.Millisecond, func() {
		resumed.Store(true)
		for _, r := range s.Replicas {
			r.Replicator().Resume()
		}
	})
	t.Cleanup(func() {
		if timer.Stop() {
			for _, r := range s.Replicas {
				r.Replicator().Resume()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"--gateway", s.URL, "--nats", s.Server.ClientURL()}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if !resumed.Load() {
		t.Fatalf("run finished before the replicas were resumed:\n%s", stdout.String())
	}
	lines := bytes.Split(bytes.TrimSpace(stdout.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("output:\n%s\nwant two lines", stdout.String())
	}
	for i, want := range []string{"hello (revision ", "hello again (revision "} {
		if !bytes.HasPrefix(lines[i], []byte(want)) {
			t.Fatalf("line %d=%q, want it to start with %q", i+1, lines[i], want)
		}
	}
	if !bytes.HasSuffix(lines[1], []byte("over NATS)")) {
		t.Fatalf("line 2=%q, want the read over NATS", lines[1])
	}
}

func TestRunBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--nope"}, &stdout, &stderr); err == nil {
		t.Fatalf("run with an unknown flag: no error")
	}
	err := run(context.Background(), []string{"--gateway", "localhost"}, &stdout, &stderr)
	if got := fmt.Sprint(err); err == nil || !bytes.Contains([]byte(got), []byte("gateway URL")) {
		t.Fatalf("run with a bad gateway URL: err=%v", err)
	}
}
