// Package stream owns what every Tidemark role shares: the JetStream stream
// definition and its subject scheme, the message envelope, the session Token,
// the service wire protocol (subjects, headers, payloads), the error codes,
// connecting to NATS, and starting an embedded NATS server.
//
// A write's stream sequence is its revision and a session token; replicas
// apply the stream in order, and a read carrying token T is served only by a
// replica that has applied at least T.
package stream
