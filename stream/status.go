package stream

import (
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
)

// What a replica advertises it is doing (ReplicaStatus.State).
const (
	// StateReady: caught up with the stream as of its start, serving.
	StateReady = "ready"
	// StateCatchingUp: applying its way to the stream's end, not serving yet.
	StateCatchingUp = "catching_up"
	// StateBootstrapping: restoring a snapshot of another replica.
	StateBootstrapping = "bootstrapping"
	// StateStopped: no longer applying (a gap, another stream's data); the
	// reason says why.
	StateStopped = "stopped"
)

// MaxReasonBytes bounds ReplicaStatus.Reason.
const MaxReasonBytes = 512

// ShortReason cuts s to at most MaxReasonBytes on a rune boundary, for
// ReplicaStatus.Reason.
func ShortReason(s string) string {
	if len(s) <= MaxReasonBytes {
		return s
	}
	s = s[:MaxReasonBytes-len("...")]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

func checkReplicaState(state, reason string) error {
	switch state {
	case "", StateReady, StateCatchingUp, StateBootstrapping, StateStopped:
	default:
		return Errorf(ErrInvalidRequest, "invalid replica status: unknown state %q", ShortReason(state))
	}
	if len(reason) > MaxReasonBytes || !utf8.ValidString(reason) {
		return Errorf(ErrInvalidRequest, "invalid replica status: reason over %d bytes or not UTF-8", MaxReasonBytes)
	}
	return nil
}

// IDOf returns the Tidemark identity recorded in a stream's configuration,
// or "" when it has none.
func IDOf(cfg jetstream.StreamConfig) string { return cfg.Metadata[metaID] }
