package wire

import (
	"encoding/json"

	"github.com/tidemark/tidemark/api"

	"unicode/utf8"
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
		return api.Errorf(api.ErrInvalidRequest, "invalid replica status: unknown state %q", ShortReason(state))
	}
	if len(reason) > MaxReasonBytes || !utf8.ValidString(reason) {
		return api.Errorf(api.ErrInvalidRequest, "invalid replica status: reason over %d bytes or not UTF-8", MaxReasonBytes)
	}
	return nil
}

// ReplicaStatus is what a replica advertises on its status subject, often
// and cheaply, so that readers can be routed to a replica that has already
// reached their token.
type ReplicaStatus struct {
	// Replica is the replica's id; Stream its stream's identity.
	Replica string `json:"replica"`
	Stream  string `json:"stream"`
	// Applied is the last applied stream sequence.
	Applied uint64 `json:"applied"`
	// Rate is the recent apply rate, in messages per second.
	Rate float64 `json:"rate"`
	// Ready reports whether the replica has caught up and serves shared reads.
	Ready bool `json:"ready"`
	// State and Reason, when set, say what the replica is doing (one of the
	// ReplicaState values) and why it does not serve; older replicas omit them.
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Tombstones is how many tombstones the replica held at its last
	// sweep, when it has swept.
	Tombstones *int64 `json:"tombstones,omitempty"`
	// CompactPoint is set by the replica that compacts: its last purge
	// point, where the stream starts at or after.
	CompactPoint uint64 `json:"compact_point,omitempty"`
}

// DecodeStatus decodes a replica status advertisement.
func DecodeStatus(data []byte) (ReplicaStatus, error) {
	var st ReplicaStatus
	if err := json.Unmarshal(data, &st); err != nil {
		return ReplicaStatus{}, api.Errorf(api.ErrInvalidRequest, "invalid replica status: %w", err)
	}
	if !api.ValidID(st.Replica) || !api.ValidStreamID(st.Stream) || st.Rate < 0 || st.Rate != st.Rate || (st.Tombstones != nil && *st.Tombstones < 0) {
		return ReplicaStatus{}, api.Errorf(api.ErrInvalidRequest, "invalid replica status: bad replica, stream or rate")
	}
	if err := checkReplicaState(st.State, st.Reason); err != nil {
		return ReplicaStatus{}, err
	}
	return st, nil
}
