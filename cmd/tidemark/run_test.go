package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunCommandLine(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("gateway:\n  htp: \":1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		args    []string
		out     string // in stdout
		errText string // in the error; "" means success
	}{
		{"no command", nil, "", "usage"},
		{"version", []string{"version"}, "tidemark ", ""},
		{"help", []string{"help"}, "tidemark dev", ""},
		{"unknown command", []string{"serve"}, "", `unknown command "serve"`},
		{"bench is a tool", []string{"bench", "--mode", "fast"}, "", "run tidemark-bench instead"},
		{"chaos is a tool", []string{"chaos"}, "", "run tidemark-chaos instead"},
		{"unknown field", []string{"dev", "--set", "gateway.nope=1"}, "", "gateway.nope"},
		{"bad value", []string{"dev", "--replicas", "0"}, "", "dev.replicas"},
		{"bad duration", []string{"gateway", "--set", "gateway.max_wait=soon"}, "", "gateway.max_wait"},
		{"unknown yaml field", []string{"dev", "--config", bad}, "", "gateway.htp"},
		{"stray argument", []string{"dev", "extra"}, "", `unexpected argument "extra"`},
		{"bad --set", []string{"dev", "--set", "novalue"}, "", "name=value"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			if tt.errText == "" {
				if err != nil {
					t.Fatalf("run(%v)=%v", tt.args, err)
				}
			} else if err == nil || !strings.Contains(err.Error()+stderr.String(), tt.errText) {
				t.Fatalf("run(%v)=%v (stderr %q), want an error naming %q", tt.args, err, stderr.String(), tt.errText)
			}
			if !strings.Contains(stdout.String(), tt.out) {
				t.Fatalf("stdout %q lacks %q", stdout.String(), tt.out)
			}
		})
	}
}

// TestToolCommandsPointToTools: `tidemark bench` and `tidemark chaos` are
// usage errors (exit 2) that name the binary to run instead.
func TestToolCommandsPointToTools(t *testing.T) {
	for name, tool := range tools {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{name, "-h"}, &stdout, &stderr)
		if !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), tool) {
			t.Fatalf("tidemark %s: %v, stderr %q; want a usage error naming %s", name, err, stderr.String(), tool)
		}
	}
}
