package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// noEnv is a lookup with nothing set.
func noEnv(string) (string, bool) { return "", false }

// problemsOf returns the problems of a *ValidationError, failing the test
// for any other error.
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	return ve.Problems
}

func TestParseFillsDefaults(t *testing.T) {
	f, err := Parse("test.yaml", []byte(`
receivers:
  - topic: orders
    routes:
      - name: hook
        type: http
        http: {url: "http://h:8080/x"}
      - name: sink
        type: discard
        filter: {headers: {type: a}}
`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := &File{Receivers: []Receiver{{
		Topic:          "orders",
		MaxInflight:    10000,
		MaxInflightMiB: 64,
		Routes: []Route{
			{
				Name: "hook", Type: RouteHTTP, Workers: 4, Buffer: 1024, Ordering: OrderingKey,
				Retry: Retry{InitialBackoff: 200 * time.Millisecond, MaxBackoff: 30 * time.Second},
				HTTP:  &HTTP{URL: "http://h:8080/x", Timeout: 5 * time.Second},
			},
			{
				Name: "sink", Type: RouteDiscard, Workers: 4, Buffer: 1024, Ordering: OrderingKey,
				Retry:  Retry{InitialBackoff: 200 * time.Millisecond, MaxBackoff: 30 * time.Second},
				Filter: &Filter{Headers: map[string]string{"type": "a"}},
			},
		},
	}}}
	f.src = nil // where it came from, for later problems
	if !reflect.DeepEqual(f, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", f, want)
	}
}

func TestParseNullMeansDefault(t *testing.T) {
	f, err := Parse("test.yaml", []byte(`
receivers:
  - topic: orders
    max_inflight:
    routes:
      - {name: a, type: log, workers: ~, ordering: null, filter: , retry: }
`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	rt := f.Receivers[0].Routes[0]
	if f.Receivers[0].MaxInflight != DefaultMaxInflight || rt.Workers != DefaultWorkers || rt.Ordering != OrderingKey || rt.Filter != nil {
		t.Errorf("nulls did not keep the defaults: %+v %+v", f.Receivers[0], rt)
	}
}

func TestParseAllFields(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(pem, []byte("not checked here"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := mapLookup(map[string]string{"TOKEN": "tok", "SECRET": testSecret, "PEM": pem, "WORKERS": "7", "BROKERS": "b1:9092, b2:9093"})
	f, err := Parse("test.yaml", []byte(`
receivers:
  - topic: orders
    max_inflight: 1_000
    routes:
      - name: hook
        type: http
        workers: ${WORKERS}
        buffer: 0x10
        ordering: partition
        filter: {headers: {type: order.created, v: 2}}
        retry: {max_attempts: 3, initial_backoff: 1s, max_backoff: 1m}
        dead_letter_topic: orders.dlq
        http:
          url: https://h/x
          timeout: 2s
          headers: {Authorization: "Bearer ${TOKEN}"}
          signing_secret: ${SECRET}
          tls: {ca_file: "${PEM}", cert_file: "${PEM}", key_file: "${PEM}", insecure_skip_verify: true}
      - name: copy
        type: kafka
        ordering: none
        kafka: {topic: orders, brokers: "${BROKERS}"}
`), env)
	if err != nil {
		t.Fatal(err)
	}
	r := f.Receivers[0]
	hook, copyRoute := r.Routes[0], r.Routes[1]
	want := Route{
		Name: "hook", Type: RouteHTTP, Workers: 7, Buffer: 16, Ordering: OrderingPartition,
		Filter:          &Filter{Headers: map[string]string{"type": "order.created", "v": "2"}},
		Retry:           Retry{MaxAttempts: 3, InitialBackoff: time.Second, MaxBackoff: time.Minute},
		DeadLetterTopic: "orders.dlq",
		HTTP: &HTTP{
			URL: "https://h/x", Timeout: 2 * time.Second,
			Headers:       map[string]string{"Authorization": "Bearer tok"},
			SigningSecret: Secret(testSecret),
			TLS:           &TLS{CAFile: pem, CertFile: pem, KeyFile: pem, InsecureSkipVerify: true},
		},
	}
	if r.MaxInflight != 1000 {
		t.Errorf("max_inflight = %d, want 1000", r.MaxInflight)
	}
	if !reflect.DeepEqual(hook, want) {
		t.Errorf("http route =\n%+v\nwant\n%+v", hook, want)
	}
	if !reflect.DeepEqual(copyRoute.Kafka, &Kafka{Topic: "orders", Brokers: []string{"b1:9092", "b2:9093"}}) {
		t.Errorf("kafka route = %+v", copyRoute.Kafka)
	}
}

func TestParseAnchorsAndMerge(t *testing.T) {
	f, err := Parse("test.yaml", []byte(`
x-route: &base
  type: discard
  workers: 3
  buffer: 5
receivers:
  - topic: orders
    routes:
      - <<: *base
        name: a
      - <<: *base
        name: b
        workers: 9
      - &c {name: c, type: log}
  - topic: payments
    routes: [*c]
`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	rs := f.Receivers[0].Routes
	if rs[0].Workers != 3 || rs[0].Buffer != 5 || rs[0].Type != RouteDiscard {
		t.Errorf("merged route a = %+v", rs[0])
	}
	if rs[1].Workers != 9 || rs[1].Buffer != 5 {
		t.Errorf("route b: explicit key should win over merged: %+v", rs[1])
	}
	if got := f.Receivers[1].Routes[0]; got.Name != "c" || got.Type != RouteLog {
		t.Errorf("aliased route = %+v", got)
	}

	// An alias refers to the latest anchor of its name before it.
	f, err = Parse("test.yaml", []byte(`
x-a: &w 1
x-b: &w 2
receivers:
  - topic: orders
    routes:
      - {name: a, type: log, workers: *w}
x-c: &w 3
`), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Receivers[0].Routes[0].Workers; got != 2 {
		t.Errorf("workers = %d, want 2 from the second &w", got)
	}
}

// base is a valid file whose second route (receivers[0].routes[1]) starts
// on line 6; the cases below append it.
const base = `receivers:
  - topic: orders
    routes:
      - name: ok
        type: discard
`

func TestParseReportsFieldPathAndLine(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(pem, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const r = "receivers[0].routes[1]"
	long := strings.Repeat("t", 250)
	var many strings.Builder
	for i := range 65 {
		fmt.Fprintf(&many, "      - {name: r%d, type: discard}\n", i)
	}
	tests := []struct {
		name     string
		yaml     string // whole file
		path     string
		line     int
		contains string
	}{
		// The file as a whole.
		{"empty file", "", "receivers", 0, "at least one receiver"},
		{"no receivers", "receivers: []\n", "receivers", 1, "at least one receiver"},
		{"receivers not a list", "receivers: {topic: a}\n", "receivers", 1, "must be a list, got a mapping"},
		{"not a mapping", "- a\n", "", 1, "must be a mapping"},
		{"unknown top-level field", "recievers: []\n", "recievers", 1, "unknown field (did you mean receivers?)"},
		{"syntax error", "receivers: [\n", "", 1, "invalid YAML"},
		{"two documents", base + "---\nreceivers: []\n", "", 7, "only one YAML document"},
		{"undefined alias", base + "      - *nope\n", r, 6, "alias *nope refers to no anchor"},

		// Receivers.
		{"topic missing", "receivers:\n  - routes: [{name: a, type: log}]\n", "receivers[0].topic", 2, "required"},
		{"topic invalid", "receivers:\n  - topic: a/b\n    routes: [{name: a, type: log}]\n", "receivers[0].topic", 2, `"a/b" is not a valid Kafka topic name`},
		{"topic dot", "receivers:\n  - topic: ..\n    routes: [{name: a, type: log}]\n", "receivers[0].topic", 2, "not a valid Kafka topic name"},
		{"topic too long", "receivers:\n  - topic: " + long + "\n    routes: [{name: a, type: log}]\n", "receivers[0].topic", 2, "at most 249"},
		{"topic twice", base + "  - topic: orders\n    routes: [{name: a, type: log}]\n", "receivers[1].topic", 6, "also consumed by receivers[0]"},
		{"max_inflight zero", "receivers:\n  - topic: a\n    max_inflight: 0\n    routes: [{name: a, type: log}]\n", "receivers[0].max_inflight", 3, "between 1 and 1000000"},
		{"max_inflight too big", "receivers:\n  - topic: a\n    max_inflight: 1000001\n    routes: [{name: a, type: log}]\n", "receivers[0].max_inflight", 3, "between 1 and 1000000"},
		{"max_inflight not a number", "receivers:\n  - topic: a\n    max_inflight: lots\n    routes: [{name: a, type: log}]\n", "receivers[0].max_inflight", 3, `must be an integer, got "lots"`},
		{"max_inflight_mib zero", "receivers:\n  - topic: a\n    max_inflight_mib: 0\n    routes: [{name: a, type: log}]\n", "receivers[0].max_inflight_mib", 3, "between 1 and 1048576"},
		{"no routes", "receivers:\n  - topic: a\n", "receivers[0].routes", 2, "at least one route"},
		{"empty routes", "receivers:\n  - topic: a\n    routes: []\n", "receivers[0].routes", 3, "at least one route"},
		{"too many routes", "receivers:\n  - topic: a\n    routes:\n" + many.String(), "receivers[0].routes", 3, "at most 64 routes"},
		{"receiver unknown field", "receivers:\n  - topic: a\n    route: []\n", "receivers[0].route", 3, "unknown field (did you mean routes?)"},
		{"receiver not a mapping", "receivers:\n  - orders\n", "receivers[0]", 2, "must be a mapping, got a string"},

		// Routes.
		{"route not a mapping", base + "      - just-a-name\n", r, 6, "must be a mapping"},
		{"misspelt field", base + "      - name: r\n        type: log\n        wokers: 3\n", r + ".wokers", 8, "unknown field (did you mean workers?)"},
		{"name missing", base + "      - type: log\n", r + ".name", 6, "required"},
		{"name invalid", base + "      - name: a b\n        type: log\n", r + ".name", 6, `"a b" is not a valid route name`},
		{"name duplicate", base + "      - name: ok\n        type: log\n", r + ".name", 6, `route name "ok" is also used by routes[0]`},
		{"type missing", base + "      - name: r\n", r + ".type", 6, "required: http, kafka, log or discard"},
		{"type unknown", base + "      - name: r\n        type: htp\n", r + ".type", 7, `unknown type "htp"`},
		{"workers zero", base + "      - name: r\n        type: log\n        workers: 0\n", r + ".workers", 8, "between 1 and 1024, got 0"},
		{"workers too many", base + "      - name: r\n        type: log\n        workers: 1025\n", r + ".workers", 8, "between 1 and 1024"},
		{"kafka workers too many", base + "      - name: r\n        type: kafka\n        workers: 65537\n        kafka: {topic: c}\n", r + ".workers", 8, "between 1 and 65536, got 65537"},
		{"workers not a number", base + "      - name: r\n        type: log\n        workers: many\n", r + ".workers", 8, "must be an integer"},
		{"workers a list", base + "      - name: r\n        type: log\n        workers: [1]\n", r + ".workers", 8, "must be an integer, got a list"},
		{"buffer zero", base + "      - name: r\n        type: log\n        buffer: 0\n", r + ".buffer", 8, "between 1 and 1000000"},
		{"buffer too big", base + "      - name: r\n        type: log\n        buffer: 1000001\n", r + ".buffer", 8, "between 1 and 1000000"},
		{"ordering unknown", base + "      - name: r\n        type: log\n        ordering: fifo\n", r + ".ordering", 8, `unknown ordering "fifo"`},
		{"filter without headers", base + "      - name: r\n        type: log\n        filter: {}\n", r + ".filter.headers", 8, "at least one header"},
		{"filter unknown field", base + "      - name: r\n        type: log\n        filter: {header: {a: b}}\n", r + ".filter.header", 8, "unknown field (did you mean headers?)"},
		{"max_attempts negative", base + "      - name: r\n        type: log\n        retry: {max_attempts: -1}\n", r + ".retry.max_attempts", 8, "0 (unlimited) or more"},
		{"max_attempts without dead_letter_topic", base + "      - name: r\n        type: log\n        retry:\n          max_attempts: 3\n", r + ".retry.max_attempts", 9, "requires dead_letter_topic"},
		{"initial_backoff zero", base + "      - name: r\n        type: log\n        retry: {initial_backoff: 0s}\n", r + ".retry.initial_backoff", 8, "must be positive"},
		{"max_backoff below initial", base + "      - name: r\n        type: log\n        retry: {initial_backoff: 1m, max_backoff: 1s}\n", r + ".retry.max_backoff", 8, "at least initial_backoff (1m0s)"},
		{"backoff not a duration", base + "      - name: r\n        type: log\n        retry:\n          initial_backoff: 5\n", r + ".retry.initial_backoff", 9, "must be a duration"},
		{"dead_letter_topic is the receiver topic", base + "      - name: r\n        type: log\n        dead_letter_topic: orders\n", r + ".dead_letter_topic", 8, "must differ from the receiver's topic"},
		{"dead_letter_topic invalid", base + "      - name: r\n        type: log\n        dead_letter_topic: a b\n", r + ".dead_letter_topic", 8, "not a valid Kafka topic name"},

		// HTTP.
		{"http missing", base + "      - name: r\n        type: http\n", r + ".http", 6, "required for type http"},
		{"http for another type", base + "      - name: r\n        type: log\n        http: {url: http://h/}\n", r + ".http", 8, "only allowed for type http"},
		{"url missing", base + "      - name: r\n        type: http\n        http: {timeout: 1s}\n", r + ".http.url", 8, "required"},
		{"timeout zero", base + "      - name: r\n        type: http\n        http:\n          url: http://h/\n          timeout: 0s\n", r + ".http.timeout", 10, "must be positive"},
		{"timeout no unit", base + "      - name: r\n        type: http\n        http:\n          url: http://h/\n          timeout: 5\n", r + ".http.timeout", 10, "must be a duration such as 500ms"},
		{"headers a list", base + "      - name: r\n        type: http\n        http:\n          url: http://h/\n          headers: [a]\n", r + ".http.headers", 10, "must be a mapping, got a list"},
		{"tls bool", base + "      - name: r\n        type: http\n        http:\n          url: https://h/\n          tls:\n            insecure_skip_verify: maybe\n", r + ".http.tls.insecure_skip_verify", 11, `must be true or false, got "maybe"`},
		{"unset variable", base + "      - name: r\n        type: http\n        http:\n          url: http://h/\n          signing_secret: ${NOPE}\n", r + ".http.signing_secret", 10, "environment variable NOPE is not set"},
		{"bad variable reference", base + "      - name: r\n        type: http\n        http:\n          url: http://h/${oops\n", r + ".http.url", 9, "unterminated ${"},

		// Kafka.
		{"kafka missing", base + "      - name: r\n        type: kafka\n", r + ".kafka", 6, "required for type kafka"},
		{"kafka for another type", base + "      - name: r\n        type: log\n        kafka: {topic: x}\n", r + ".kafka", 8, "only allowed for type kafka"},
		{"kafka topic missing", base + "      - name: r\n        type: kafka\n        kafka: {brokers: [b:9092]}\n", r + ".kafka.topic", 8, "required"},
		{"kafka topic loops", base + "      - name: r\n        type: kafka\n        kafka:\n          topic: orders\n", r + ".kafka.topic", 9, "must differ from the receiver's topic"},
		{"kafka broker invalid", base + "      - name: r\n        type: kafka\n        kafka:\n          topic: x\n          brokers:\n            - b:9092\n            - nope\n", r + ".kafka.brokers[1]", 12, `"nope" is not a host:port address`},
		{"kafka broker port", base + "      - name: r\n        type: kafka\n        kafka:\n          topic: x\n          brokers: [b:0]\n", r + ".kafka.brokers[0]", 10, "invalid port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("test.yaml", []byte(tt.yaml), noEnv)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", f)
			}
			if f != nil {
				t.Errorf("Parse returned a File with an error")
			}
			for _, p := range problemsOf(t, err) {
				if p.Path == tt.path && strings.Contains(p.Msg, tt.contains) {
					if p.Line != tt.line {
						t.Errorf("problem %q is on line %d, want %d", p.Msg, p.Line, tt.line)
					}
					want := "test.yaml"
					if tt.line > 0 {
						want += fmt.Sprintf(":%d", tt.line)
					}
					if tt.path != "" {
						want += ": " + tt.path
					}
					if !strings.Contains(err.Error(), want+": ") {
						t.Errorf("error text lacks %q:\n%v", want, err)
					}
					return
				}
			}
			t.Errorf("no problem at %q containing %q in:\n%v", tt.path, tt.contains, err)
		})
	}
}

func TestParseReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Parse("bad.yaml", []byte(`receivers:
  - topic: orders
    max_inflight: 0
    routes:
      - name: billing
        type: htp
        wokers: 3
        http:
          url: "ftp://x/"
          headers: {"Bad Header": "x", Authorization: "Bearer ${NOPE}"}
      - name: billing
        type: http
        workers: abc
        retry: {max_attempts: 3, initial_backoff: 2s, max_backoff: 1s}
        http: {url: "http://h/x"}
  - topic: orders
`), noEnv)
	want := []Problem{
		{3, "receivers[0].max_inflight", "must be between 1 and 1000000, got 0"},
		{6, "receivers[0].routes[0].type", `unknown type "htp": want http, kafka, log or discard`},
		{7, "receivers[0].routes[0].wokers", "unknown field (did you mean workers?)"},
		{10, "receivers[0].routes[0].http.headers.Authorization", "environment variable NOPE is not set"},
		{11, "receivers[0].routes[1].name", `route name "billing" is also used by routes[0]`},
		{13, "receivers[0].routes[1].workers", `must be an integer, got "abc"`},
		{14, "receivers[0].routes[1].retry.max_attempts", "requires dead_letter_topic: records are never dropped, so without one they are retried forever (remove max_attempts or add dead_letter_topic)"},
		{14, "receivers[0].routes[1].retry.max_backoff", "must be at least initial_backoff (2s), got 1s"},
		{16, "receivers[1].topic", `topic "orders" is also consumed by receivers[0]; give it one receiver with several routes`},
		{16, "receivers[1].routes", "at least one route is required"},
	}
	got := problemsOf(t, err)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n%v\nwant:\n%v", (&ValidationError{"bad.yaml", got}).Error(), (&ValidationError{"bad.yaml", want}).Error())
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) || lines[0] != "bad.yaml:3: receivers[0].max_inflight: must be between 1 and 1000000, got 0" {
		t.Errorf("Error() should print one problem per line as file:line: path: msg, got:\n%v", err)
	}
}

func TestParseNeverLeaksSecrets(t *testing.T) {
	const secret = "s3cr3t-v4lue"
	env := mapLookup(map[string]string{
		"TOKEN":  secret,
		"BAD":    secret + "\r\n",
		"URL":    "ftp://user:" + secret + "@h/",
		"NUM":    secret,
		"TYPE":   secret,
		"TOPIC":  secret + "/x",
		"BROKER": secret,
		"FILE":   "/nonexistent/" + secret,
	})
	_, err := Parse("test.yaml", []byte(base+`      - name: r
        type: http
        workers: ${NUM}
        http:
          url: ${URL}
          timeout: ${NUM}
          headers:
            Authorization: "Bearer ${BAD}"
            X-Token: ${TOKEN}
            "Bad Name": ${TOKEN}
          signing_secret: "${TOKEN}${MISSING}"
          tls: {ca_file: "${FILE}", insecure_skip_verify: "${NUM}"}
      - name: k
        type: ${TYPE}
        ordering: ${TYPE}
        dead_letter_topic: ${TOPIC}
      - name: m
        type: kafka
        kafka: {topic: "${TOPIC}", brokers: "${BROKER}"}
  - topic: ${TOPIC}
    routes: [{name: "${TOPIC}", type: log}]
`), env)
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("a secret leaked into the error:\n%v", err)
	}
	for _, want := range []string{
		"workers: must be an integer, got ${NUM} (value not shown)",
		"http.signing_secret: environment variable MISSING is not set",
		"type: unknown type ${TYPE} (value not shown)",
		"kafka.brokers[0]: ${BROKER} (value not shown) is not a host:port address",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestValidateFileBuiltInCode(t *testing.T) {
	f := &File{Receivers: []Receiver{{
		Topic:  "orders",
		Routes: []Route{{Name: "a", Type: RouteHTTP, HTTP: &HTTP{URL: "http://h/"}}, {Name: "b", Type: RouteDiscard}},
	}}}
	f.SetDefaults()
	if err := f.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := f.Receivers[0].Routes[0]; got.Workers != DefaultWorkers || got.Buffer != DefaultBuffer ||
		got.Ordering != OrderingKey || got.HTTP.Timeout != DefaultHTTPTimeout ||
		got.Retry.InitialBackoff != DefaultInitialBackoff || got.Retry.MaxBackoff != DefaultMaxBackoff {
		t.Errorf("SetDefaults left %+v", got)
	}
	f.Receivers[0].Routes[1].Workers = -1
	err := f.Validate()
	want := "receivers[0].routes[1].workers: must be between 1 and 1024, got -1"
	if err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %q", err, want)
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fanout.yaml")
	if err := os.WriteFile(path, []byte("receivers:\n  - topic: a\n    routes: [{name: b, type: log, workers: 0}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(path, noEnv)
	if want := path + ":3: receivers[0].routes[0].workers: must be between 1 and 1024, got 0"; err == nil || err.Error() != want {
		t.Errorf("LoadFile = %v, want %q", err, want)
	}
	_, err = LoadFile(filepath.Join(t.TempDir(), "missing.yaml"), noEnv)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("LoadFile of a missing file = %v", err)
	}
}

// TestExampleFileIsValid checks fanout.example.yaml as its header and the
// README tell users to check it: with BILLING_TOKEN and BILLING_SECRET set
// and nothing else; and, with the crm route's optional TLS variables, that
// they are used.
func TestExampleFileIsValid(t *testing.T) {
	env := map[string]string{"BILLING_TOKEN": "token", "BILLING_SECRET": testSecret}
	f, err := LoadFile("../fanout.example.yaml", mapLookup(env))
	if err != nil {
		t.Fatalf("fanout.example.yaml with only BILLING_TOKEN and BILLING_SECRET set:\n%v", err)
	}
	types := map[RouteType]bool{}
	for _, r := range f.Receivers {
		for _, rt := range r.Routes {
			types[rt.Type] = true
		}
	}
	for _, want := range []RouteType{RouteHTTP, RouteKafka, RouteLog, RouteDiscard} {
		if !types[want] {
			t.Errorf("the example has no %s route", want)
		}
	}
	billing := f.Receivers[0].Routes[0]
	if billing.HTTP.Headers["Authorization"] != "Bearer token" || billing.HTTP.SigningSecret != Secret(testSecret) || billing.Retry.MaxAttempts != 5 {
		t.Errorf("billing route = %+v, http %+v", billing, billing.HTTP)
	}
	if billing.Spill == nil || *billing.Spill != (Spill{Topic: "orders.spill.billing", After: 30 * time.Second}) {
		t.Errorf("billing spill = %+v, want orders.spill.billing after 30s", billing.Spill)
	}
	if tls := f.Receivers[0].Routes[1].HTTP.TLS; tls == nil || *tls != (TLS{}) {
		t.Errorf("crm tls without its variables = %+v, want every file empty", tls)
	}

	pem := filepath.Join(t.TempDir(), "x.pem")
	if err := os.WriteFile(pem, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env["CRM_CA_FILE"], env["CRM_CERT_FILE"], env["CRM_KEY_FILE"] = pem, pem, pem
	f, err = LoadFile("../fanout.example.yaml", mapLookup(env))
	if err != nil {
		t.Fatalf("fanout.example.yaml with the crm TLS files:\n%v", err)
	}
	if tls := f.Receivers[0].Routes[1].HTTP.TLS; *tls != (TLS{CAFile: pem, CertFile: pem, KeyFile: pem}) {
		t.Errorf("crm tls = %+v, want the three files", tls)
	}

	// Without the variables, exactly the two it needs are reported.
	_, err = LoadFile("../fanout.example.yaml", noEnv)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Fatalf("with no variable set: %v, want two problems", err)
	}
	for _, v := range []string{"BILLING_TOKEN", "BILLING_SECRET"} {
		if !strings.Contains(err.Error(), "environment variable "+v+" is not set") {
			t.Errorf("unset %s not reported: %v", v, err)
		}
	}
}

func TestSummary(t *testing.T) {
	f, err := Parse("test.yaml", []byte(`
receivers:
  - topic: orders
    max_inflight: 500
    routes:
      - name: hook
        type: http
        workers: 8
        filter: {headers: {type: a}}
        retry: {max_attempts: 5}
        dead_letter_topic: orders.dlq
        http:
          url: "https://user:${PW}@h.example/x?token=${PW}"
          headers: {Authorization: "${PW}"}
          signing_secret: "${SECRET}"
      - name: copy
        type: kafka
        kafka: {topic: copy, brokers: [b:9092]}
      - {name: trace, type: log, ordering: none}
      - {name: sink, type: discard}
`), mapLookup(map[string]string{"PW": "hunter2", "SECRET": testSecret}))
	if err != nil {
		t.Fatal(err)
	}
	got := f.Summary()
	want := `1 receiver, 4 routes
receiver orders: max_inflight=500, max_inflight_mib=64, 4 routes
  route hook: http workers=8 buffer=1024 ordering=key -> https://h.example/…?… timeout=5s signed filter=headers[type] retry=5 (200ms..30s) dlq=orders.dlq
  route copy: kafka workers=8192 buffer=8192 ordering=key -> topic copy on b:9092 retry=unlimited (200ms..30s)
  route trace: log workers=4 buffer=1024 ordering=none -> stdout
  route sink: discard workers=4 buffer=1024 ordering=key
`
	if got != want {
		t.Errorf("Summary =\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(got, "hunter2") || strings.Contains(got, testSecret[len("whsec_"):]) {
		t.Errorf("Summary leaks a secret")
	}
}

func TestParseRejectsAliasBombs(t *testing.T) {
	// Each level multiplies the work by 10; decoding must stop, not hang.
	var b strings.Builder
	b.WriteString("x-0: &a0 {name: r, type: log}\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "x-%d: &a%d {<<: [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]}\n")
	}
	b.WriteString("receivers:\n  - topic: a\n    routes: [*a9]\n")
	start := time.Now()
	_, err := Parse("bomb.yaml", []byte(b.String()), noEnv)
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("Parse took %s", time.Since(start))
	}
	if !strings.Contains(err.Error(), "too many nodes") {
		t.Errorf("Parse = %v", err)
	}
}

func TestParseRejectsSelfMerge(t *testing.T) {
	_, err := Parse("loop.yaml", []byte("receivers:\n  - &r\n    topic: a\n    <<: *r\n    routes: [{name: b, type: log}]\n"), noEnv)
	if err == nil {
		t.Fatal("a mapping merging itself should be rejected")
	}
	t.Log(err)
}

func TestParseBrokerListInFlowMapping(t *testing.T) {
	f, err := Parse("test.yaml", []byte(base+"      - {name: k, type: kafka, kafka: {topic: x, brokers: [b:9092, \"c:9093\", d:1]}}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Receivers[0].Routes[1].Kafka.Brokers; !reflect.DeepEqual(got, []string{"b:9092", "c:9093", "d:1"}) {
		t.Errorf("brokers = %q", got)
	}
	// With a space after the colon it really is a mapping.
	_, err = Parse("test.yaml", []byte(base+"      - {name: k, type: kafka, kafka: {topic: x, brokers: [b: 9092]}}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "kafka.brokers[0]: must be a string, got a mapping") {
		t.Errorf("Parse = %v", err)
	}
}
