package api

import "time"

// The defaults every role and client share. The roles' configuration
// (package config) refers to these.
const (
	// DefaultWait bounds a read's wait for its token when the request sets
	// none.
	DefaultWait = 5 * time.Second
	// DefaultMaxWait is the longest wait a read may ask for.
	DefaultMaxWait = 30 * time.Second
	// DefaultMaxValueBytes is the largest value a put may carry; less where
	// the NATS server's max_payload cannot carry it (wire.ValueLimit).
	DefaultMaxValueBytes = 1 << 20
)
