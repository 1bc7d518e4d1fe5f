package replicator_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tidemark/tidemark/internal/testenv"
	"github.com/tidemark/tidemark/replicator"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory, unmounted
// when the test ends, or skips the test when it cannot (not root, no
// mount namespace).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file in dir until the file system is full, then gives back
// leave bytes, and returns the file's path.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	var n int64
	for {
		m, err := f.Write(chunk)
		n += int64(m)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(max(n-leave, 0)); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDiskFull fills the replica's file system under it while it applies.
// Badger writes through memory maps, so without a guard the replica dies of
// SIGBUS (and would crash-loop on restart); it must instead stop serving
// with ErrDiskFull, and go on once space is freed.
func TestDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, 256<<20)
	env := testenv.Start(t)
	dir := filepath.Join(mnt, "replica")
	r := open(t, env, dir)
	run(t, r)
	var ws []write
	for i := range 10 {
		ws = append(ws, put(fmt.Sprintf("k%d", i), "before"))
	}
	waitApplied(t, r, publish(t, env, ws...))

	filler := fill(t, mnt, 512<<10)
	for i := range 300 {
		ws = append(ws, put(fmt.Sprintf("big%d", i), strings.Repeat("x", 32<<10)))
	}
	publishAsync(t, env, 11, ws[10:])
	testenv.Eventually(t, testTimeout, "the replica to stop with ErrDiskFull", func() bool {
		return errors.Is(r.Err(), replicator.ErrDiskFull)
	})
	if r.Ready() {
		t.Fatal("Ready with a full disk")
	}
	if !strings.Contains(r.Err().Error(), "disk full") {
		t.Fatalf("Err()=%v, want it to say disk full", r.Err())
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitServed(t, r, uint64(len(ws)))
	checkState(t, r, fold(ws), uint64(len(ws)), append(keysN("k", 10), keysN("big", 300)...))
}
