package testenv

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
)

// LogBuffer collects what a logger (or a process's output) writes, for a
// test to read while the writing goroutines go on. The zero value is
// ready to use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Contains reports whether s was written.
func (l *LogBuffer) Contains(s string) bool { return strings.Contains(l.String(), s) }

// Lines returns the JSON log lines written so far whose message is msg,
// decoded, in order; lines that are not JSON objects are left out.
func (l *LogBuffer) Lines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(l.String(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["message"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// Last returns the last JSON log line whose message is msg, or nil.
func (l *LogBuffer) Last(msg string) map[string]any {
	lines := l.Lines(msg)
	if len(lines) == 0 {
		return nil
	}
	return lines[len(lines)-1]
}
