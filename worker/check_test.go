package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/receiver-fanout/fanout/config"
)

// base is a valid file whose second route (receivers[0].routes[1]) starts
// on line 6; the cases below append it.
const base = `receivers:
  - topic: orders
    routes:
      - name: ok
        type: discard
`

// The rules the routes own (URLs, headers, TLS files, signing secrets, the
// Kafka client's TLS files) are checked by building what run builds:
// `fanout validate` (Check) and `fanout run` (New) reject every such case
// with the same message, naming the file, the line and the field path.
func TestCheck_rejectsWhatRunRejectsWithTheSameMessage(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(pem, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "hello.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	const r = "receivers[0].routes[1]"
	tests := []struct {
		name     string
		yaml     string // whole file
		path     string
		line     int
		contains string
	}{
		{"url relative", base + "      - name: r\n        type: http\n        http:\n          url: /events\n", r + ".http.url", 9, "absolute http or https URL"},
		{"url scheme", base + "      - name: r\n        type: http\n        http:\n          url: ftp://h/x\n", r + ".http.url", 9, "absolute http or https URL"},
		{"url unparsable", base + "      - name: r\n        type: http\n        http:\n          url: \"http://h:x:y/%zz\"\n", r + ".http.url", 9, "absolute http or https URL"},
		{"url fragment", base + "      - name: r\n        type: http\n        http:\n          url: http://h/#x\n", r + ".http.url", 9, "must not have a #fragment"},
		{"url bad port", base + "      - name: r\n        type: http\n        http:\n          url: http://h:99999/\n", r + ".http.url", 9, "invalid port"},
		{"header name invalid", base + "      - name: r\n        type: http\n        http:\n          url: http://h/\n          headers:\n            \"Bad Name\": x\n", r + `.http.headers["Bad Name"]`, 11, "not a valid header name"},
		{"header reserved", base + "      - name: r\n        type: http\n        http:\n          url: http://h/\n          headers:\n            X-Fanout-Route: x\n", r + ".http.headers.X-Fanout-Route", 11, "set by the http route itself"},
		{"header value with newline", base + "      - name: r\n        type: http\n        http:\n          url: http://h/\n          headers:\n            X-A: \"a\\nb\"\n", r + ".http.headers.X-A", 11, "value must not contain control characters"},
		{"header twice", base + "      - name: r\n        type: http\n        http:\n          url: http://h/\n          headers:\n            X-A: a\n            x-a: b\n", r + ".http.headers.x-a", 12, "duplicates header X-A"},
		{"tls with http url", base + "      - name: r\n        type: http\n        http:\n          url: http://h/\n          tls: {insecure_skip_verify: true}\n", r + ".http.tls", 10, "only applies to https URLs"},
		{"tls cert without key", base + "      - name: r\n        type: http\n        http:\n          url: https://h/\n          tls:\n            cert_file: " + pem + "\n", r + ".http.tls.key_file", 10, "required with cert_file"},
		{"tls key without cert", base + "      - name: r\n        type: http\n        http:\n          url: https://h/\n          tls:\n            key_file: " + pem + "\n", r + ".http.tls.cert_file", 10, "required with key_file"},
		{"tls ca file missing", base + "      - name: r\n        type: http\n        http:\n          url: https://h/\n          tls:\n            ca_file: /nonexistent/ca.pem\n", r + ".http.tls.ca_file", 11, "cannot read it: no such file"},
		{"tls file is a directory", base + "      - name: r\n        type: http\n        http:\n          url: https://h/\n          tls:\n            ca_file: " + dir + "\n", r + ".http.tls.ca_file", 11, "is a directory"},
		{"header Upgrade (validate used to accept it)", base + "      - name: r\n        type: http\n        http:\n          url: http://h/\n          headers:\n            Upgrade: h2c\n", r + ".http.headers.Upgrade", 11, "set by the http route itself"},
		{"CA file that holds no certificate (run refused it without file or line)", base + "      - name: r\n        type: http\n        http:\n          url: https://h/\n          tls:\n            ca_file: " + notPEM + "\n", r + ".http.tls.ca_file", 11, "holds no PEM certificate"},
		{"signing secret of another form", base + "      - name: r\n        type: http\n        http:\n          url: https://h/\n          signing_secret: s3cr3t\n", r + ".http.signing_secret", 10, "must be a Standard Webhooks secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := config.Parse("test.yaml", []byte(tt.yaml), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatalf("the file's own checks rejected it (they should leave this to the routes): %v", err)
			}
			want := fmt.Sprintf("test.yaml:%d: %s: ", tt.line, tt.path)
			checked := Check(&config.Config{Env: config.DefaultEnv(), File: f})
			if checked == nil || !strings.Contains(checked.Error(), want) || !strings.Contains(checked.Error(), tt.contains) {
				t.Fatalf("validate: %v\nwant %q with %q", checked, want, tt.contains)
			}
			env := config.DefaultEnv()
			env.HTTPAddr = "127.0.0.1:0"
			w, ran := New(Options{Env: env, File: f})
			if ran == nil {
				w.closeRoutes()
				t.Fatal("run accepted it")
			}
			if ran.Error() != checked.Error() {
				t.Fatalf("run and validate differ:\nrun:      %v\nvalidate: %v", ran, checked)
			}
		})
	}
}

// A signing secret from the environment is named, never shown.
func TestCheck_namesTheVariableOfASecret(t *testing.T) {
	const secret = "s3cr3t-but-not-whsec"
	f, err := config.Parse("test.yaml", []byte(base+`      - name: hook
        type: http
        http: {url: "https://h/x", signing_secret: "${S}"}
`), func(k string) (string, bool) { return secret, k == "S" })
	if err != nil {
		t.Fatal(err)
	}
	err = Check(&config.Config{Env: config.DefaultEnv(), File: f})
	if err == nil || strings.Contains(err.Error(), secret) ||
		!strings.Contains(err.Error(), "test.yaml:8: receivers[0].routes[1].http.signing_secret: must be a Standard Webhooks secret") ||
		!strings.Contains(err.Error(), "(from ${S}, value not shown)") {
		t.Fatalf("Check = %v", err)
	}
}

// The Kafka client's TLS files are read as the client will read them.
func TestCheck_readsTheKafkaTLSFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "hello.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Parse("test.yaml", []byte(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	env := config.DefaultEnv()
	env.TLSEnabled, env.TLSCAFile, env.TLSCertFile = true, notPEM, notPEM
	err = Check(&config.Config{Env: env, File: f})
	for _, want := range []string{"FANOUT_TLS_CA_FILE: holds no PEM certificate", "FANOUT_TLS_KEY_FILE: required with cert_file"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check = %v, want %q", err, want)
		}
	}
	env.HTTPAddr = "127.0.0.1:0"
	if _, ran := New(Options{Env: env, File: f}); ran == nil || ran.Error() != err.Error() {
		t.Errorf("run: %v\nvalidate: %v", ran, err)
	}
}

// What the routes report never shows a secret: values from the
// environment are named by their variable.
func TestFileProblems_neverLeakSecrets(t *testing.T) {
	const secret = "s3cr3t-v4lue"
	env := map[string]string{"BAD": secret + "\r\n", "FILE": "/nonexistent/" + secret, "TOKEN": secret}
	_, err := config.ParseWith("test.yaml", []byte(base+`      - name: r
        type: http
        http:
          url: https://h/x
          headers:
            Authorization: "${BAD}"
          signing_secret: "${TOKEN}"
          tls: {ca_file: "${FILE}"}
`), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, FileProblems)
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error %v", err)
	}
	for _, want := range []string{
		"http.headers.Authorization: value must not contain control characters (from ${BAD}, value not shown)",
		"http.signing_secret: must be a Standard Webhooks secret",
		"(from ${TOKEN}, value not shown)",
		"http.tls.ca_file:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
