package replicator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// A snapshot is every key of a replica's Badger database as one read
// transaction saw it, so the data and m/applied agree exactly. Its format
// (version 1), all integers big-endian or unsigned varints:
//
//	magic      "TMSNAP" 0x00 0x01
//	stream     uvarint length, then the stream identity (m/stream)
//	applied    uint64: m/applied of the transaction
//	entries    uvarint key length (1 to maxSnapshotKey), key,
//	           uvarint value length (up to maxSnapshotValue), value;
//	           in key order
//	end        uvarint 0
//	count      uint64: how many entries
//	crc        uint32: CRC-32C of every byte before it
//
// Nothing may follow the checksum. The entries include m/head, the
// identity of the message at applied (history.go), so that a replica that
// restores a snapshot verifies it against the stream like its own state. The header repeats what the data holds
// so that a reader can reject a snapshot of another stream before loading
// it, and Restore checks that the two agree after loading it.
const (
	snapshotMagic = "TMSNAP\x00\x01"
	// maxSnapshotKey is Badger's largest key.
	maxSnapshotKey = 65000
	// maxSnapshotValue is the largest value Badger stores with our options.
	maxSnapshotValue = DefaultValueLogFileSize
	// maxSnapshotStreamID bounds the stream identity in the header.
	maxSnapshotStreamID = 256
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Snapshot writes a consistent snapshot of the replica's database to w, as
// of one read transaction, and returns the applied sequence it holds. The
// apply loop goes on meanwhile; Close waits until Snapshot returns. It stops
// with ctx.Err() when ctx ends.
func (r *Replicator) Snapshot(ctx context.Context, w io.Writer) (applied uint64, err error) {
	r.dbMu.RLock()
	defer r.dbMu.RUnlock()
	if r.db == nil {
		return 0, r.notOpen()
	}
	if err := r.wrongReason(); err != nil {
		return 0, fmt.Errorf("snapshot: the replica does not serve: %w", err)
	}
	defer func() {
		if err != nil {
			err = r.storeFailed(err)
		}
	}()
	defer guard("snapshot", &err)
	txn := r.db.NewTransaction(false)
	defer txn.Discard()
	if applied, err = readApplied(txn); err != nil {
		return 0, err
	}
	id, err := readStreamID(txn)
	if err != nil {
		return 0, err
	}
	sw := newSnapshotWriter(w, id, applied)
	opts := badger.DefaultIteratorOptions
	opts.PrefetchSize = 64
	it := txn.NewIterator(opts)
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if n++; n%1024 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		item := it.Item()
		if err := item.Value(func(v []byte) error { return sw.entry(item.Key(), v) }); err != nil {
			return 0, fmt.Errorf("snapshot key %q: %w", item.Key(), err)
		}
	}
	if err := sw.finish(); err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	return applied, nil
}

func readStreamID(txn *badger.Txn) (string, error) {
	item, err := txn.Get(keyStream)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read stream id: %w", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return "", fmt.Errorf("read stream id: %w", err)
	}
	return string(v), nil
}

// Restore loads a snapshot written by Snapshot into dir, which must be
// empty or not exist, and returns its applied sequence. It checks the
// snapshot's integrity, that it belongs to the stream identity streamID
// (else ErrStreamMismatch too) and that its data agrees with its header;
// a snapshot that fails is rejected with ErrBadSnapshot. On any failure
// dir is removed. The loaded database is synced to disk and closed: open
// it with a Replicator.
func Restore(dir string, rd io.Reader, streamID string) (applied uint64, err error) {
	return restore(dir, rd, streamID, zerolog.Nop())
}

func restore(dir string, rd io.Reader, streamID string, log zerolog.Logger) (applied uint64, err error) {
	if err := emptyDir(dir); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	sr, err := newSnapshotReader(rd)
	if err != nil {
		return 0, err
	}
	h := sr.header
	if h.streamID != streamID {
		return 0, fmt.Errorf("%w: it holds stream id %q, want %q: %w", ErrBadSnapshot, h.streamID, streamID, ErrStreamMismatch)
	}
	opts := (&Replicator{cfg: Config{Dir: dir, SyncWrites: true}, log: log}).badgerOptions()
	db, err := badger.Open(opts)
	if err != nil {
		return 0, fmt.Errorf("restore: open badger %s: %w", dir, err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("restore: close badger %s: %w", dir, cerr)
		}
	}()
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for {
		k, v, err := sr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		if err := wb.Set(k, v); err != nil {
			return 0, fmt.Errorf("restore key %q: %w", k, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	applied, id, format, err := readMeta(db)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	case id != h.streamID || format != formatV1 || applied != h.applied:
		return 0, fmt.Errorf("%w: its data holds stream id %q, format %d, applied %d; its header says stream id %q, applied %d",
			ErrBadSnapshot, id, format, applied, h.streamID, h.applied)
	}
	// The identity of the message at applied (history.go) travels in the
	// data; Run verifies it against the stream before it applies more.
	var hd head
	var known bool
	if err := db.View(func(txn *badger.Txn) (err error) {
		hd, known, err = readHead(txn)
		return err
	}); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	if known && hd.seq != applied {
		return 0, fmt.Errorf("%w: its m/head names sequence %d, its applied is %d", ErrBadSnapshot, hd.seq, applied)
	}
	return applied, nil
}

// emptyDir creates dir, or checks that it is empty.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("directory %s is not empty", dir)
	}
	return nil
}

// snapshotWriter encodes a snapshot; the first error sticks.
type snapshotWriter struct {
	bw  *bufio.Writer
	w   io.Writer // bw and the checksum
	crc hash.Hash32
	n   uint64
	err error
}

func newSnapshotWriter(w io.Writer, streamID string, applied uint64) *snapshotWriter {
	bw := bufio.NewWriterSize(w, 64<<10)
	crc := crc32.New(crcTable)
	sw := &snapshotWriter{bw: bw, w: io.MultiWriter(bw, crc), crc: crc}
	sw.write([]byte(snapshotMagic))
	sw.uvarint(uint64(len(streamID)))
	sw.write([]byte(streamID))
	sw.write(binary.BigEndian.AppendUint64(nil, applied))
	return sw
}

func (sw *snapshotWriter) write(b []byte) {
	if sw.err == nil {
		_, sw.err = sw.w.Write(b)
	}
}

func (sw *snapshotWriter) uvarint(v uint64) {
	var b [binary.MaxVarintLen64]byte
	sw.write(b[:binary.PutUvarint(b[:], v)])
}

func (sw *snapshotWriter) entry(key, value []byte) error {
	switch {
	case len(key) == 0 || len(key) > maxSnapshotKey:
		return fmt.Errorf("key of %d bytes", len(key))
	case len(value) > maxSnapshotValue:
		return fmt.Errorf("value of %d bytes", len(value))
	}
	sw.uvarint(uint64(len(key)))
	sw.write(key)
	sw.uvarint(uint64(len(value)))
	sw.write(value)
	sw.n++
	return sw.err
}

func (sw *snapshotWriter) finish() error {
	sw.uvarint(0)
	sw.write(binary.BigEndian.AppendUint64(nil, sw.n))
	if sw.err == nil {
		_, sw.err = sw.bw.Write(binary.BigEndian.AppendUint32(nil, sw.crc.Sum32()))
	}
	if sw.err == nil {
		sw.err = sw.bw.Flush()
	}
	return sw.err
}

// snapshotHeader is what a snapshot says about itself.
type snapshotHeader struct {
	streamID string
	applied  uint64
}

// snapshotReader decodes a snapshot from outside input: every length is
// bounded, memory grows only with the bytes actually read, and the entries
// count as valid only once the checksum at the end has matched.
type snapshotReader struct {
	r      *bufio.Reader
	crc    hash.Hash32
	header snapshotHeader
	n      uint64
	done   bool
}

func newSnapshotReader(rd io.Reader) (*snapshotReader, error) {
	sr := &snapshotReader{r: bufio.NewReaderSize(rd, 64<<10), crc: crc32.New(crcTable)}
	magic, err := sr.read(len(snapshotMagic))
	if err != nil {
		return nil, err
	}
	if string(magic) != snapshotMagic {
		return nil, fmt.Errorf("%w: not a snapshot, or of an unknown version", ErrBadSnapshot)
	}
	n, err := sr.uvarint()
	if err != nil {
		return nil, err
	}
	if n > maxSnapshotStreamID {
		return nil, fmt.Errorf("%w: stream id of %d bytes", ErrBadSnapshot, n)
	}
	id, err := sr.read(int(n))
	if err != nil {
		return nil, err
	}
	applied, err := sr.read(8)
	if err != nil {
		return nil, err
	}
	sr.header = snapshotHeader{streamID: string(id), applied: binary.BigEndian.Uint64(applied)}
	return sr, nil
}

// next returns the next entry, or io.EOF once the end, the count and the
// checksum have been read and verified and the input has ended.
func (sr *snapshotReader) next() (key, value []byte, err error) {
	if sr.done {
		return nil, nil, io.EOF
	}
	kl, err := sr.uvarint()
	if err != nil {
		return nil, nil, err
	}
	if kl == 0 {
		return nil, nil, sr.end()
	}
	if kl > maxSnapshotKey {
		return nil, nil, fmt.Errorf("%w: key of %d bytes", ErrBadSnapshot, kl)
	}
	if key, err = sr.read(int(kl)); err != nil {
		return nil, nil, err
	}
	vl, err := sr.uvarint()
	if err != nil {
		return nil, nil, err
	}
	if vl > maxSnapshotValue {
		return nil, nil, fmt.Errorf("%w: value of %d bytes", ErrBadSnapshot, vl)
	}
	if value, err = sr.read(int(vl)); err != nil {
		return nil, nil, err
	}
	sr.n++
	return key, value, nil
}

func (sr *snapshotReader) end() error {
	count, err := sr.read(8)
	if err != nil {
		return err
	}
	if got := binary.BigEndian.Uint64(count); got != sr.n {
		return fmt.Errorf("%w: %d entries, the snapshot says %d", ErrBadSnapshot, sr.n, got)
	}
	want := sr.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(sr.r, sum[:]); err != nil {
		return sr.short(err)
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return fmt.Errorf("%w: checksum %08x, want %08x", ErrBadSnapshot, got, want)
	}
	// Read to the end: a transport may verify its own digest there.
	if _, err := sr.r.ReadByte(); err == nil {
		return fmt.Errorf("%w: data after the end", ErrBadSnapshot)
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("read snapshot: %w", err)
	}
	sr.done = true
	return io.EOF
}

// read reads exactly n bytes, growing its buffer only as bytes arrive.
func (sr *snapshotReader) read(n int) ([]byte, error) {
	var b []byte
	if n <= 64<<10 {
		b = make([]byte, n)
		if _, err := io.ReadFull(sr.r, b); err != nil {
			return nil, sr.short(err)
		}
	} else {
		var buf bytes.Buffer
		m, err := io.CopyN(&buf, sr.r, int64(n))
		if m < int64(n) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, sr.short(err)
		}
		b = buf.Bytes()
	}
	sr.crc.Write(b)
	return b, nil
}

func (sr *snapshotReader) uvarint() (uint64, error) {
	var b [binary.MaxVarintLen64]byte
	for i := range b {
		c, err := sr.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, sr.short(err)
		}
		b[i] = c
		if c < 0x80 {
			v, n := binary.Uvarint(b[:i+1])
			var canon [binary.MaxVarintLen64]byte
			if n <= 0 || binary.PutUvarint(canon[:], v) != n {
				return 0, fmt.Errorf("%w: bad length", ErrBadSnapshot)
			}
			sr.crc.Write(b[:i+1])
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: bad length", ErrBadSnapshot)
}

// short turns a premature end into ErrBadSnapshot and passes read errors on.
func (sr *snapshotReader) short(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated", ErrBadSnapshot)
	}
	return fmt.Errorf("read snapshot: %w", err)
}
