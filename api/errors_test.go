package api_test

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/tidemark/tidemark/api"
)

// A coded error keeps the cause it was made from: errors.Is and errors.As
// reach it, while its code stays the one it was given.
func TestErrorfKeepsItsCause(t *testing.T) {
	errGap := errors.New("gap in the stream")
	err := api.Errorf(api.ErrUnavailable, "replica r1 is not serving: %w", errGap)
	if !errors.Is(err, errGap) || !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("errors.Is lost the cause or the sentinel: %v", err)
	}
	if got := api.Code(err); got != api.CodeUnavailable {
		t.Fatalf("code %q, want %q", got, api.CodeUnavailable)
	}
	if err.Error() != "replica r1 is not serving: gap in the stream" {
		t.Fatalf("message %q", err)
	}

	var pe *fs.PathError
	err = api.Errorf(api.ErrInternal, "open: %w", &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist})
	if !errors.As(err, &pe) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("errors.As or Is through the cause failed: %v", err)
	}

	// Wrapped again, it still reaches the cause.
	if !errors.Is(fmt.Errorf("outer: %w", err), fs.ErrNotExist) {
		t.Fatal("lost the cause behind another wrap")
	}
}

// The cause's own code does not leak: an internal error made from a
// not-found error is internal, not a 404.
func TestErrorfCodeIsTheOuterOne(t *testing.T) {
	inner := api.Errorf(api.ErrNotFound, "key %q not found", "k")
	err := api.Errorf(api.ErrInternal, "bad reply: %w", inner)
	if got := api.Code(err); got != api.CodeInternal {
		t.Fatalf("code %q, want %q", got, api.CodeInternal)
	}
	if errors.Is(err, api.ErrNotFound) {
		t.Fatal("the cause's sentinel counts as the error's own")
	}
	if got := api.Code(fmt.Errorf("ctx: %w", err)); got != api.CodeInternal {
		t.Fatalf("wrapped: code %q, want %q", got, api.CodeInternal)
	}
}

// %v still flattens, as before.
func TestErrorfWithoutWrapHasNoCause(t *testing.T) {
	errGap := errors.New("gap")
	err := api.Errorf(api.ErrUnavailable, "not serving: %v", errGap)
	if errors.Is(err, errGap) {
		t.Fatal("a flattened cause is still reachable")
	}
}
