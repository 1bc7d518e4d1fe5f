package replica_test

import (
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testenv"
)

// The replica that stores a snapshot for another logs how long it took as
// a duration with its unit, and its size in bytes.
func TestSnapshotStoredLogsUnits(t *testing.T) {
	f := newFixture(t)
	var logs testenv.LogBuffer
	f.logs = &logs
	r1 := f.start(t, "r1", true, true)
	waitReady(t, r1)
	waitApplied(t, r1, f.write(t, 100, 100, "a"))
	f.purge(t, 10)
	r2 := f.start(t, "r2", true, true)
	waitReady(t, r2)
	var stored map[string]any
	testenv.Eventually(t, testTimeout, "r1 logs the snapshot stored", func() bool {
		stored = logs.Last("snapshot stored")
		return stored != nil
	})
	took, _ := stored["took"].(string)
	if d, err := time.ParseDuration(took); err != nil || d <= 0 {
		t.Errorf("snapshot stored: took=%v (%T), want a duration with its unit", stored["took"], stored["took"])
	}
	if b, _ := stored["bytes"].(float64); b <= 0 {
		t.Errorf("snapshot stored: bytes=%v, want the snapshot's size", stored["bytes"])
	}
}
