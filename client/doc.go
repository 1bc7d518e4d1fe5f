// Package client is the Go client library of Tidemark.
//
// A Client runs over one Transport: NATS (NewNATS), which calls the writer
// and replica services over NATS request/reply, or HTTP (NewHTTP), which
// calls a gateway. Both speak the same protocol and return the same stream
// types and sentinel errors (errors.Is(err, api.ErrNotFound), ...). A
// Client can also read from an embedded replica (WithReader) while it
// writes through its transport.
//
// A Session carries the session token for the caller: it sends it with
// every call and merges the token of every reply, so the session reads its
// own writes and never goes back in time, on any replica; it also applies
// its writes in the order they were made. Export it with String and resume
// it elsewhere with ResumeSession.
//
//	c := client.New(client.NewHTTP("http://localhost:8080"))
//	s := c.NewSession()
//	if _, err := s.Put(ctx, "greeting", []byte("hello")); err != nil { ... }
//	res, err := s.Get(ctx, "greeting") // "hello", on whichever replica
//
// Between services the token travels like trace context: Middleware reads
// it from an incoming HTTP request into the request's context and writes
// the merged token into the response, RoundTripper attaches it to outgoing
// HTTP requests, and InjectNATS, ExtractNATS, RequestNATS, MsgHandler and
// MicroHandler do the same for NATS messages. A Client's calls with such a
// context run in its session, so in a chain A -> B -> C, C reads what A
// wrote without A and C ever talking.
package client
