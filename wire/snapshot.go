package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tidemark/tidemark/api"
)

// The snapshot protocol: a replica that finds the stream no longer holds
// what it needs asks, on Subjects.Snapshot, any one ready replica for a
// snapshot (SnapshotRequest); that replica writes a consistent snapshot of
// its state into the JetStream object store SnapshotBucket and replies with
// the object's name and applied sequence (SnapshotReply); the asker
// downloads and restores it, deletes the object, and applies the stream
// from there (package replica).
const (
	// SnapshotServiceName is the micro service that answers snapshot
	// requests, as `nats micro ls` lists it.
	SnapshotServiceName = "tidemark-snapshot"
	// SnapshotServiceVersion is its version.
	SnapshotServiceVersion = "1.0.0"
	// SnapshotQueueGroup is the queue group of the ready replicas that
	// answer snapshot requests: any one answers.
	SnapshotQueueGroup = "tidemark-snapshot"
)

// Object metadata of a stored snapshot.
const (
	MetaStream  = "tidemark-stream"
	MetaApplied = "tidemark-applied"
	MetaReplica = "tidemark-replica"
	MetaCreated = "tidemark-created"
)

// MaxSnapshotName bounds an object name received in a reply.
const MaxSnapshotName = 256

// SnapshotBucket is the object store bucket that carries the snapshots of
// the replicas of the stream named streamName.
func SnapshotBucket(streamName string) string { return streamName + "_SNAPSHOTS" }

// BaseBucket is the object store bucket that holds the base snapshot of the
// stream named streamName: the snapshot that compaction purges the stream
// up to, and that new and lagging replicas bootstrap from. Its objects do
// not expire.
func BaseBucket(streamName string) string { return streamName + "_BASE" }

// BaseObject is the name of the base snapshot in BaseBucket; a new one
// replaces it once stored whole.
const BaseObject = "base"

// BaseMeta reads the applied sequence and creation time from a stored
// snapshot's object metadata (MetaApplied, MetaCreated).
func BaseMeta(md map[string]string) (applied uint64, created time.Time, err error) {
	applied, err = strconv.ParseUint(md[MetaApplied], 10, 64)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("snapshot metadata: bad %s %q", MetaApplied, md[MetaApplied])
	}
	created, _ = time.Parse(time.RFC3339Nano, md[MetaCreated])
	return applied, created, nil
}

// SnapshotRequest asks a replica for a snapshot.
type SnapshotRequest struct {
	// Stream is the identity of the stream the asker replicates.
	Stream string `json:"stream"`
	// Replica is the asker's id.
	Replica string `json:"replica"`
	// Need is the lowest applied sequence the snapshot may have.
	Need uint64 `json:"need"`
}

// SnapshotReply names a stored snapshot.
type SnapshotReply struct {
	// Name is the object's name in SnapshotBucket.
	Name string `json:"name"`
	// Stream, Applied and Replica say whose state, up to which sequence.
	Stream  string `json:"stream"`
	Applied uint64 `json:"applied"`
	Replica string `json:"replica"`
	// Size is the snapshot's size in bytes.
	Size uint64 `json:"size"`
}

// DecodeSnapshotRequest decodes and checks a request from the wire.
func DecodeSnapshotRequest(b []byte) (SnapshotRequest, error) {
	var q SnapshotRequest
	if err := json.Unmarshal(b, &q); err != nil {
		return q, api.Errorf(api.ErrInvalidRequest, "snapshot request: %w", err)
	}
	if q.Stream == "" || !api.ValidID(q.Replica) {
		return q, api.Errorf(api.ErrInvalidRequest, "snapshot request: want a stream id and a replica id")
	}
	return q, nil
}

// DecodeSnapshotReply decodes and checks a reply from the wire.
func DecodeSnapshotReply(b []byte) (SnapshotReply, error) {
	var rep SnapshotReply
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("snapshot reply: %w", err)
	}
	if rep.Name == "" || len(rep.Name) > MaxSnapshotName || rep.Stream == "" {
		return rep, errors.New("snapshot reply: want an object name of 1 to 256 bytes and a stream id")
	}
	return rep, nil
}
