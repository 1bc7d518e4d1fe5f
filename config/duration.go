package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written as a Go duration string such as
// "250ms", "2s" or "1h" in YAML, environment variables and flags; it is
// never negative once parsed.
type Duration time.Duration

// String formats d like time.Duration, such as "2m0s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText formats d like String, so YAML and JSON write a string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string, rejecting negative values.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := parseDuration(string(text))
	if err != nil {
		return fmt.Errorf("%w: %s", ErrInvalid, err)
	}
	*d = v
	return nil
}

// parseDuration is the one parser of durations; its error message is meant
// to follow a field name.
func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as \"250ms\" or \"2m\", got %q", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	return Duration(v), nil
}
