package replicator_test

import (
	"github.com/tidemark/tidemark/wire"

	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/testenv"
)

// TestScanPageBudget: a page stops at its byte budget before its limit,
// with next at its last key, and the next page goes on from there; a value
// larger than the budget leaves still gets a page of its own.
func TestScanPageBudget(t *testing.T) {
	env := testenv.Start(t)
	r := open(t, env, t.TempDir())
	run(t, r)
	const maxPayload = 64 << 10
	big := strings.Repeat("v", wire.TransportMaxValue(maxPayload))
	small := strings.Repeat("v", 10<<10)
	waitApplied(t, r, publish(t, env, put("a", small), put("b", small), put("c", small), put("d", small),
		put("e", small), put("f", small), put("g", big), put("h", small)))

	var pages []string
	for after := ""; ; {
		items, next, _, err := r.Scan("", after, 100, wire.NewPageBudget(maxPayload))
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, it := range items {
			keys = append(keys, it.Key)
		}
		pages = append(pages, strings.Join(keys, ""))
		if next == "" {
			break
		}
		if got, want := next, items[len(items)-1].Key; got != want {
			t.Fatalf("next=%q, want the page's last key %q", got, want)
		}
		after = next
	}
	// 10 KiB values take 13.7 KB each in base64: four of them, then the
	// page's headers and the longest next and token would not fit a fifth.
	if got, want := strings.Join(pages, " "), "abcd ef g h"; got != want {
		t.Fatalf("pages=%q, want %q", got, want)
	}
}
