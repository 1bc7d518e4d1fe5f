package client

import (
	"github.com/tidemark/tidemark/api"

	"context"
)

// Transport carries requests to Tidemark: NATS (the writer and replica
// services) and HTTP (a gateway) both satisfy it. A Client runs over one
// Transport; most programs never call a Transport directly.
type Transport interface {
	// Write sends a put or a delete to a writer.
	Write(ctx context.Context, req api.WriteRequest) (api.WriteResult, error)
	Reader
}

// Reader serves reads. Every Transport is one, and so is an embedded
// replica (*replica.Replica), which reads from its own local store.
type Reader interface {
	// Get reads one key as of at least the request's token.
	Get(ctx context.Context, req api.GetRequest) (api.GetResult, error)
	// Scan reads a page of keys by prefix as of at least the request's token.
	Scan(ctx context.Context, req api.ScanRequest) (api.ScanResult, error)
}

var (
	_ Transport = (*NATS)(nil)
	_ Transport = (*HTTP)(nil)
)
