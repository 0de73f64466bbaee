package config

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

const fuzzSecret = "Zq9-fuzz-secret-Vx7"

// fuzzSigningSecret is a valid signing secret (24 bytes); its base64 must
// not show either.
const fuzzSigningSecret = "whsec_Zq9fuzzsecretVx7Zq9fuzzsecretVx7"

// fuzzLookup sets the variables the example uses, plus TOKEN; every value
// is the secret, so any leak shows.
func fuzzLookup(name string) (string, bool) {
	switch name {
	case "BILLING_TOKEN", "TOKEN":
		return fuzzSecret, true
	case "BILLING_SECRET":
		return fuzzSigningSecret, true
	case "CRM_CA_FILE", "CRM_CERT_FILE", "CRM_KEY_FILE":
		return "/etc/hostname", true
	}
	return "", false
}

func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("../fanout.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, seed := range []string{
		"",
		"receivers: []\n",
		base,
		base + "      - name: r\n        type: http\n        http: {url: \"http://h/\", headers: {A: \"${TOKEN}\"}}\n",
		base + "      - name: r\n        type: http\n        http: {url: \"${TOKEN}\", signing_secret: \"${TOKEN}\"}\n",
		base + "      - {name: k, type: kafka, kafka: {topic: x, brokers: [b:9092, c]}}\n",
		base + "      - name: r\n        wokers: x\n        retry: {max_attempts: -1, initial_backoff: soon}\n",
		"x-a: &a {name: r, type: log}\nreceivers:\n  - topic: t\n    routes: [*a, {<<: *a, name: s}]\n",
		"receivers:\n  - &r\n    topic: a\n    <<: *r\n",
		"receivers: [\n",
		"receivers:\n  - topic: a\n    routes: *missing\n",
		"a: 1\n---\nb: 2\n",
		"receivers:\n  - topic: \"${UNSET}\"\n    routes: [{name: \"$${x}\", type: \"${TOKEN:-log}\"}]\n",
		"- - - - - [[[{{{\n",
		"receivers:\n  - topic: a\n    routes:\n      - !!str name\n      - ? complex\n        : key\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		file, err := Parse("fuzz.yaml", data, fuzzLookup)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Parse took %s on %d bytes", d, len(data))
		}
		if (file == nil) == (err == nil) {
			t.Fatalf("Parse returned file=%v err=%v: want exactly one", file != nil, err)
		}
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("error %v (%T) is not a *ValidationError with problems", err, err)
			}
			for _, p := range ve.Problems {
				if p.Msg == "" {
					t.Fatalf("problem without a message: %+v", p)
				}
			}
			// The secret only comes through ${...}; unless the input
			// spells it out (or could, through escapes), it must not show.
			for _, secret := range []string{fuzzSecret, fuzzSigningSecret[len("whsec_"):]} {
				if strings.Contains(err.Error(), secret) && !bytes.Contains(data, []byte(secret)) && !bytes.ContainsRune(data, '\\') {
					t.Fatalf("secret leaked:\n%v", err)
				}
			}
			return
		}
		if len(file.Receivers) == 0 {
			t.Fatal("a valid file without receivers")
		}
		if err := file.Validate(); err != nil {
			t.Fatalf("Parse accepted a file that Validate rejects: %v", err)
		}
		if s := file.Summary(); strings.Contains(s, fuzzSecret) && !bytes.Contains(data, []byte(fuzzSecret)) && !bytes.ContainsRune(data, '\\') {
			t.Fatalf("secret in summary:\n%s", s)
		}
	})
}
