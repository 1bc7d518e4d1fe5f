package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load returns Default overlaid with the YAML file at path, if path is not
// empty, and then with the TIDEMARK_ variables in environ, a list of
// "KEY=value" entries such as os.Environ returns. It does not validate: the
// caller applies flags with Set and then calls Validate.
//
// The file is read strictly: an unknown or repeated field is an error
// naming it and its line, and a field with no value (null) keeps the value
// it had. An empty file is fine; a missing one is an error matching
// fs.ErrNotExist. A TIDEMARK_ variable that names no setting (see EnvName)
// is left alone, so that an unrelated variable never breaks a command;
// UnknownEnv lists them for a warning. An empty value is applied like any
// other.
func Load(path string, environ []string) (Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, err
		}
		if err := c.applyYAML(path, data); err != nil {
			return Config{}, err
		}
	}
	if err := c.applyEnv(environ); err != nil {
		return Config{}, err
	}
	return c, nil
}

// applyEnv sets every field named by a TIDEMARK_ variable in environ.
func (c *Config) applyEnv(environ []string) error {
	var errs []error
	for _, kv := range environ {
		key, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(key, EnvPrefix) || key == EnvConfig {
			continue
		}
		f, ok := fields().byEnv[key]
		if !ok {
			continue // UnknownEnv
		}
		if err := c.Set(f.name, value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// UnknownEnv returns the TIDEMARK_ variables in environ that name no
// setting, which Load leaves alone: a misspelt setting, or a variable of
// something else.
func UnknownEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		key, _, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(key, EnvPrefix) || key == EnvConfig {
			continue
		}
		if _, ok := fields().byEnv[key]; !ok {
			out = append(out, key)
		}
	}
	return out
}

// applyYAML sets every field given in the YAML document data; file names
// the document in errors, which read "file:line: field: message".
func (c *Config) applyYAML(file string, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("%s: %w: %w", file, ErrInvalid, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return fmt.Errorf("%s:%d: %w: want one YAML document, found another", file, next.Line, ErrInvalid)
	case !errors.Is(err, io.EOF):
		return fmt.Errorf("%s: %w: %w", file, ErrInvalid, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return fmt.Errorf("%s:%d: %w: want one YAML document", file, doc.Line, ErrInvalid)
	}

	var errs []error
	fail := func(n *yaml.Node, err error) {
		errs = append(errs, fmt.Errorf("%s:%d: %w", file, n.Line, err))
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: %w: want a mapping of sections such as \"gateway:\", got %s", file, root.Line, ErrInvalid, kind(root))
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, at, val := resolve(root.Content[i]), root.Content[i+1], resolve(root.Content[i+1])
		if key.Kind != yaml.ScalarNode {
			fail(key, fmt.Errorf("%w: want a field name, got %s", ErrInvalid, kind(key)))
			continue
		}
		section := key.Value
		if line, dup := seen[section]; dup {
			fail(key, invalid(section, fmt.Sprintf("repeated, first given on line %d", line)))
			continue
		}
		seen[section] = key.Line
		if !fields().sections[section] {
			msg := "unknown field"
			if s, _, ok := strings.Cut(section, "."); ok && fields().sections[s] {
				msg += fmt.Sprintf("; nest it under %q", s+":")
			}
			fail(key, unknown(section, msg))
			continue
		}
		if isNull(val) {
			continue
		}
		if val.Kind != yaml.MappingNode {
			fail(at, invalid(section, "want a mapping, got "+kind(val)))
			continue
		}
		c.applySection(section, val, fail)
	}
	return errors.Join(errs...)
}

// applySection sets the fields given in the mapping n of section.
func (c *Config) applySection(section string, n *yaml.Node, fail func(*yaml.Node, error)) {
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, at, val := resolve(n.Content[i]), n.Content[i+1], resolve(n.Content[i+1])
		if key.Kind != yaml.ScalarNode {
			fail(key, invalid(section, "want a field name, got "+kind(key)))
			continue
		}
		name := section + "." + key.Value
		if line, dup := seen[key.Value]; dup {
			fail(key, invalid(name, fmt.Sprintf("repeated, first given on line %d", line)))
			continue
		}
		seen[key.Value] = key.Line
		if _, ok := fields().byName[name]; !ok {
			fail(key, unknown(name, "unknown field"))
			continue
		}
		switch {
		case isNull(val):
			continue
		case val.Kind != yaml.ScalarNode:
			fail(at, invalid(name, "want a single value, got "+kind(val)))
			continue
		case val.ShortTag() == "!!binary":
			fail(at, invalid(name, "want a plain value, got !!binary"))
			continue
		}
		if err := c.Set(name, val.Value); err != nil {
			fail(at, err)
		}
	}
}

// resolve follows aliases to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is an empty or null value.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kind describes the shape of n for error messages.
func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return fmt.Sprintf("%q", v)
	}
	return "an alias"
}
