package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cleanEnv unsets every FANOUT_* variable for the test (restored after
// it), then sets the given variables.
func cleanEnv(t *testing.T, set map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "FANOUT_") {
			t.Setenv(name, "")
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k, v := range set {
		t.Setenv(k, v)
	}
}

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestHelpGoesToStdout: every command's help, however asked for, is
// printed on stdout with exit status 0, as people expect of a CLI; a bad
// flag goes to stderr with status 2.
func TestHelpGoesToStdout(t *testing.T) {
	for _, cmd := range []string{"run", "validate", "demo", "version"} {
		for _, args := range [][]string{{cmd, "-h"}, {cmd, "--help"}, {cmd, "-help"}, {"help", cmd}} {
			code, out, errOut := runMain(args...)
			if code != 0 || errOut != "" || !strings.HasPrefix(out, "Usage: fanout "+cmd) {
				t.Errorf("fanout %s: exit %d, stdout %q…, stderr %q; want 0, the usage on stdout, nothing on stderr",
					strings.Join(args, " "), code, firstLine(out), errOut)
			}
			if (cmd == "run" || cmd == "validate") && !strings.Contains(out, "FANOUT_BROKERS") {
				t.Errorf("fanout %s: the help lacks the settings table", strings.Join(args, " "))
			}
		}
		code, out, errOut := runMain(cmd, "--no-such-flag")
		if code != 2 || out != "" || !strings.Contains(errOut, "flag provided but not defined: -no-such-flag") || !strings.Contains(errOut, "Usage: fanout "+cmd) {
			t.Errorf("fanout %s --no-such-flag: exit %d, stdout %q, stderr %q; want 2 and the problem with the usage on stderr", cmd, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		if code, out, errOut := runMain(args...); code != 0 || errOut != "" || !strings.Contains(out, "Commands:") {
			t.Errorf("fanout %s: exit %d, stderr %q, stdout %q", strings.Join(args, " "), code, errOut, out)
		}
	}
	if code, out, errOut := runMain("nope"); code != 2 || out != "" || !strings.Contains(errOut, `unknown command "nope"`) {
		t.Errorf("fanout nope: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// TestValidateTheExampleAsTheReadmeSays follows the README: copy
// fanout.example.yaml to fanout.yaml and validate it with BILLING_TOKEN
// and BILLING_SECRET set.
func TestValidateTheExampleAsTheReadmeSays(t *testing.T) {
	example, err := os.ReadFile("fanout.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fanout.yaml"), example, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	cleanEnv(t, map[string]string{
		"BILLING_TOKEN":  "t0ken",
		"BILLING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=",
	})
	for _, v := range []string{"CRM_CA_FILE", "CRM_CERT_FILE", "CRM_KEY_FILE"} {
		t.Setenv(v, "") // restored after the test
		if err := os.Unsetenv(v); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := runMain("validate")
	if code != 0 || !strings.HasPrefix(out, "fanout.yaml is valid") {
		t.Fatalf("fanout validate of the copied example: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if strings.Contains(out, "t0ken") || strings.Contains(out, "MfKQ9r8") {
		t.Errorf("the summary shows a secret:\n%s", out)
	}
}

// TestValidateShowsNoWebhookSecret: the summary shows webhook URLs by
// scheme and host, never the path that holds a Slack, Discord, Teams or
// Zapier credential.
func TestValidateShowsNoWebhookSecret(t *testing.T) {
	hooks := map[string]string{
		"slack":   "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
		"discord": "https://discord.com/api/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz",
		"teams":   "https://contoso.webhook.office.com/webhookb2/1f0e7f0c@72f988bf/IncomingWebhook/5c9d0a1b2c3d4e5f/0b1c2d3e",
		"zapier":  "https://hooks.zapier.com/hooks/catch/1234567/abcdefg/",
	}
	var b strings.Builder
	b.WriteString("receivers:\n  - topic: alerts\n    routes:\n")
	for name, u := range hooks {
		b.WriteString("      - {name: " + name + ", type: http, http: {url: \"" + u + "\"}}\n")
	}
	path := filepath.Join(t.TempDir(), "hooks.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cleanEnv(t, map[string]string{"FANOUT_CONFIG": path})
	code, out, errOut := runMain("validate")
	if code != 0 {
		t.Fatalf("validate: exit %d\n%s%s", code, out, errOut)
	}
	for name, u := range hooks {
		host := strings.SplitN(u, "/", 4)[2]
		if !strings.Contains(out, "route "+name+": http") || !strings.Contains(out, "-> https://"+host+"/… ") {
			t.Errorf("summary lacks %s as https://%s/…:\n%s", name, host, out)
		}
		if path := u[len("https://"+host):]; strings.Contains(out, path) {
			t.Errorf("summary shows the path of %s:\n%s", name, out)
		}
	}
}

// TestValidateReportsEverythingAtOnce: the environment's problems (values
// that do not parse and values that break a rule) come together, and a
// missing receivers file says how to get one.
func TestValidateReportsEverythingAtOnce(t *testing.T) {
	t.Chdir(t.TempDir())
	cleanEnv(t, map[string]string{"FANOUT_COMMIT_INTERVAL": "banana", "FANOUT_START_OFFSET": "middle"})
	code, out, errOut := runMain("validate")
	if code != 1 || out != "" {
		t.Fatalf("validate: exit %d, stdout %q; want 1 and nothing on stdout", code, out)
	}
	for _, want := range []string{
		`FANOUT_COMMIT_INTERVAL: must be a duration such as 500ms, 5s or 1m, got "banana"`,
		`FANOUT_START_OFFSET: must be earliest or latest, got "middle"`,
		"FANOUT_CONFIG: no receivers file at fanout.yaml (the default): set FANOUT_CONFIG to its path, or start from the commented example in the repository, fanout.example.yaml",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	code, _, errOut2 := runMain("run")
	if code != 1 || !strings.Contains(errOut2, "fanout run: invalid configuration:") || !strings.Contains(errOut2, errOut) {
		t.Errorf("run: exit %d, stderr:\n%s\nwant 1 and the same problems as validate", code, errOut2)
	}
}
