// Package config owns Tidemark's one configuration type, Config.
//
// A Config starts from Default, then takes a YAML file, then environment
// variables, then flags; each later source wins over the earlier ones.
// Load does the first three steps; the caller applies flags through
// Config.Set and then calls Config.Validate:
//
//	cfg, err := config.Load(os.Getenv(config.EnvConfig), os.Environ())
//	if err != nil {
//		return err
//	}
//	// for each flag given: cfg.Set(name, value)
//	if err := cfg.Validate(); err != nil {
//		return err
//	}
//
// Every setting has one name, its dotted YAML path such as "gateway.http",
// used by Set, Get and Fields. Its environment variable is the same path in
// upper case with dots turned into underscores behind the TIDEMARK_ prefix,
// such as TIDEMARK_GATEWAY_HTTP (see EnvName). The file, the environment and
// flags all parse values through Set, so a value means the same thing
// wherever it comes from.
//
// Errors name the field at fault and match ErrInvalid with errors.Is;
// errors about a field or variable that does not exist also match
// ErrUnknownField. Use errors.As with *FieldError to get at the field.
//
// The package imports no other Tidemark package.
package config
