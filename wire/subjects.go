package wire

// DefaultAPIPrefix is the subject prefix of the service endpoints.
const DefaultAPIPrefix = "tidemark"

// Subjects names the service endpoints under an API prefix.
type Subjects struct {
	// Prefix is the API prefix, DefaultAPIPrefix when empty.
	Prefix string
}

func (s Subjects) base() string {
	if s.Prefix == "" {
		return DefaultAPIPrefix + ".v1"
	}
	return s.Prefix + ".v1"
}

// Put is the writer's put endpoint.
func (s Subjects) Put() string { return s.base() + ".put" }

// Delete is the writer's delete endpoint.
func (s Subjects) Delete() string { return s.base() + ".delete" }

// Get is the replicas' point read endpoint, served by any one replica.
func (s Subjects) Get() string { return s.base() + ".get" }

// Scan is the replicas' prefix scan endpoint, served by any one replica.
func (s Subjects) Scan() string { return s.base() + ".scan" }

// ReplicaGet is the point read endpoint of one replica.
func (s Subjects) ReplicaGet(id string) string { return s.base() + ".replica." + id + ".get" }

// ReplicaScan is the prefix scan endpoint of one replica.
func (s Subjects) ReplicaScan(id string) string { return s.base() + ".replica." + id + ".scan" }

// Snapshot is where a bootstrapping replica asks any one ready replica for
// a snapshot of its state.
func (s Subjects) Snapshot() string { return s.base() + ".snapshot" }

// Status is where a replica advertises its progress.
func (s Subjects) Status(id string) string { return s.base() + ".status." + id }

// StatusAll matches every replica's status subject.
func (s Subjects) StatusAll() string { return s.base() + ".status.*" }

// Watch is where a watch starts on any one ready replica.
func (s Subjects) Watch() string { return s.base() + ".watch" }

// ReplicaWatch is where a watch starts on one replica.
func (s Subjects) ReplicaWatch(id string) string { return s.base() + ".replica." + id + ".watch" }

// Txn is the writer's transaction endpoint.
func (s Subjects) Txn() string { return s.base() + ".txn" }
