package api

import (
	"strconv"
	"strings"
)

// TokenVersion is the format version written into every token.
const TokenVersion = "1"

// MaxTokenLen bounds the length of a token string.
const MaxTokenLen = 256

// Token is a session token: the position in one stream that a session has
// seen. It is opaque to clients; its string form is
// "<version>.<stream id>.<sequence>", short ASCII safe in an HTTP header, a
// cookie and a NATS header. The zero Token means "no token".
type Token struct {
	// Stream is the identity of the stream the sequence belongs to.
	Stream string
	// Seq is a stream sequence number.
	Seq uint64
}

// NewToken returns a token for seq in the stream with identity id.
func NewToken(id string, seq uint64) Token { return Token{Stream: id, Seq: seq} }

// IsZero reports whether t is the zero (absent) token.
func (t Token) IsZero() bool { return t.Stream == "" && t.Seq == 0 }

// String formats t; the zero token formats as "".
func (t Token) String() string {
	if t.IsZero() {
		return ""
	}
	return TokenVersion + "." + t.Stream + "." + strconv.FormatUint(t.Seq, 10)
}

// ParseToken parses a token string. The empty string is the zero token.
// Anything else that is not a well-formed token fails with ErrInvalidToken.
func ParseToken(s string) (Token, error) {
	if s == "" {
		return Token{}, nil
	}
	if len(s) > MaxTokenLen {
		return Token{}, Errorf(ErrInvalidToken, "invalid token: longer than %d bytes", MaxTokenLen)
	}
	parts := strings.Split(s, ".")
	if len(parts) == 4 && validSig(parts[3]) {
		// Signed by a gateway (Signer): the services behind it trust their
		// callers and take the token without its signature, so that a token
		// a browser got over HTTP also works over NATS.
		parts = parts[:3]
	}
	if len(parts) != 3 {
		return Token{}, Errorf(ErrInvalidToken, "invalid token %q: want version.stream.sequence", s)
	}
	if parts[0] != TokenVersion {
		return Token{}, Errorf(ErrInvalidToken, "invalid token %q: unsupported version %q", s, parts[0])
	}
	if !ValidStreamID(parts[1]) {
		return Token{}, Errorf(ErrInvalidToken, "invalid token %q: bad stream id", s)
	}
	seq, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil || parts[2] != strconv.FormatUint(seq, 10) {
		return Token{}, Errorf(ErrInvalidToken, "invalid token %q: bad sequence", s)
	}
	return Token{Stream: parts[1], Seq: seq}, nil
}

// ValidStreamID reports whether id is a well-formed stream identity:
// 1 to 32 lower-case hex digits or letters.
func ValidStreamID(id string) bool {
	if len(id) == 0 || len(id) > 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// Merge returns the later of t and o. The zero token merges with anything;
// tokens of two different streams fail with ErrTokenStreamMismatch.
func (t Token) Merge(o Token) (Token, error) {
	switch {
	case t.IsZero():
		return o, nil
	case o.IsZero():
		return t, nil
	case t.Stream != o.Stream:
		return Token{}, Errorf(ErrTokenStreamMismatch, "tokens of two streams (%s and %s)", t.Stream, o.Stream)
	case o.Seq > t.Seq:
		return o, nil
	default:
		return t, nil
	}
}

// Check verifies that t belongs to the stream with identity id. The zero
// token belongs to every stream.
func (t Token) Check(id string) error {
	if t.IsZero() || t.Stream == id {
		return nil
	}
	return Errorf(ErrTokenStreamMismatch, "token belongs to stream %s, this is stream %s (was the stream recreated?)", t.Stream, id)
}

// validSig reports whether s has the form of a token signature: sigLen
// characters of unpadded URL-safe base64.
func validSig(s string) bool {
	if len(s) != sigLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
