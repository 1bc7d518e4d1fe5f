package client

import (
	"github.com/tidemark/tidemark/api"

	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// InjectNATS sets the Tidemark-Token header of m to the token of the
// session ctx carries (merged with a token m already holds), so that the
// service m goes to reads as of at least it.
func InjectNATS(ctx context.Context, m *nats.Msg) {
	tok := TokenFrom(ctx)
	if tok.IsZero() {
		return
	}
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	if tok, ok := mergeInto(m.Header.Get(api.HeaderToken), tok); ok {
		m.Header.Set(api.HeaderToken, tok.String())
	}
}

// ExtractNATS reads the Tidemark-Token header of m. When ctx carries a
// session (the context a request was made with, and m its reply), the token
// is merged into it and ctx is returned; otherwise (m is an incoming
// request) it returns a copy of ctx with a new session holding the token. A
// malformed token is ignored.
func ExtractNATS(ctx context.Context, m *nats.Msg) context.Context {
	tok := msgToken(m.Header)
	if s := SessionFrom(ctx); s != nil {
		s.observe(tok)
		return ctx
	}
	return WithToken(ctx, tok)
}

// msgToken reads the token of NATS headers; a malformed one is the zero token.
func msgToken(h nats.Header) api.Token {
	if h == nil {
		return api.Token{}
	}
	return parseToken(h.Get(api.HeaderToken))
}

// RequestNATS sends the request m on nc with the token of ctx's session
// (InjectNATS), waits for the reply and merges the reply's token into the
// session.
func RequestNATS(ctx context.Context, nc *nats.Conn, m *nats.Msg) (*nats.Msg, error) {
	InjectNATS(ctx, m)
	reply, err := nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return nil, err
	}
	if s := SessionFrom(ctx); s != nil {
		s.observe(msgToken(reply.Header))
	}
	return reply, nil
}

// RespondNATS answers the request req with reply, carrying the token of
// ctx's session.
func RespondNATS(ctx context.Context, req, reply *nats.Msg) error {
	InjectNATS(ctx, reply)
	return req.RespondMsg(reply)
}

// MsgHandler adapts fn to a nats.MsgHandler that gives every message a
// context derived from ctx with a new session holding the message's token.
// Answer with RespondNATS, so that the reply carries the session's token.
func MsgHandler(ctx context.Context, fn func(ctx context.Context, m *nats.Msg)) nats.MsgHandler {
	return func(m *nats.Msg) {
		fn(WithToken(ctx, msgToken(m.Header)), m)
	}
}

// MicroHandler adapts fn to a micro.Handler, as micro.ContextHandler does,
// that gives every request a context derived from ctx with a new session
// holding the request's token. The request fn gets carries the session's
// token into the header of its reply (Respond, RespondJSON, Error), with
// every token merged into the session while fn ran. As with any micro
// handler, an endpoint handles one request at a time.
func MicroHandler(ctx context.Context, fn func(ctx context.Context, req micro.Request)) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		s := newSession(nil, msgToken(nats.Header(req.Headers())))
		fn(WithSession(ctx, s), &tokenRequest{Request: req, s: s})
	})
}

// tokenRequest is a micro.Request whose replies carry the session's token.
type tokenRequest struct {
	micro.Request
	s *Session
}

// opts puts the token header first, so that a handler's own headers win.
func (r *tokenRequest) opts(opts []micro.RespondOpt) []micro.RespondOpt {
	tok := r.s.Token()
	if tok.IsZero() {
		return opts
	}
	h := micro.Headers{api.HeaderToken: {tok.String()}}
	return append([]micro.RespondOpt{micro.WithHeaders(h)}, opts...)
}

// Respond answers with data and the session's token.
func (r *tokenRequest) Respond(data []byte, opts ...micro.RespondOpt) error {
	return r.Request.Respond(data, r.opts(opts)...)
}

// RespondJSON answers with v as JSON and the session's token.
func (r *tokenRequest) RespondJSON(v any, opts ...micro.RespondOpt) error {
	return r.Request.RespondJSON(v, r.opts(opts)...)
}

// Error answers with a micro error and the session's token.
func (r *tokenRequest) Error(code, description string, data []byte, opts ...micro.RespondOpt) error {
	return r.Request.Error(code, description, data, r.opts(opts)...)
}
