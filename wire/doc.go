// Package wire is Tidemark's NATS service protocol: the subjects of the
// writer and replica services, the codec of requests and replies for both
// ends, the replica status and snapshot messages, the responders and
// request pool of the services, the size limits that keep every reply
// within the server's max_payload, and the classification of NATS errors.
package wire
