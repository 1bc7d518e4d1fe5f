package api

import (
	"net/url"
	"unicode/utf8"
)

// UTF-8 key survives a header.
func EncodeKey(key string) string { return url.PathEscape(key) }

// DecodeKey reads a key from a header value (percent-decoding it) and
// validates it.
func DecodeKey(s string) (string, error) {
	key, err := url.PathUnescape(s)
	if err != nil {
		return "", Errorf(ErrInvalidKey, "invalid key: bad percent-encoding")
	}
	return key, ValidateKey(key)
}

// MaxKeyLen is the longest key, in bytes.
const MaxKeyLen = 1024

// ValidateKey checks that key is 1 to MaxKeyLen bytes of valid UTF-8.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return Errorf(ErrInvalidKey, "invalid key: empty")
	case len(key) > MaxKeyLen:
		return Errorf(ErrInvalidKey, "invalid key: %d bytes, the limit is %d", len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return Errorf(ErrInvalidKey, "invalid key: not valid UTF-8")
	}
	return nil
}

// MaxIDLen bounds a replica id and a session id.
const MaxIDLen = 64

// ValidID reports whether id can name a replica or a session: 1 to
// MaxIDLen letters, digits, '-' or '_'. Both become one token of a NATS
// subject.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
