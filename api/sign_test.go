package api_test

import (
	"github.com/tidemark/tidemark/api"

	"errors"
	"strings"
	"testing"
)

func TestSigner(t *testing.T) {
	oldKey, newKey := []byte("old-key-0123456789"), []byte("new-key-0123456789")
	old, err := api.NewSigner(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := api.NewSigner(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	newOnly, err := api.NewSigner(newKey)
	if err != nil {
		t.Fatal(err)
	}
	tok := api.NewToken("a1b2c3", 42)
	signed := old.Format(tok)
	if !strings.HasPrefix(signed, tok.String()+".") {
		t.Fatalf("signed token %q", signed)
	}
	for _, tt := range []struct {
		name string
		s    *api.Signer
		in   string
		err  error
	}{
		{"same key", old, signed, nil},
		{"rotated keeps old tokens", rotated, signed, nil},
		{"retired key", newOnly, signed, api.ErrInvalidToken},
		{"unsigned", old, tok.String(), api.ErrInvalidToken},
		{"altered sequence", old, strings.Replace(signed, ".42.", ".43.", 1), api.ErrInvalidToken},
		{"altered signature", old, signed[:len(signed)-1] + "A", api.ErrInvalidToken},
		{"empty is no token", old, "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Parse(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Parse(%q) err=%v, want %v", tt.in, err, tt.err)
			}
			if err == nil && tt.in != "" && got != tok {
				t.Fatalf("Parse=%v, want %v", got, tok)
			}
		})
	}
	if _, err := rotated.Parse(rotated.Format(tok)); err != nil {
		t.Fatalf("new key's token: %v", err)
	}
	if _, err := api.NewSigner([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
	var none *api.Signer
	if got, want := none.Format(tok), tok.String(); got != want {
		t.Fatalf("nil signer Format=%q, want %q", got, want)
	}
}

func FuzzSignedToken(f *testing.F) {
	s, _ := api.NewSigner([]byte("fuzz-key-0123456789"))
	f.Add(s.Format(api.NewToken("ab", 7)))
	f.Add("1.ab.7.xxxxxxxxxxxxxxxxxxxxxx")
	f.Fuzz(func(t *testing.T, in string) {
		tok, err := s.Parse(in)
		if err != nil {
			if !errors.Is(err, api.ErrInvalidToken) {
				t.Fatalf("err=%v", err)
			}
			return
		}
		if in != "" && s.Format(tok) != in {
			t.Fatalf("accepted %q, which is not what the signer makes (%q)", in, s.Format(tok))
		}
	})
}

// A token a signing gateway handed out is taken over NATS too, where the
// services trust their callers: its signature is dropped, not checked.
func TestSignedTokenParsesWithoutSigner(t *testing.T) {
	s, err := api.NewSigner([]byte("0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	tok := api.NewToken("ab12", 42)
	got, err := api.ParseToken(s.Format(tok))
	if err != nil || got != tok {
		t.Fatalf("ParseToken(signed)=%v, %v; want %v", got, err, tok)
	}
	// An unsigned token is still refused where signing is on.
	if _, err := s.Parse(tok.String()); !errors.Is(err, api.ErrInvalidToken) {
		t.Fatalf("Signer.Parse(unsigned)=%v, want %v", err, api.ErrInvalidToken)
	}
}
