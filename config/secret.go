package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
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

// SigningSecretPrefix starts every signing secret: the Standard Webhooks
// form is "whsec_" followed by the standard base64 (with padding) of the
// key.
const SigningSecretPrefix = "whsec_"

// The key lengths the Standard Webhooks specification asks for.
const (
	MinSigningKeyBytes = 24
	MaxSigningKeyBytes = 64
)

// SigningKey decodes a Standard Webhooks signing secret and returns the
// HMAC key, its decoded bytes. It is the one reader of the secret's form:
// `fanout validate` and the http route both use it. Errors describe the
// form expected and never contain the secret.
func SigningKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SigningSecretPrefix)
	if !ok {
		return nil, errors.New(signingSecretForm + "; this one does not start with " + SigningSecretPrefix)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return nil, errors.New(signingSecretForm + "; what follows " + SigningSecretPrefix + " here is not standard base64 with padding")
	}
	if len(key) < MinSigningKeyBytes || len(key) > MaxSigningKeyBytes {
		return nil, fmt.Errorf("%s; this one holds %d", signingSecretForm, len(key))
	}
	return key, nil
}

var signingSecretForm = fmt.Sprintf("must be a Standard Webhooks secret: %s and the base64 of %d to %d random bytes (make one with: echo %s$(head -c 32 /dev/urandom | base64))",
	SigningSecretPrefix, MinSigningKeyBytes, MaxSigningKeyBytes, SigningSecretPrefix)
