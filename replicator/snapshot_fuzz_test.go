package replicator

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func encodeSnapshot(t testing.TB, id string, applied uint64, kvs ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	sw := newSnapshotWriter(&buf, id, applied)
	for _, kv := range kvs {
		if err := sw.entry([]byte(kv[0]), []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.finish(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decodeAll decodes a whole snapshot.
func decodeAll(b []byte) (snapshotHeader, [][2][]byte, error) {
	sr, err := newSnapshotReader(bytes.NewReader(b))
	if err != nil {
		return snapshotHeader{}, nil, err
	}
	var kvs [][2][]byte
	for {
		k, v, err := sr.next()
		if errors.Is(err, io.EOF) {
			return sr.header, kvs, nil
		}
		if err != nil {
			return sr.header, nil, err
		}
		kvs = append(kvs, [2][]byte{k, v})
	}
}

func TestSnapshotCodec(t *testing.T) {
	big := string(bytes.Repeat([]byte{0xa5}, 200<<10)) // read in growing steps
	b := encodeSnapshot(t, "3f9a0c21b7d4", 42, [2]string{"d/a", "pv"}, [2]string{"d/b", big}, [2]string{"m/applied", "\x00\x00\x00\x00\x00\x00\x00\x2a"}, [2]string{"z", ""})
	h, kvs, err := decodeAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h, (snapshotHeader{streamID: "3f9a0c21b7d4", applied: 42}); got != want {
		t.Fatalf("header=%+v, want %+v", got, want)
	}
	if got, want := len(kvs), 4; got != want {
		t.Fatalf("%d entries, want %d", got, want)
	}
	if got, want := string(kvs[1][1]), big; got != want {
		t.Fatalf("big value of %d bytes, want %d", len(got), len(want))
	}
	for _, tt := range []struct {
		name string
		key  []byte
		val  []byte
	}{
		{"empty key", nil, []byte("v")},
		{"key too long", make([]byte, maxSnapshotKey+1), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sw := newSnapshotWriter(io.Discard, "x", 1)
			if err := sw.entry(tt.key, tt.val); err == nil {
				t.Fatal("entry accepted")
			}
		})
	}
}

// FuzzSnapshotReader feeds arbitrary bytes to the snapshot decoder: it must
// not panic, and what it accepts must be exactly what the encoder writes
// for the same contents.
func FuzzSnapshotReader(f *testing.F) {
	f.Add(encodeSnapshot(f, "3f9a0c21b7d4", 42, [2]string{"d/a", "pv"}, [2]string{"m/applied", "\x00\x00\x00\x00\x00\x00\x00\x2a"}))
	f.Add(encodeSnapshot(f, "", 0))
	f.Add(encodeSnapshot(f, "id", 1, [2]string{"k", ""}))
	f.Add([]byte(snapshotMagic + "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"))
	f.Add([]byte(snapshotMagic + "\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01k\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, kvs, err := decodeAll(b)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		sw := newSnapshotWriter(&buf, h.streamID, h.applied)
		for _, kv := range kvs {
			if err := sw.entry(kv[0], kv[1]); err != nil {
				t.Fatalf("decoded entry does not encode: %v", err)
			}
		}
		if err := sw.finish(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), b) {
			t.Fatalf("re-encoded %x, decoded from %x", buf.Bytes(), b)
		}
	})
}
