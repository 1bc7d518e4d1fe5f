// Package chaos proves Tidemark's guarantees under faults, in the manner of
// Jepsen and etcd's robustness tests: it runs the real tidemark roles and
// nats-server as separate processes (one server, or a three-server
// JetStream cluster), drives them with concurrent client sessions
// (package workload) while it kills, pauses, restarts and partitions them
// (package faults), heals everything, waits for the replicas to converge,
// dumps the stream and every replica, and hands the history to an
// independent checker (package checker).
package chaos
