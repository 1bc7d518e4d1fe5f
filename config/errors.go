package config

import "errors"

// ErrInvalid is matched by every error about a bad configuration: a value
// that does not parse, a rule that Validate enforces, a malformed YAML file
// or an unknown field.
var ErrInvalid = errors.New("invalid config")

// ErrUnknownField is matched by errors about a YAML field, a Set name or a
// TIDEMARK_ environment variable that names no setting.
var ErrUnknownField = errors.New("unknown field")

// FieldError is a problem with one setting; it matches ErrInvalid, and
// also ErrUnknownField when the setting does not exist.
type FieldError struct {
	// Field is the dotted YAML path, such as "gateway.http", or for an
	// unknown environment variable its name.
	Field string
	// Msg says what is wrong, such as "must be between 1 and 5, got 7".
	Msg string

	unknown bool
}

// Error returns "field: message".
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap returns the sentinels the error matches.
func (e *FieldError) Unwrap() []error {
	if e.unknown {
		return []error{ErrUnknownField, ErrInvalid}
	}
	return []error{ErrInvalid}
}

// invalid returns a FieldError for field with a formatted message.
func invalid(field, msg string) *FieldError {
	return &FieldError{Field: field, Msg: msg}
}

// unknown returns a FieldError for a name that matches no setting.
func unknown(name, msg string) *FieldError {
	return &FieldError{Field: name, Msg: msg, unknown: true}
}
