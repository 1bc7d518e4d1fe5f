package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tidemark/tidemark/config"
)

func FuzzLoadYAML(f *testing.F) {
	for _, seed := range []string{
		"",
		fullYAML,
		"gateway:\n  http: :80\n",
		"gateway: {default_wait: &w 3s, max_wait: *w}\n",
		"stream:\n  max_age: 1h\n  duplicate_window: 30s\n",
		"nats:\n  name: \"\\u00e9\\t x\"\n",
		"log: ~\n",
		"- a\n",
		"a: [",
		"log:\n  level: info\n---\nx: 1\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "in.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(path, nil)
		if err != nil {
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("Load error %v does not match ErrInvalid", err)
			}
			return
		}
		if c.Validate() != nil {
			return
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal=%v", err)
		}
		again := filepath.Join(dir, "out.yaml")
		if err := os.WriteFile(again, out, 0o600); err != nil {
			t.Fatal(err)
		}
		c2, err := config.Load(again, nil)
		if err != nil {
			t.Fatalf("reload of\n%s\n=%v", out, err)
		}
		if got, want := c2, c; got != want {
			t.Fatalf("reload of\n%s\n=%+v, want %+v", out, got, want)
		}
	})
}

func FuzzSet(f *testing.F) {
	n := len(config.Fields())
	for i := range n {
		for _, v := range []string{"", "0", "-1", "1", "true", "2s", "x", "nats://a:1", ":8080", "99999999999999999999"} {
			f.Add(uint(i), v)
		}
	}
	f.Fuzz(func(t *testing.T, i uint, value string) {
		name := config.Fields()[i%uint(n)]
		c := config.Default()
		if err := c.Set(name, value); err != nil {
			var fe *config.FieldError
			if !errors.As(err, &fe) || fe.Field != name || !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("Set(%q, %q)=%v, want a *FieldError for the field matching ErrInvalid", name, value, err)
			}
			if got, want := c, config.Default(); got != want {
				t.Fatalf("failed Set(%q, %q) changed the config", name, value)
			}
			return
		}
		_ = c.Validate()
		s, err := c.Get(name)
		if err != nil {
			t.Fatalf("Get(%q)=%v", name, err)
		}
		c2 := config.Default()
		if err := c2.Set(name, s); err != nil {
			t.Fatalf("Set(%q, Get()=%q)=%v", name, s, err)
		}
		if got, want := c2, c; got != want {
			t.Fatalf("Set(%q, %q) then Get/Set gave %+v, want %+v", name, value, got, want)
		}
	})
}
