package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// MinSigningKeyLen is the shortest token signing key accepted.
const MinSigningKeyLen = 16

// sigLen is the length of a token signature: 128 bits, base64url.
const sigLen = 22

// Signer signs tokens handed to untrusted clients and verifies them when they
// come back, so that a forged or altered token is rejected with
// ErrInvalidToken. The first key signs; every key verifies, so keys can be
// rotated: add the new key first, keep the old one until the tokens it
// signed are no longer in use, then drop it. A nil Signer signs nothing and
// accepts plain tokens.
type Signer struct {
	keys [][]byte
}

// NewSigner returns a signer over keys (the first signs), or nil when there
// are none. Each key must be at least MinSigningKeyLen bytes.
func NewSigner(keys ...[]byte) (*Signer, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	for i, k := range keys {
		if len(k) < MinSigningKeyLen {
			return nil, Errorf(ErrInvalidRequest, "token signing key %d is %d bytes, want at least %d", i+1, len(k), MinSigningKeyLen)
		}
	}
	return &Signer{keys: keys}, nil
}

// ParseSigningKeys splits a comma-separated list of keys, as configured.
func ParseSigningKeys(s string) [][]byte {
	var keys [][]byte
	for _, k := range strings.Split(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, []byte(k))
		}
	}
	return keys
}

func (s *Signer) sig(key []byte, body string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))[:sigLen]
}

// Format returns t as a client sees it: signed when s is not nil.
func (s *Signer) Format(t Token) string {
	body := t.String()
	if s == nil || body == "" {
		return body
	}
	return body + "." + s.sig(s.keys[0], body)
}

// Parse parses a token a client sent, verifying its signature when s is
// not nil. A token without a valid signature fails with ErrInvalidToken.
func (s *Signer) Parse(str string) (Token, error) {
	if s == nil || str == "" {
		return ParseToken(str)
	}
	i := strings.LastIndexByte(str, '.')
	if i < 0 || len(str)-i-1 != sigLen {
		return Token{}, Errorf(ErrInvalidToken, "invalid token: not signed")
	}
	body, sig := str[:i], str[i+1:]
	for _, k := range s.keys {
		if hmac.Equal([]byte(sig), []byte(s.sig(k, body))) {
			return ParseToken(body)
		}
	}
	return Token{}, Errorf(ErrInvalidToken, "invalid token: bad signature (forged, altered, or signed with a retired key)")
}
