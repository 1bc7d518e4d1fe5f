// Package stream is the JetStream stream every write goes through: its
// definition and identity (Ensure, Open), the subject scheme (one subject a
// key, one a session), the message envelope a writer encodes and a replica
// decodes, and atomic batch publish.
//
// A write's stream sequence is its revision and a session token; replicas
// apply the stream in order, and a read carrying token T is served only by a
// replica that has applied at least T.
package stream
