// Package writer owns the write path of Tidemark: it turns puts, deletes and
// conditional writes into publishes to the JetStream stream, deduplicates
// retries by write id, and serves the writer's NATS micro service endpoints.
//
// A write's revision is the stream sequence in the publish ack; the same
// sequence, as a token of the stream, is the session's new token.
//
// Conditional writes are atomic across any number of writers: they publish
// with JetStream's expected last sequence of the key's subject. Because the
// stream keeps deletes as tombstones, the writer checks what message the
// expected sequence names before relying on it: an If-Match on a revision that
// is a delete, or an If-None-Match over a live put, loses.
package writer
