package routes

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

var signingTestKey = func() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}()

var signingTestSecret = SigningSecretPrefix + base64.StdEncoding.EncodeToString(signingTestKey)

func TestSigningKey(t *testing.T) {
	key, err := SigningKey(signingTestSecret)
	if err != nil || !bytes.Equal(key, signingTestKey) {
		t.Fatalf("SigningKey(%q) = %x, %v; want %x", signingTestSecret, key, err, signingTestKey)
	}
	// Svix's documented example secret: 24 bytes, no padding needed.
	if key, err := SigningKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"); err != nil || len(key) != 24 {
		t.Errorf("SigningKey of a 24-byte secret = %d bytes, %v", len(key), err)
	}
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, n)) }
	for _, tt := range []struct{ name, secret, want string }{
		{"no prefix", b64(32), "this one does not start with whsec_"},
		{"prefix in another case", "WHSEC_" + b64(32), "this one does not start with whsec_"},
		{"a password", "hunter2-hunter2-hunter2-hunter2", "this one does not start with whsec_"},
		{"not base64", "whsec_not base64!", "is not standard base64 with padding"},
		{"url-safe base64", "whsec_" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 30)), "is not standard base64 with padding"},
		{"padding missing", "whsec_" + strings.TrimRight(b64(32), "="), "is not standard base64 with padding"},
		{"too short", "whsec_" + b64(23), "this one holds 23"},
		{"too long", "whsec_" + b64(65), "this one holds 65"},
		{"empty key", "whsec_", "this one holds 0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SigningKey(tt.secret)
			if err == nil {
				t.Fatalf("SigningKey(%q) accepted it", tt.secret)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "must be a Standard Webhooks secret: whsec_ and the base64 of 24 to 64 random bytes") {
				t.Errorf("error %q, want the form and %q", err, tt.want)
			}
			if b, _, _ := strings.Cut(strings.TrimPrefix(tt.secret, "whsec_"), "="); len(b) > 6 && strings.Contains(err.Error(), b) {
				t.Errorf("error %q quotes the secret", err)
			}
		})
	}
}
