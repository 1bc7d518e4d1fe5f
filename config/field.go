package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// EnvPrefix starts the name of every environment variable Load reads.
const EnvPrefix = "TIDEMARK_"

// EnvConfig is the environment variable reserved for the config file path;
// Load ignores it, the caller reads it to find the file.
const EnvConfig = EnvPrefix + "CONFIG"

// field is one setting, found by reflection over Config's yaml tags.
type field struct {
	name  string // dotted yaml path, "gateway.http"
	env   string // TIDEMARK_GATEWAY_HTTP
	index []int  // for reflect.Value.FieldByIndex
}

// schema is every setting of Config, by the names it is known under.
type schema struct {
	names    []string // sorted dotted paths
	sections map[string]bool
	byName   map[string]field
	byEnv    map[string]field
}

var durationType = reflect.TypeFor[Duration]()

// fields returns the schema, built on first use.
var fields = sync.OnceValue(func() *schema {
	s := &schema{
		sections: make(map[string]bool),
		byName:   make(map[string]field),
		byEnv:    make(map[string]field),
	}
	root := reflect.TypeFor[Config]()
	for i := range root.NumField() {
		sec := root.Field(i)
		secName := yamlName(sec)
		if sec.Type.Kind() != reflect.Struct || sec.Type == durationType {
			panic(fmt.Sprintf("config: Config.%s is not a section struct", sec.Name))
		}
		s.sections[secName] = true
		for j := range sec.Type.NumField() {
			leaf := sec.Type.Field(j)
			if !supported(leaf.Type) {
				panic(fmt.Sprintf("config: %s.%s has unsupported type %s", sec.Name, leaf.Name, leaf.Type))
			}
			f := field{index: []int{i, j}}
			f.name = secName + "." + yamlName(leaf)
			f.env = EnvName(f.name)
			if _, dup := s.byEnv[f.env]; dup {
				panic(fmt.Sprintf("config: two fields map to %s", f.env))
			}
			s.byName[f.name] = f
			s.byEnv[f.env] = f
			s.names = append(s.names, f.name)
		}
	}
	slices.Sort(s.names)
	return s
})

// yamlName returns the yaml tag name of a struct field.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" || name == "-" {
		panic(fmt.Sprintf("config: field %s has no yaml name", f.Name))
	}
	return name
}

// supported reports whether Set can parse into a field of type t.
func supported(t reflect.Type) bool {
	if t == durationType {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Int, reflect.Int64, reflect.Bool:
		return true
	}
	return false
}

// Fields returns the dotted name of every setting, sorted.
func Fields() []string {
	return slices.Clone(fields().names)
}

// EnvName returns the environment variable for the dotted field name, such
// as TIDEMARK_GATEWAY_MAX_VALUE_BYTES for "gateway.max_value_bytes".
func EnvName(field string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(field, ".", "_"))
}

// Set parses value into the setting with the dotted name, such as
// "gateway.http" or "replica.sync_writes". Strings are taken as they are,
// integers in base 10, booleans by strconv.ParseBool and durations as Go
// duration strings. Set does not validate; see Validate.
func (c *Config) Set(name, value string) error {
	f, ok := fields().byName[name]
	if !ok {
		return unknown(name, "unknown field")
	}
	v := reflect.ValueOf(c).Elem().FieldByIndex(f.index)
	if err := parse(v, value); err != nil {
		return invalid(name, err.Error())
	}
	return nil
}

// Get formats the setting with the dotted name so that Set reads it back.
func (c Config) Get(name string) (string, error) {
	f, ok := fields().byName[name]
	if !ok {
		return "", unknown(name, "unknown field")
	}
	v := reflect.ValueOf(c).FieldByIndex(f.index)
	if v.Type() == durationType {
		return Duration(v.Int()).String(), nil
	}
	switch v.Kind() {
	case reflect.String:
		return v.String(), nil
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), nil
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), nil
	}
	panic("config: unsupported type " + v.Type().String())
}

// parse is the one parser per type; it stores s in v.
func parse(v reflect.Value, s string) error {
	if v.Type() == durationType {
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return fmt.Errorf("integer out of range, got %q", s)
			}
			return fmt.Errorf("want an integer, got %q", s)
		}
		v.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		v.SetBool(b)
	default:
		panic("config: unsupported type " + v.Type().String())
	}
	return nil
}
