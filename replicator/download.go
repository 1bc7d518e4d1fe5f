package replicator

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// DefaultProgressEvery is how often a snapshot download logs how far it
// has got.
const DefaultProgressEvery = 5 * time.Second

// A SizedReader is a snapshot whose size is known. A Bootstrapper that
// hands restore one (see WithSize) has the download's progress, in the log
// and in Bootstrapping, say how much of the whole has arrived.
type SizedReader interface {
	io.Reader
	// Size is the snapshot's size in bytes.
	Size() int64
}

// WithSize returns rd as a SizedReader of size bytes.
func WithSize(rd io.Reader, size int64) SizedReader { return sized{rd, size} }

type sized struct {
	io.Reader
	size int64
}

func (s sized) Size() int64 { return s.size }

// download counts the bytes of a snapshot as restore reads them, and logs
// how far it has got every DefaultProgressEvery. Progress is safe to call
// while Read runs.
type download struct {
	rd      io.Reader
	total   int64 // 0: unknown
	got     atomic.Int64
	log     zerolog.Logger
	every   time.Duration
	start   time.Time
	lastLog time.Time
}

func newDownload(rd io.Reader, log zerolog.Logger) *download {
	d := &download{rd: rd, log: log, every: DefaultProgressEvery, start: time.Now()}
	if s, ok := rd.(SizedReader); ok && s.Size() > 0 {
		d.total = s.Size()
	}
	d.lastLog = d.start
	return d
}

func (d *download) Read(p []byte) (int, error) {
	n, err := d.rd.Read(p)
	got := d.got.Add(int64(n))
	if now := time.Now(); now.Sub(d.lastLog) >= d.every {
		d.lastLog = now
		d.log.Info().Str("received", d.Progress()).Int64("received_bytes", got).
			Str("elapsed", now.Sub(d.start).Round(time.Millisecond).String()).Msg("receiving a snapshot")
	}
	return n, err
}

// Progress says how much has arrived, with units: "12.5 MiB of 40.0 MiB",
// or "12.5 MiB" when the size is unknown.
func (d *download) Progress() string {
	got := d.got.Load()
	if d.total > 0 {
		return FormatBytes(got) + " of " + FormatBytes(d.total)
	}
	return FormatBytes(got)
}

// FormatBytes formats n bytes with a binary unit: "512 B", "1.5 KiB",
// "12.5 MiB", "3.0 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
