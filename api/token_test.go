package api_test

import (
	"github.com/tidemark/tidemark/api"

	"errors"
	"strings"
	"testing"
)

func TestParseToken(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want api.Token
		err  error
	}{
		{"empty is zero", "", api.Token{}, nil},
		{"valid", "1.a1b2c3.42", api.Token{Stream: "a1b2c3", Seq: 42}, nil},
		{"zero seq", "1.a1b2c3.0", api.Token{Stream: "a1b2c3"}, nil},
		{"max seq", "1.ab.18446744073709551615", api.Token{Stream: "ab", Seq: 1<<64 - 1}, nil},
		{"seq overflow", "1.ab.18446744073709551616", api.Token{}, api.ErrInvalidToken},
		{"leading zero", "1.ab.042", api.Token{}, api.ErrInvalidToken},
		{"plus sign", "1.ab.+4", api.Token{}, api.ErrInvalidToken},
		{"negative", "1.ab.-4", api.Token{}, api.ErrInvalidToken},
		{"bad version", "2.ab.4", api.Token{}, api.ErrInvalidToken},
		{"upper-case id", "1.AB.4", api.Token{}, api.ErrInvalidToken},
		{"empty id", "1..4", api.Token{}, api.ErrInvalidToken},
		{"too few parts", "1.ab", api.Token{}, api.ErrInvalidToken},
		{"too many parts", "1.ab.4.5", api.Token{}, api.ErrInvalidToken},
		{"garbage", "hello", api.Token{}, api.ErrInvalidToken},
		{"spaces", " 1.ab.4", api.Token{}, api.ErrInvalidToken},
		{"too long", "1." + strings.Repeat("a", 300) + ".1", api.Token{}, api.ErrInvalidToken},
		{"long id", "1." + strings.Repeat("a", 33) + ".1", api.Token{}, api.ErrInvalidToken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := api.ParseToken(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseToken(%q) err=%v, want %v", tt.in, err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("ParseToken(%q)=%+v, want %+v", tt.in, got, tt.want)
			}
			if err == nil {
				if got, want := got.String(), tt.in; got != want {
					t.Fatalf("String()=%q, want %q", got, want)
				}
			}
		})
	}
}

func TestTokenMerge(t *testing.T) {
	a5, a9, b3 := api.NewToken("a", 5), api.NewToken("a", 9), api.NewToken("b", 3)
	for _, tt := range []struct {
		name string
		x, y api.Token
		want api.Token
		err  error
	}{
		{"zero and zero", api.Token{}, api.Token{}, api.Token{}, nil},
		{"zero and token", api.Token{}, a5, a5, nil},
		{"token and zero", a5, api.Token{}, a5, nil},
		{"max is later", a5, a9, a9, nil},
		{"max is earlier", a9, a5, a9, nil},
		{"same", a5, a5, a5, nil},
		{"other stream", a5, b3, api.Token{}, api.ErrTokenStreamMismatch},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.x.Merge(tt.y)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Merge err=%v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("Merge=%+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTokenCheck(t *testing.T) {
	if err := api.NewToken("a", 1).Check("a"); err != nil {
		t.Fatalf("Check(own stream)=%v", err)
	}
	if err := (api.Token{}).Check("a"); err != nil {
		t.Fatalf("zero Check=%v", err)
	}
	if err := api.NewToken("b", 1).Check("a"); !errors.Is(err, api.ErrTokenStreamMismatch) {
		t.Fatalf("Check(other stream)=%v, want ErrTokenStreamMismatch", err)
	}
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"", "1.ab.1", "1.a1b2c3d4e5f6.18446744073709551615", "1.ab.0", "x", "1..", "1.ab.01", "1.ab.1.abcdefghijklmnopqrstuv"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := api.ParseToken(s)
		if err != nil {
			if !errors.Is(err, api.ErrInvalidToken) {
				t.Fatalf("ParseToken(%q) err=%v does not wrap ErrInvalidToken", s, err)
			}
			return
		}
		if got := tok.String(); got != s && !strings.HasPrefix(s, got+".") {
			t.Fatalf("round trip %q -> %q", s, got)
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c <= ' ' || c >= 0x7f || c == ';' || c == ',' || c == '"' || c == '\\' {
				t.Fatalf("token %q holds %q, unsafe in a header or cookie", s, c)
			}
		}
	})
}
