package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// clearEnv unsets every FANOUT_* variable for the test, restoring them
// after it, then sets the given ones.
func clearEnv(t *testing.T, set map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "FANOUT_") {
			t.Setenv(name, "") // registers the restore
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k, v := range set {
		t.Setenv(k, v)
	}
}

func TestLoadEnvDefaults(t *testing.T) {
	clearEnv(t, nil)
	// Unprefixed names must not leak in through envconfig's fallback.
	t.Setenv("GROUP", "not-mine")
	t.Setenv("LOG_LEVEL", "bogus")
	e, err := LoadEnv()
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultEnv(); !reflect.DeepEqual(e, want) {
		t.Errorf("LoadEnv() =\n%+v\nwant DefaultEnv()\n%+v", e, want)
	}
	if e.FetchMaxBytes != 16777216 || e.PartitionFetchMaxBytes != 1048576 || e.MaxConcurrentFetches != 2 {
		t.Errorf("fetch defaults = %d %d %d", e.FetchMaxBytes, e.PartitionFetchMaxBytes, e.MaxConcurrentFetches)
	}
	if err := DefaultEnv().Validate(); err != nil {
		t.Errorf("DefaultEnv().Validate() = %v", err)
	}
}

func TestLoadEnvReadsEveryVariable(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(pem, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	clearEnv(t, map[string]string{
		"FANOUT_BROKERS":                   " k1:9092, k2:9093 ",
		"FANOUT_GROUP":                     "g",
		"FANOUT_CONFIG":                    "/etc/fanout.yaml",
		"FANOUT_HTTP_ADDR":                 "127.0.0.1:9000",
		"FANOUT_LOG_LEVEL":                 "DEBUG",
		"FANOUT_LOG_FORMAT":                "Console",
		"FANOUT_COMMIT_INTERVAL":           "250ms",
		"FANOUT_START_OFFSET":              "Latest",
		"FANOUT_INSTANCE_ID":               "pod-0",
		"FANOUT_SHUTDOWN_TIMEOUT":          "1m",
		"FANOUT_CLIENT_ID":                 "c",
		"FANOUT_SESSION_TIMEOUT":           "10s",
		"FANOUT_REBALANCE_TIMEOUT":         "20s",
		"FANOUT_REVOKE_TIMEOUT":            "5s",
		"FANOUT_FETCH_MAX_BYTES":           "1000",
		"FANOUT_PARTITION_FETCH_MAX_BYTES": "100",
		"FANOUT_MAX_CONCURRENT_FETCHES":    "3",
		"FANOUT_TLS_CA_FILE":               pem,
		"FANOUT_TLS_CERT_FILE":             pem,
		"FANOUT_TLS_KEY_FILE":              pem,
		"FANOUT_SASL_MECHANISM":            "scram-sha-512",
		"FANOUT_SASL_USERNAME":             "u",
		"FANOUT_SASL_PASSWORD":             "p",
	})
	e, err := LoadEnv()
	if err != nil {
		t.Fatal(err)
	}
	want := Env{
		Brokers: []string{"k1:9092", "k2:9093"}, Group: "g", ConfigFile: "/etc/fanout.yaml",
		HTTPAddr: "127.0.0.1:9000", LogLevel: "debug", LogFormat: "console",
		CommitInterval: 250 * time.Millisecond, StartOffset: StartLatest, InstanceID: "pod-0",
		ShutdownTimeout: time.Minute, ClientID: "c", SessionTimeout: 10 * time.Second,
		RebalanceTimeout: 20 * time.Second, RevokeTimeout: 5 * time.Second, FetchMaxBytes: 1000, PartitionFetchMaxBytes: 100,
		MaxConcurrentFetches: 3, TLSEnabled: true, TLSCAFile: pem, TLSCertFile: pem, TLSKeyFile: pem,
		SASLMechanism: SASLScramSHA512, SASLUsername: "u", SASLPassword: "p",
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("LoadEnv() =\n%+v\nwant\n%+v", e, want)
	}
}

func TestLoadEnvErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string // a whole line of the error
	}{
		{"start offset", map[string]string{"FANOUT_START_OFFSET": "middle"}, `FANOUT_START_OFFSET: must be earliest or latest, got "middle"`},
		{"log level", map[string]string{"FANOUT_LOG_LEVEL": "verbose"}, `FANOUT_LOG_LEVEL: must be one of trace, debug, info, warn, error, fatal, panic, disabled, got "verbose"`},
		{"log format", map[string]string{"FANOUT_LOG_FORMAT": "xml"}, `FANOUT_LOG_FORMAT: must be json or console, got "xml"`},
		{"commit interval unparsable", map[string]string{"FANOUT_COMMIT_INTERVAL": "soon"}, `FANOUT_COMMIT_INTERVAL: must be a duration such as 500ms, 5s or 1m, got "soon"`},
		{"commit interval zero", map[string]string{"FANOUT_COMMIT_INTERVAL": "0s"}, "FANOUT_COMMIT_INTERVAL: must be positive, got 0s"},
		{"revoke timeout not below rebalance timeout", map[string]string{"FANOUT_REVOKE_TIMEOUT": "60s"}, "FANOUT_REVOKE_TIMEOUT: must be shorter than FANOUT_REBALANCE_TIMEOUT (1m0s), or the member is dropped from the group while it drains"},
		{"shutdown timeout negative", map[string]string{"FANOUT_SHUTDOWN_TIMEOUT": "-1s"}, "FANOUT_SHUTDOWN_TIMEOUT: must be positive, got -1s"},
		{"tls flag", map[string]string{"FANOUT_TLS_ENABLED": "sure"}, `FANOUT_TLS_ENABLED: must be true or false, got "sure"`},
		{"fetch bytes", map[string]string{"FANOUT_FETCH_MAX_BYTES": "lots"}, `FANOUT_FETCH_MAX_BYTES: must be an integer, got "lots"`},
		{"fetch bytes overflow", map[string]string{"FANOUT_FETCH_MAX_BYTES": "3000000000"}, `FANOUT_FETCH_MAX_BYTES: must be an integer, got "3000000000"`},
		{"partition above fetch", map[string]string{"FANOUT_PARTITION_FETCH_MAX_BYTES": "20000000"}, "FANOUT_PARTITION_FETCH_MAX_BYTES: must not exceed FANOUT_FETCH_MAX_BYTES (16777216), got 20000000"},
		{"concurrent fetches", map[string]string{"FANOUT_MAX_CONCURRENT_FETCHES": "0"}, "FANOUT_MAX_CONCURRENT_FETCHES: must be positive, got 0"},
		{"no brokers", map[string]string{"FANOUT_BROKERS": ""}, "FANOUT_BROKERS: at least one broker is required"},
		{"broker without port", map[string]string{"FANOUT_BROKERS": "k1:9092,k2"}, `FANOUT_BROKERS: "k2" is not a host:port address`},
		{"empty group", map[string]string{"FANOUT_GROUP": ""}, "FANOUT_GROUP: must not be empty"},
		{"empty config", map[string]string{"FANOUT_CONFIG": ""}, "FANOUT_CONFIG: must not be empty"},
		{"http addr", map[string]string{"FANOUT_HTTP_ADDR": "8080"}, `FANOUT_HTTP_ADDR: must be [host]:port such as :8080, got "8080"`},
		{"instance id", map[string]string{"FANOUT_INSTANCE_ID": "pod 0"}, `FANOUT_INSTANCE_ID: must be at most 249 letters, digits, '.', '_' and '-', got "pod 0"`},
		{"sasl mechanism", map[string]string{"FANOUT_SASL_MECHANISM": "GSSAPI"}, `FANOUT_SASL_MECHANISM: must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got "GSSAPI"`},
		{"sasl without user", map[string]string{"FANOUT_SASL_MECHANISM": "plain", "FANOUT_SASL_PASSWORD": "pw"}, "FANOUT_SASL_USERNAME: required with FANOUT_SASL_MECHANISM=PLAIN"},
		{"sasl without password", map[string]string{"FANOUT_SASL_MECHANISM": "SCRAM-SHA-256", "FANOUT_SASL_USERNAME": "u"}, "FANOUT_SASL_PASSWORD: required with FANOUT_SASL_MECHANISM=SCRAM-SHA-256"},
		{"credentials without mechanism", map[string]string{"FANOUT_SASL_USERNAME": "u"}, "FANOUT_SASL_MECHANISM: required when FANOUT_SASL_USERNAME or FANOUT_SASL_PASSWORD is set: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t, tt.env)
			_, err := LoadEnv()
			if err == nil {
				t.Fatal("LoadEnv succeeded")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is a %T, want *ValidationError", err, err)
			}
			found := false
			for _, line := range strings.Split(err.Error(), "\n") {
				found = found || line == tt.want
			}
			if !found {
				t.Errorf("error lacks the line\n%s\ngot:\n%v", tt.want, err)
			}
		})
	}
}

func TestLoadEnvReportsEveryProblem(t *testing.T) {
	clearEnv(t, map[string]string{"FANOUT_START_OFFSET": "middle", "FANOUT_LOG_FORMAT": "xml", "FANOUT_GROUP": ""})
	_, err := LoadEnv()
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("want three problems, got:\n%v", err)
	}
}

// TestLoadEnvReportsEveryParseError: values that do not parse are
// reported together, with the rules the parsable ones break, and a broken
// value draws no second message.
func TestLoadEnvReportsEveryParseError(t *testing.T) {
	clearEnv(t, map[string]string{
		"FANOUT_COMMIT_INTERVAL":   "banana",
		"FANOUT_START_OFFSET":      "middle",
		"FANOUT_FETCH_MAX_BYTES":   "lots",
		"FANOUT_TLS_ENABLED":       "sure",
		"FANOUT_REBALANCE_TIMEOUT": "soon",
	})
	_, err := LoadEnv()
	if err == nil {
		t.Fatal("LoadEnv succeeded")
	}
	want := []string{
		`FANOUT_COMMIT_INTERVAL: must be a duration such as 500ms, 5s or 1m, got "banana"`,
		`FANOUT_REBALANCE_TIMEOUT: must be a duration such as 500ms, 5s or 1m, got "soon"`,
		`FANOUT_FETCH_MAX_BYTES: must be an integer, got "lots"`,
		`FANOUT_TLS_ENABLED: must be true or false, got "sure"`,
		`FANOUT_START_OFFSET: must be earliest or latest, got "middle"`,
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("LoadEnv error:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestEnvNeverShowsThePassword(t *testing.T) {
	const pw = "hunter2-password"
	clearEnv(t, map[string]string{
		"FANOUT_SASL_MECHANISM": "PLAIN",
		"FANOUT_SASL_PASSWORD":  pw,
		"FANOUT_START_OFFSET":   "middle",
	})
	_, err := LoadEnv()
	if err == nil {
		t.Fatal("LoadEnv succeeded")
	}
	e := DefaultEnv()
	e.SASLMechanism, e.SASLUsername, e.SASLPassword = SASLPlain, "u", pw
	for _, out := range []string{
		err.Error(), e.Summary(), fmt.Sprint(e), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e),
	} {
		if strings.Contains(out, pw) {
			t.Errorf("password leaked in:\n%s", out)
		}
	}
	if !strings.Contains(e.Summary(), "sasl") || !strings.Contains(e.Summary(), "password=***") {
		t.Errorf("Summary should show the password as ***:\n%s", e.Summary())
	}
}

func TestEnvSummary(t *testing.T) {
	s := DefaultEnv().Summary()
	for _, want := range []string{"brokers", "localhost:9092", "group", "fanout", "start offset", "earliest", "tls", "off"} {
		if !strings.Contains(s, want) {
			t.Errorf("Summary lacks %q:\n%s", want, s)
		}
	}
}

func TestPrintEnvUsage(t *testing.T) {
	var b bytes.Buffer
	if err := PrintEnvUsage(&b); err != nil {
		t.Fatal(err)
	}
	for _, name := range envFieldNames() {
		if !strings.Contains(b.String(), name) {
			t.Errorf("usage lacks %s:\n%s", name, b.String())
		}
	}
	if !strings.Contains(b.String(), "localhost:9092") {
		t.Errorf("usage lacks the defaults:\n%s", b.String())
	}
}

func TestUnknownVars(t *testing.T) {
	got := UnknownVars([]string{"FANOUT_BROKERS=x", "FANOUT_BROKER=x", "PATH=/bin", "FANOUT_GRUOP="})
	if !reflect.DeepEqual(got, []string{"FANOUT_BROKER", "FANOUT_GRUOP"}) {
		t.Errorf("UnknownVars = %q", got)
	}
}

func TestLoadWithoutTheFileSaysHowToGetOne(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	clearEnv(t, nil)
	_, err := Load()
	want := "FANOUT_CONFIG: no receivers file at fanout.yaml (the default): set FANOUT_CONFIG to its path, or start from the commented example in the repository, fanout.example.yaml (cp fanout.example.yaml fanout.yaml)"
	if err == nil || err.Error() != want {
		t.Errorf("Load without fanout.yaml = %v\nwant %s", err, want)
	}

	missing := filepath.Join(dir, "etc", "fanout.yaml")
	clearEnv(t, map[string]string{"FANOUT_CONFIG": missing, "FANOUT_START_OFFSET": "middle"})
	_, err = Load()
	for _, want := range []string{
		"FANOUT_START_OFFSET: must be earliest or latest",
		"FANOUT_CONFIG: no receivers file at " + missing + ": set FANOUT_CONFIG to its path",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load = %v\nwant it to say %q", err, want)
		}
	}

	clearEnv(t, map[string]string{"FANOUT_CONFIG": dir})
	_, err = Load()
	if want := "FANOUT_CONFIG: cannot read the receivers file " + dir + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load of a directory = %v, want %q...", err, want)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.yaml")
	if err := os.WriteFile(path, []byte("receivers:\n  - topic: a\n    routes: [{name: b, type: http, http: {url: \"${HOOK_URL}\"}}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("valid", func(t *testing.T) {
		clearEnv(t, map[string]string{"FANOUT_CONFIG": path, "HOOK_URL": "http://h/"})
		c, err := Load()
		if err != nil {
			t.Fatal(err)
		}
		if c.Env.ConfigFile != path || c.File.Receivers[0].Routes[0].HTTP.URL != "http://h/" {
			t.Errorf("Load = %+v", c)
		}
	})
	t.Run("environment and file problems together", func(t *testing.T) {
		clearEnv(t, map[string]string{"FANOUT_CONFIG": path, "FANOUT_START_OFFSET": "middle", "HOOK_URL": ""})
		if err := os.Unsetenv("HOOK_URL"); err != nil {
			t.Fatal(err)
		}
		_, err := Load()
		if err == nil || !strings.Contains(err.Error(), "FANOUT_START_OFFSET: must be") ||
			!strings.Contains(err.Error(), path+":3: receivers[0].routes[0].http.url: environment variable HOOK_URL is not set") {
			t.Errorf("Load = %v", err)
		}
	})
}
