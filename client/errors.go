package client

import "errors"

// ErrNoClient means a Session's own methods were called on a session that
// belongs to no Client: one that Middleware, WithToken or a NATS handler put
// in a context. Call a Client's methods with that context instead.
var ErrNoClient = errors.New("session has no client")
