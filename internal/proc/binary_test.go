package proc_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tidemark/tidemark/internal/proc"
)

// TestBinary: an explicit path must exist and wins; otherwise the first
// existing candidate, then PATH, then ErrNoBinary.
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "prog")
	if err := os.WriteFile(file, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	t.Setenv("PATH", dir)
	for _, tt := range []struct {
		name, explicit string
		candidates     []string
		want           string
		err            bool
	}{
		{"explicit", file, []string{missing}, file, false},
		{"explicit missing", missing, []string{file}, "", true},
		{"candidate", "", []string{"", missing, file}, file, false},
		{"on PATH", "", []string{missing}, file, false},
	} {
		got, err := proc.Binary("prog", tt.explicit, tt.candidates...)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("%s: Binary=%q, %v; want %q (error %v)", tt.name, got, err, tt.want, tt.err)
		}
	}
	if _, err := proc.Binary("no-such-prog", "", missing); !errors.Is(err, proc.ErrNoBinary) {
		t.Fatalf("no binary anywhere: %v, want ErrNoBinary", err)
	}
}
