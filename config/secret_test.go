package config

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// testSecret is a valid signing secret: whsec_ and the base64 of the 32
// bytes 0..31.
var testSecret = SigningSecretPrefix + base64.StdEncoding.EncodeToString(testKey)

var testKey = func() []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}()

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	outs := []string{
		s.String(), s.GoString(),
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x %X %d %10s", s, s, s, s, s, s, s, s, s),
		fmt.Sprintf("%+v", struct{ P Secret }{s}),
		fmt.Sprintf("%#v", struct{ P Secret }{s}),
	}
	b, err := json.Marshal(struct{ P Secret }{s})
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(b))
	for _, out := range outs {
		if strings.Contains(out, "hunter2") || strings.Contains(out, fmt.Sprintf("%x", "hunter2")) {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if got := fmt.Sprint(s); got != "***" {
		t.Errorf("fmt.Sprint(secret) = %q, want ***", got)
	}
	if got := fmt.Sprint(Secret("")); got != "" {
		t.Errorf("fmt.Sprint(empty secret) = %q, want empty", got)
	}
	if string(s) != "hunter2" {
		t.Errorf("string(secret) = %q", string(s))
	}
}

func TestSigningKey(t *testing.T) {
	key, err := SigningKey(testSecret)
	if err != nil || !bytes.Equal(key, testKey) {
		t.Fatalf("SigningKey(%q) = %x, %v; want %x", testSecret, key, err, testKey)
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

func TestValidateRejectsASigningSecretOfAnotherForm(t *testing.T) {
	const secret = "s3cr3t-but-not-whsec"
	_, err := Parse("test.yaml", []byte(base+`      - name: hook
        type: http
        http: {url: "https://h/x", signing_secret: "${S}"}
      - name: literal
        type: http
        http: {url: "https://h/y", signing_secret: "`+secret+`"}
`), mapLookup(map[string]string{"S": secret}))
	if err == nil {
		t.Fatal("Parse accepted a signing secret without whsec_")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the error shows the secret:\n%v", err)
	}
	for _, want := range []string{
		"test.yaml:8: receivers[0].routes[1].http.signing_secret: must be a Standard Webhooks secret",
		"this one does not start with whsec_ (from ${S}, value not shown)",
		"test.yaml:11: receivers[0].routes[2].http.signing_secret: must be a Standard Webhooks secret",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
