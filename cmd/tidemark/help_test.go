package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// `tidemark <command> -h` prints, to stdout, what the command does, its
// usage line, every flag with a description, and examples.
func TestCommandHelp(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), []string{c.name, "-h"}, &stdout, &stderr); err != nil {
				t.Fatalf("tidemark %s -h: %v", c.name, err)
			}
			out := stdout.String()
			for _, want := range []string{
				"tidemark " + c.name + ": " + c.help + "\n",
				"Usage:\n  tidemark " + c.name + " [flags]\n",
				"\nExamples:\n  tidemark " + c.name,
			} {
				if !strings.Contains(out, want) {
					t.Errorf("help lacks %q:\n%s", want, out)
				}
			}
			names := []string{"config", "log-level", "set"}
			for name, field := range c.flags {
				names = append(names, name)
				if !strings.Contains(out, "sets "+field) || fieldHelp(field) == "" || !strings.Contains(out, strings.ReplaceAll(fieldHelp(field), "`", "")) {
					t.Errorf("flag --%s: help lacks its description and the field %s:\n%s", name, field, out)
				}
			}
			for _, name := range names {
				if !strings.Contains(out, "\n  -"+name+" ") && !strings.Contains(out, "\n  -"+name+"\n") {
					t.Errorf("help lacks the flag -%s:\n%s", name, out)
				}
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr %q, want the help on stdout alone", stderr.String())
			}
		})
	}
}

// --replicas is a whole number from 1 to the limit; anything else is
// refused with a message that names the bounds.
func TestDevReplicasFlag(t *testing.T) {
	for _, tt := range []struct {
		value, want string
	}{
		{"0", "want 1 to 16 (dev.replicas), got 0"},
		{"-1", "want 1 to 16 (dev.replicas), got -1"},
		{"17", "want 1 to 16 (dev.replicas), got 17"},
		{"two", `want a whole number from 1 to 16 (dev.replicas), got "two"`},
		{"", `want a whole number from 1 to 16 (dev.replicas), got ""`},
	} {
		t.Run(tt.value, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			_, err := loadConfig(commandNamed(t, "dev"), []string{"--replicas", tt.value}, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "'tidemark dev -h'") {
				t.Fatalf("--replicas %q: %v, want an error saying %q and pointing at -h", tt.value, err, tt.want)
			}
		})
	}
	cfg, err := loadConfig(commandNamed(t, "dev"), []string{"--replicas", "16"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil || cfg.Dev.Replicas != 16 {
		t.Fatalf("--replicas 16: replicas=%d, %v; want 16", cfg.Dev.Replicas, err)
	}
	cfg, err = loadConfig(commandNamed(t, "dev"), nil, &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil || cfg.Dev.Replicas != 2 {
		t.Fatalf("no --replicas: replicas=%d, %v; want the default 2", cfg.Dev.Replicas, err)
	}
}

func commandNamed(t *testing.T, name string) command {
	t.Helper()
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("no command %q", name)
	return command{}
}
