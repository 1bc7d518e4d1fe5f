package client

import (
	"github.com/tidemark/tidemark/api"

	"context"
)

// sessionKey is the context key of the session.
type sessionKey struct{}

// WithSession returns a copy of ctx that carries s: a Client's calls with it
// run in s, and Middleware, RoundTripper and the NATS helpers propagate its
// token.
func WithSession(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// SessionFrom returns the session ctx carries, or nil.
func SessionFrom(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}

// WithToken returns a copy of ctx that carries a new session holding tok,
// as a propagated token arrives: a Client's calls with it read as of at
// least tok, and merge the tokens of their replies into the new session,
// not into any session ctx already carried.
func WithToken(ctx context.Context, tok api.Token) context.Context {
	return WithSession(ctx, newSession(nil, tok))
}

// TokenFrom returns the token of the session ctx carries, or the zero token.
func TokenFrom(ctx context.Context) api.Token {
	if s := SessionFrom(ctx); s != nil {
		return s.Token()
	}
	return api.Token{}
}
