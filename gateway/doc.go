// Package gateway is Tidemark's HTTP face: the HTTP API v1 (put, get,
// delete, prefix scan), the session token carried by header or cookie, the
// Tidemark-Wait bound, and the one table that maps errors to HTTP statuses.
//
// The gateway holds no data. It reaches writers and replicas through the
// small Writer and Reader interfaces, which the command wires to the NATS
// services (or, in one process, to the writer directly), so any number of
// gateways can run with no stickiness.
package gateway
