// Package faults injects faults into the files of a stopped process's
// store: it copies a store aside and puts it back (lost writes), and flips
// bits in a file (corruption). The processes themselves are run by package
// internal/proc and their connections cut by package internal/netproxy.
package faults

import (
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
)

// CopyDir copies the directory tree src to dst, which must not exist:
// regular files and directories, with their permissions. It is meant for
// the store of a stopped process.
func CopyDir(src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("copy %s: %s exists", src, dst)
	}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, info.Mode().Perm())
		case info.Mode().IsRegular():
			return copyFile(path, to, info.Mode().Perm())
		default:
			return fmt.Errorf("copy %s: %s is neither a file nor a directory", src, path)
		}
	})
}

func copyFile(from, to string, perm fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return fmt.Errorf("copy %s: %w", from, err)
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// RestoreDir replaces the directory dst with the copy src: dst is removed
// and src renamed to it.
func RestoreDir(src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("restore %s: %w", dst, err)
	}
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("restore %s: %w", dst, err)
	}
	return os.Rename(src, dst)
}

// FlipBits flips one random bit at each of n random offsets of the file at
// path, in place, and returns the offsets, ascending.
func FlipBits(path string, rng *rand.Rand, n int) ([]int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() == 0 {
		return nil, fmt.Errorf("flip bits: %s is empty", path)
	}
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = rng.Int64N(info.Size())
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, offs[i]); err != nil {
			return nil, fmt.Errorf("flip bits: %s: %w", path, err)
		}
		b[0] ^= 1 << rng.IntN(8)
		if _, err := f.WriteAt(b, offs[i]); err != nil {
			return nil, fmt.Errorf("flip bits: %s: %w", path, err)
		}
	}
	sort.Slice(offs, func(a, b int) bool { return offs[a] < offs[b] })
	return offs, f.Sync()
}
