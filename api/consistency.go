package api

// Consistency is a read's consistency level.
type Consistency string

// The consistency levels of a read.
const (
	// Session (the default) waits until the replica has applied the
	// request's token: read-your-writes and monotonic reads.
	Session Consistency = "session"
	// Strong waits until the replica has applied the stream's last
	// sequence as of the request, so it also sees every other session's
	// acknowledged writes.
	Strong Consistency = "strong"
	// Eventual never waits; the reply says how far the replica had applied
	// and the stream's last sequence as the replica knew it.
	Eventual Consistency = "eventual"
)

// ParseConsistency parses a consistency level; "" is Session.
func ParseConsistency(s string) (Consistency, error) {
	switch c := Consistency(s); c {
	case "", Session:
		return Session, nil
	case Strong, Eventual:
		return c, nil
	}
	return "", Errorf(ErrInvalidRequest, "invalid consistency %q: want session, strong or eventual", s)
}
