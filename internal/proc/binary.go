package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ErrNoBinary means a program was looked for and not found.
var ErrNoBinary = errors.New("binary not found")

// Binary finds the program name. When explicit is set it is the answer,
// and it must exist. Otherwise the first of candidates that exists is
// (empty ones are skipped), and last name on PATH.
func Binary(name, explicit string, candidates ...string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("%s %s: %w", name, explicit, err)
		}
		return explicit, nil
	}
	for _, p := range candidates {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s: %w", name, ErrNoBinary)
}

// NextToSelf returns the path of a file called name in the directory of
// the running executable, or "" when that is unknown.
func NextToSelf(name string) string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Join(filepath.Dir(self), name)
}
