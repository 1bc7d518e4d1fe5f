// Package tooltest checks the command line every measuring tool shares.
package tooltest

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// CommandLine checks a tool's run: -h succeeds and lists --tidemark, an
// unknown flag or a stray argument fails, and without a tidemark binary
// the tool says how to name one.
func CommandLine(t *testing.T, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	t.Helper()
	t.Setenv("PATH", t.TempDir())
	for _, tt := range []struct {
		name    string
		args    []string
		errText string // "" means success
	}{
		{"help", []string{"-h"}, ""},
		{"unknown flag", []string{"--nope"}, "nope"},
		{"stray argument", []string{"extra"}, `unexpected argument "extra"`},
		{"no tidemark", nil, "pass --tidemark PATH"},
		{"missing tidemark", []string{"--tidemark", "/nonexistent/tidemark"}, "/nonexistent/tidemark"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			if tt.errText == "" {
				if err != nil {
					t.Fatalf("run(%v)=%v", tt.args, err)
				}
				if !strings.Contains(stderr.String(), "-tidemark") {
					t.Fatalf("-h lists no --tidemark: %q", stderr.String())
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("run(%v)=%v, want an error naming %q", tt.args, err, tt.errText)
			}
		})
	}
}
