package main

import (
	"testing"

	"github.com/tidemark/tidemark/internal/cli/tool/tooltest"
)

// TestCommandLine: -h succeeds, an unknown flag or a stray argument fails,
// and without a tidemark binary the tool says how to name one.
func TestCommandLine(t *testing.T) { tooltest.CommandLine(t, run) }
