package routes

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

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
// NewHTTP uses it, for `fanout run` and `fanout validate` alike. Errors
// describe the form expected and never contain the secret.
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
