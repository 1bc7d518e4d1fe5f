package stream

import "testing"

func TestParseBatchAck(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		n          int
		seq        uint64
		ok         bool
	}{
		{"committed", `{"stream":"S","seq":42,"batch":"b","count":3}`, 3, 42, true},
		{"error", `{"stream":"S","error":{"code":400,"err_code":10176,"description":"atomic publish batch is incomplete"}}`, 3, 0, false},
		{"short count", `{"stream":"S","seq":42,"batch":"b","count":2}`, 3, 0, false},
		{"sequence too small", `{"stream":"S","seq":2,"batch":"b","count":3}`, 3, 0, false},
		{"not json", `nope`, 1, 0, false},
		{"empty", ``, 1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ack, err := ParseBatchAck([]byte(tc.data), tc.n)
			if got, want := err == nil, tc.ok; got != want {
				t.Fatalf("ParseBatchAck err=%v, want ok=%v", err, want)
			}
			if got, want := ack.Seq, tc.seq; got != want {
				t.Fatalf("ParseBatchAck=%d, want %d", got, want)
			}
			if tc.ok && (ack.Stream != "S" || ack.Count != tc.n) {
				t.Fatalf("ParseBatchAck=%+v, want stream S and count %d", ack, tc.n)
			}
		})
	}
}

func FuzzParseBatchAck(f *testing.F) {
	f.Add([]byte(`{"stream":"S","seq":42,"batch":"b","count":3}`), 3)
	f.Add([]byte(`{"error":{"code":503}}`), 1)
	f.Fuzz(func(t *testing.T, data []byte, n int) {
		ack, err := ParseBatchAck(data, n)
		if err == nil && (n < 0 || ack.Seq < uint64(n) || ack.Count != n || ack.Error != nil) {
			t.Fatalf("ParseBatchAck(%q, %d)=%+v without error", data, n, ack)
		}
	})
}
