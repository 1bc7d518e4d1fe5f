package faults_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/chaos/faults"
)

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
