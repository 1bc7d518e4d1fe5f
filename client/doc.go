// Package client is the Go client library of Tidemark.
//
// For now it holds the NATS transport, NATS: it sends writes to the writer
// service and reads to the replicas over NATS request/reply, using the wire
// protocol of package stream, and maps transport failures to the stream
// errors (stream.ErrUnavailable when no writer or replica answers). The HTTP
// gateway uses it to reach writers and replicas.
//
// A Session type, which carries the session token from call to call for the
// caller so that it reads its own writes, is coming; until then callers pass
// the token of each result into their next request themselves.
package client
