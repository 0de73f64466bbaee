package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/receiver-fanout/fanout/alerting"
	"github.com/receiver-fanout/fanout/config"
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

// markdownLink matches the target of a Markdown link: [text](target).
var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocsPointInsideTheRepository: README.md and docs/*.md link only to
// files of the repository that exist, and name no file outside it.
func TestDocsPointInsideTheRepository(t *testing.T) {
	docs, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range append([]string{"README.md"}, docs...) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "DESIGN.md") || strings.Contains(string(b), "../shared") {
			t.Errorf("%s names a file outside the repository (DESIGN.md or shared/)", doc)
		}
		for _, m := range markdownLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.HasPrefix(target, "#") || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			path := filepath.Join(filepath.Dir(doc), target)
			if rel, err := filepath.Rel(".", path); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links outside the repository: %s", doc, m[1])
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to a missing file: %s", doc, m[1])
			}
		}
	}
}

// TestContractCoversEverything: docs/contract.md names every setting,
// every alert of alerting/rules.yml and every metric the rules and the
// dashboard use, so the users' reference cannot fall behind the code.
func TestContractCoversEverything(t *testing.T) {
	b, err := os.ReadFile("docs/contract.md")
	if err != nil {
		t.Fatal(err)
	}
	contract := string(b)
	var usage bytes.Buffer
	if err := config.PrintEnvUsage(&usage); err != nil {
		t.Fatal(err)
	}
	vars := regexp.MustCompile(`(?m)^(FANOUT_[A-Z_]+)`).FindAllString(usage.String(), -1)
	if len(vars) < 20 {
		t.Fatalf("only %d settings found in the usage: %v", len(vars), vars)
	}
	for _, v := range vars {
		if !strings.Contains(contract, "`"+v+"`") {
			t.Errorf("docs/contract.md does not document %s", v)
		}
	}
	rules, err := os.ReadFile("alerting/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`- alert: (\w+)`).FindAllStringSubmatch(string(rules), -1) {
		if !strings.Contains(contract, "["+m[1]+"](runbook.md#"+strings.ToLower(m[1])+")") {
			t.Errorf("docs/contract.md does not list alert %s with its runbook link", m[1])
		}
	}
	metrics, err := alerting.MetricNames("alerting/rules.yml", "alerting/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range metrics {
		// kprom's metrics are listed by their names after fanout_kafka_.
		if short, ok := strings.CutPrefix(name, "fanout_kafka_"); ok {
			name = short
		}
		if !strings.Contains(contract, "`"+name+"`") {
			t.Errorf("docs/contract.md does not document the metric %s", name)
		}
	}
	for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature", "Idempotency-Key", "fanout-error", "fanout-value-omitted"} {
		if !strings.Contains(contract, "`"+h+"`") {
			t.Errorf("docs/contract.md does not document the header %s", h)
		}
	}
}
