package replicator

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// A multi-line Badger message (a level dump) is logged as one line: its
// lines joined with " | ", bounded in length, with the count of lines when
// cut.
func TestBadgerLoggerOneLine(t *testing.T) {
	var buf bytes.Buffer
	l := badgerLogger{zerolog.New(&buf)}

	l.Warningf("Level dump:\n  L0: 3 tables\n\n  L1: 7 tables\n")
	l.Errorf("one line %d", 1)
	var long strings.Builder
	long.WriteString("Compaction summary:")
	for range 200 {
		long.WriteString("\ntable 000042.sst: 1.2 MiB, keys a..z")
	}
	l.Warningf("%s", long.String())

	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != 3 {
		t.Fatalf("logged %d lines, want 3:\n%s", len(got), buf.String())
	}
	var msgs []string
	for _, line := range got {
		var e struct{ Message string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.ContainsAny(e.Message, "\r\n") {
			t.Fatalf("message %q spans lines", e.Message)
		}
		msgs = append(msgs, e.Message)
	}
	if want := "Level dump: | L0: 3 tables | L1: 7 tables"; msgs[0] != want {
		t.Errorf("multi-line message = %q, want %q", msgs[0], want)
	}
	if want := "one line 1"; msgs[1] != want {
		t.Errorf("one-line message = %q, want %q", msgs[1], want)
	}
	if !strings.HasPrefix(msgs[2], "Compaction summary: | table 000042.sst") ||
		!strings.HasSuffix(msgs[2], "(cut; 201 lines in all)") || len(msgs[2]) > maxBadgerMessage+40 {
		t.Errorf("long message (%d bytes) = %q, want it cut at %d bytes with the line count", len(msgs[2]), msgs[2], maxBadgerMessage)
	}
}
