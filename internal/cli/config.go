// Package cli holds what the tidemark commands share: how a command starts
// and ends (Main), the flags every command takes to build its
// configuration (--config, --log-level, --set), and the logger.
package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/tidemark/tidemark/config"
)

// ConfigFlags are the flags every command takes besides its own: --config,
// --log-level and --set.
type ConfigFlags struct {
	file     *string
	logLevel *string
	sets     []string
}

// AddConfigFlags declares --config, --log-level and --set on fs.
func AddConfigFlags(fs *flag.FlagSet) *ConfigFlags {
	f := &ConfigFlags{}
	f.file = fs.String("config", os.Getenv("TIDEMARK_CONFIG"), "YAML configuration file")
	f.logLevel = fs.String("log-level", "", "log level: debug, info, warn, error")
	fs.Func("set", "set any configuration field, `name=value` (repeatable; see the README for names)", func(s string) error {
		if !strings.Contains(s, "=") {
			return fmt.Errorf("want name=value, got %q", s)
		}
		f.sets = append(f.sets, s)
		return nil
	})
	return f
}

// Load builds the configuration once the flags are parsed: defaults, then
// the file, then the environment, then --set, then set (the command's own
// flags that name configuration fields; nil for none), then --log-level;
// and validates the result.
func (f *ConfigFlags) Load(environ []string, set func(*config.Config) error) (config.Config, error) {
	cfg, err := config.Load(*f.file, environ)
	if err != nil {
		return config.Config{}, err
	}
	for _, s := range f.sets {
		name, value, _ := strings.Cut(s, "=")
		if err := cfg.Set(name, value); err != nil {
			return config.Config{}, fmt.Errorf("--set %s: %w", name, err)
		}
	}
	if set != nil {
		if err := set(&cfg); err != nil {
			return config.Config{}, err
		}
	}
	if *f.logLevel != "" {
		if err := cfg.Set("log.level", *f.logLevel); err != nil {
			return config.Config{}, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return config.Config{}, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}
