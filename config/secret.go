package config

import (
	"fmt"
	"io"
)

// Secret is a string that does not print: every fmt verb, JSON and YAML
// encoding render it as "***" (or "" when empty), so a logged or
// %+v-printed config does not leak it. Convert explicitly to use it:
// string(s) or []byte(s).
type Secret string

const redacted = "***"

// String returns "***" when s is set and "" when it is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// Format implements fmt.Formatter so that no verb, not even %x or %d,
// prints the value.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' || (verb == 'v' && f.Flag('#')) {
		_, _ = fmt.Fprintf(f, "%q", s.String())
		return
	}
	_, _ = io.WriteString(f, s.String())
}

// MarshalJSON renders the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return fmt.Appendf(nil, "%q", s.String()), nil }

// MarshalYAML renders the redacted form.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }
