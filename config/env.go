package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Env is the process configuration, read from FANOUT_* environment
// variables by [LoadEnv].
//
// Each tag spells out the full variable name and LoadEnv passes no prefix:
// with a prefix, envconfig falls back to the bare name (GROUP, CONFIG,
// LOG_LEVEL), so an unrelated variable of the host could configure the
// worker.
type Env struct {
	Brokers    []string `envconfig:"FANOUT_BROKERS" default:"localhost:9092" desc:"comma-separated seed brokers, host:port"`
	Group      string   `envconfig:"FANOUT_GROUP" default:"fanout" desc:"consumer group id"`
	ConfigFile string   `envconfig:"FANOUT_CONFIG" default:"fanout.yaml" desc:"path of the receivers and routes file"`
	HTTPAddr   string   `envconfig:"FANOUT_HTTP_ADDR" default:":8080" desc:"listener for /metrics, /healthz and /readyz"`
	LogLevel   string   `envconfig:"FANOUT_LOG_LEVEL" default:"info" desc:"trace, debug, info, warn, error, fatal, panic or disabled"`
	LogFormat  string   `envconfig:"FANOUT_LOG_FORMAT" default:"json" desc:"json or console"`

	CommitInterval time.Duration `envconfig:"FANOUT_COMMIT_INTERVAL" default:"1s" desc:"how often completed offsets are committed"`
	StartOffset    string        `envconfig:"FANOUT_START_OFFSET" default:"earliest" desc:"where a group without committed offsets starts: earliest or latest"`
	// InstanceID enables static group membership (KIP-345) when set.
	InstanceID      string        `envconfig:"FANOUT_INSTANCE_ID" desc:"static group member id: a restart with the same id keeps its partitions without a rebalance"`
	ShutdownTimeout time.Duration `envconfig:"FANOUT_SHUTDOWN_TIMEOUT" default:"30s" desc:"drain budget on SIGTERM"`

	ClientID         string        `envconfig:"FANOUT_CLIENT_ID" default:"fanout" desc:"Kafka client id, seen in broker logs and quotas"`
	SessionTimeout   time.Duration `envconfig:"FANOUT_SESSION_TIMEOUT" default:"45s" desc:"group session timeout"`
	RebalanceTimeout time.Duration `envconfig:"FANOUT_REBALANCE_TIMEOUT" default:"60s" desc:"how long a rebalance waits for members to rejoin"`
	RevokeTimeout    time.Duration `envconfig:"FANOUT_REVOKE_TIMEOUT" default:"10s" desc:"how long a revoked partition's running deliveries may finish before its offset is committed and it is handed over"`

	// Fetch sizes bound the Kafka client's share of memory.
	FetchMaxBytes          int32 `envconfig:"FANOUT_FETCH_MAX_BYTES" default:"16777216" desc:"most bytes one fetch response may hold"`
	PartitionFetchMaxBytes int32 `envconfig:"FANOUT_PARTITION_FETCH_MAX_BYTES" default:"1048576" desc:"most bytes one partition contributes to a fetch"`
	MaxConcurrentFetches   int   `envconfig:"FANOUT_MAX_CONCURRENT_FETCHES" default:"2" desc:"fetch requests in flight at once"`

	// TLSEnabled is forced on when any TLS file is given.
	TLSEnabled  bool   `envconfig:"FANOUT_TLS_ENABLED" default:"false" desc:"TLS to Kafka (implied by any FANOUT_TLS_*_FILE)"`
	TLSCAFile   string `envconfig:"FANOUT_TLS_CA_FILE" desc:"PEM roots to trust instead of the system's"`
	TLSCertFile string `envconfig:"FANOUT_TLS_CERT_FILE" desc:"PEM client certificate, with FANOUT_TLS_KEY_FILE"`
	TLSKeyFile  string `envconfig:"FANOUT_TLS_KEY_FILE" desc:"PEM client key, with FANOUT_TLS_CERT_FILE"`

	// SASLMechanism is "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	SASLMechanism string `envconfig:"FANOUT_SASL_MECHANISM" desc:"PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty for none"`
	SASLUsername  string `envconfig:"FANOUT_SASL_USERNAME" desc:"SASL user, required with a mechanism"`
	SASLPassword  Secret `envconfig:"FANOUT_SASL_PASSWORD" desc:"SASL password, required with a mechanism"`
}

// Values accepted by Env fields.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"

	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// LogLevels are the accepted FANOUT_LOG_LEVEL values, zerolog's names.
var LogLevels = []string{"trace", "debug", "info", "warn", "error", "fatal", "panic", "disabled"}

// DefaultEnv returns the configuration LoadEnv gives when no FANOUT_*
// variable is set.
func DefaultEnv() Env {
	return Env{
		Brokers:                []string{"localhost:9092"},
		Group:                  "fanout",
		ConfigFile:             "fanout.yaml",
		HTTPAddr:               ":8080",
		LogLevel:               "info",
		LogFormat:              "json",
		CommitInterval:         time.Second,
		StartOffset:            StartEarliest,
		ShutdownTimeout:        30 * time.Second,
		ClientID:               "fanout",
		SessionTimeout:         45 * time.Second,
		RebalanceTimeout:       60 * time.Second,
		RevokeTimeout:          10 * time.Second,
		FetchMaxBytes:          16 << 20,
		PartitionFetchMaxBytes: 1 << 20,
		MaxConcurrentFetches:   2,
	}
}

// LoadEnv reads the FANOUT_* variables of the process environment, fills
// in defaults, normalises them (see [Env.Normalize]) and validates them.
// The error is a *ValidationError naming every variable that is wrong,
// those whose value cannot be parsed and those that break a rule, all at
// once.
func LoadEnv() (Env, error) {
	p := newProblems()
	e := readEnv(p)
	e.Normalize()
	e.validate(p)
	if err := p.err(""); err != nil {
		return Env{}, err
	}
	return e, nil
}

// readEnv fills an Env from the environment with envconfig, one field at a
// time so that every unparsable variable is reported, not only the first.
// A field that fails keeps its zero value and is marked broken in p, so
// that validation says nothing more about it.
func readEnv(p *problems) Env {
	var e Env
	v := reflect.ValueOf(&e).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type, Tag: f.Tag}}))
		if err := envconfig.Process("", one.Interface()); err != nil {
			var pe *envconfig.ParseError
			if errors.As(err, &pe) {
				p.brokenLine(0, pe.KeyName, parseMsg(pe))
			} else {
				p.brokenLine(0, f.Tag.Get("envconfig"), err.Error())
			}
			continue
		}
		v.Field(i).Set(one.Elem().Field(0))
	}
	return e
}

func parseMsg(pe *envconfig.ParseError) string {
	want := "a " + pe.TypeName
	switch pe.TypeName {
	case "time.Duration":
		want = "a duration such as 500ms, 5s or 1m"
	case "bool":
		want = "true or false"
	case "int", "int32", "int64":
		want = "an integer"
	}
	if pe.KeyName == "FANOUT_SASL_PASSWORD" || pe.KeyName == "FANOUT_SASL_USERNAME" {
		return "must be " + want
	}
	return fmt.Sprintf("must be %s, got %q", want, truncate(pe.Value, 80))
}

// Normalize trims broker addresses, lower-cases the level, format and
// start offset, upper-cases the SASL mechanism and turns TLS on when any
// TLS file is given.
func (e *Env) Normalize() {
	brokers := e.Brokers[:0:0]
	for _, b := range e.Brokers {
		brokers = append(brokers, strings.TrimSpace(b))
	}
	if len(brokers) == 1 && brokers[0] == "" {
		brokers = nil
	}
	e.Brokers = brokers
	e.LogLevel = strings.ToLower(strings.TrimSpace(e.LogLevel))
	e.LogFormat = strings.ToLower(strings.TrimSpace(e.LogFormat))
	e.StartOffset = strings.ToLower(strings.TrimSpace(e.StartOffset))
	e.SASLMechanism = strings.ToUpper(strings.TrimSpace(e.SASLMechanism))
	if e.TLSCAFile != "" || e.TLSCertFile != "" || e.TLSKeyFile != "" {
		e.TLSEnabled = true
	}
}

// Validate checks e (normalised) and returns a *ValidationError naming
// every variable that is wrong, or nil. It never quotes the password.
func (e Env) Validate() error {
	p := newProblems()
	e.validate(p)
	return p.err("")
}

func (e Env) validate(p *problems) {
	if len(e.Brokers) == 0 {
		p.addf("FANOUT_BROKERS", "at least one broker is required")
	}
	for _, b := range e.Brokers {
		if msg := checkHostPort(b); msg != "" {
			p.addf("FANOUT_BROKERS", "%q %s", truncate(b, 80), msg)
			break
		}
	}
	if e.Group == "" {
		p.addf("FANOUT_GROUP", "must not be empty")
	}
	if e.ConfigFile == "" {
		p.addf("FANOUT_CONFIG", "must not be empty")
	}
	if _, port, err := net.SplitHostPort(e.HTTPAddr); err != nil || port == "" {
		p.addf("FANOUT_HTTP_ADDR", "must be [host]:port such as :8080, got %q", truncate(e.HTTPAddr, 80))
	}
	if !slices.Contains(LogLevels, e.LogLevel) {
		p.addf("FANOUT_LOG_LEVEL", "must be one of %s, got %q", strings.Join(LogLevels, ", "), truncate(e.LogLevel, 40))
	}
	if e.LogFormat != "json" && e.LogFormat != "console" {
		p.addf("FANOUT_LOG_FORMAT", "must be json or console, got %q", truncate(e.LogFormat, 40))
	}
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			p.addf(name, "must be positive, got %s", d)
		}
	}
	positive("FANOUT_COMMIT_INTERVAL", e.CommitInterval)
	positive("FANOUT_SHUTDOWN_TIMEOUT", e.ShutdownTimeout)
	positive("FANOUT_SESSION_TIMEOUT", e.SessionTimeout)
	positive("FANOUT_REBALANCE_TIMEOUT", e.RebalanceTimeout)
	positive("FANOUT_REVOKE_TIMEOUT", e.RevokeTimeout)
	if e.RevokeTimeout >= e.RebalanceTimeout && e.RebalanceTimeout > 0 {
		p.addf("FANOUT_REVOKE_TIMEOUT", "must be shorter than FANOUT_REBALANCE_TIMEOUT (%s), or the member is dropped from the group while it drains", e.RebalanceTimeout)
	}
	if e.StartOffset != StartEarliest && e.StartOffset != StartLatest {
		p.addf("FANOUT_START_OFFSET", "must be earliest or latest, got %q", truncate(e.StartOffset, 40))
	}
	if e.InstanceID != "" && (len(e.InstanceID) > 249 || !allChars(e.InstanceID, isNameChar)) {
		p.addf("FANOUT_INSTANCE_ID", "must be at most 249 letters, digits, '.', '_' and '-', got %q", truncate(e.InstanceID, 60))
	}
	if e.ClientID == "" {
		p.addf("FANOUT_CLIENT_ID", "must not be empty")
	}
	if e.FetchMaxBytes < 1 {
		p.addf("FANOUT_FETCH_MAX_BYTES", "must be positive, got %d", e.FetchMaxBytes)
	}
	if e.PartitionFetchMaxBytes < 1 {
		p.addf("FANOUT_PARTITION_FETCH_MAX_BYTES", "must be positive, got %d", e.PartitionFetchMaxBytes)
	} else if e.FetchMaxBytes > 0 && e.PartitionFetchMaxBytes > e.FetchMaxBytes {
		p.addf("FANOUT_PARTITION_FETCH_MAX_BYTES", "must not exceed FANOUT_FETCH_MAX_BYTES (%d), got %d", e.FetchMaxBytes, e.PartitionFetchMaxBytes)
	}
	if e.MaxConcurrentFetches < 1 {
		p.addf("FANOUT_MAX_CONCURRENT_FETCHES", "must be positive, got %d", e.MaxConcurrentFetches)
	}

	// The TLS files are read, and their problems reported, by the one TLS
	// loader (internal/tlsfiles) when the Kafka client is built, for
	// validate and run alike (worker.Check).

	switch e.SASLMechanism {
	case "":
		if e.SASLUsername != "" || e.SASLPassword != "" {
			p.addf("FANOUT_SASL_MECHANISM", "required when FANOUT_SASL_USERNAME or FANOUT_SASL_PASSWORD is set: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if e.SASLUsername == "" {
			p.addf("FANOUT_SASL_USERNAME", "required with FANOUT_SASL_MECHANISM=%s", e.SASLMechanism)
		}
		if e.SASLPassword == "" {
			p.addf("FANOUT_SASL_PASSWORD", "required with FANOUT_SASL_MECHANISM=%s", e.SASLMechanism)
		}
	default:
		p.addf("FANOUT_SASL_MECHANISM", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", truncate(e.SASLMechanism, 40))
	}
}

// Summary describes e for people, one setting a line. The password shows
// as *** (or "not set").
func (e Env) Summary() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 1, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(w, "%s\t%v\n", k, v) }
	row("brokers", strings.Join(e.Brokers, ","))
	row("group", e.Group)
	if e.InstanceID != "" {
		row("instance id", e.InstanceID)
	}
	row("client id", e.ClientID)
	row("config", e.ConfigFile)
	row("http addr", e.HTTPAddr)
	row("log", e.LogLevel+" "+e.LogFormat)
	row("start offset", e.StartOffset)
	row("commit interval", e.CommitInterval)
	row("session/rebalance/revoke timeout", fmt.Sprintf("%s/%s/%s", e.SessionTimeout, e.RebalanceTimeout, e.RevokeTimeout))
	row("shutdown timeout", e.ShutdownTimeout)
	row("fetch max bytes", fmt.Sprintf("%d (per partition %d, %d concurrent)", e.FetchMaxBytes, e.PartitionFetchMaxBytes, e.MaxConcurrentFetches))
	tls := "off"
	if e.TLSEnabled {
		tls = "on"
		if e.TLSCAFile != "" {
			tls += " ca=" + e.TLSCAFile
		}
		if e.TLSCertFile != "" {
			tls += " cert=" + e.TLSCertFile
		}
	}
	row("tls", tls)
	sasl := "off"
	if e.SASLMechanism != "" {
		pw := "not set"
		if e.SASLPassword != "" {
			pw = redacted
		}
		sasl = fmt.Sprintf("%s user=%s password=%s", e.SASLMechanism, e.SASLUsername, pw)
	}
	row("sasl", sasl)
	_ = w.Flush()
	return b.String()
}

// PrintEnvUsage writes a table of the FANOUT_* variables with their
// defaults and meaning, for --help.
func PrintEnvUsage(out io.Writer) error {
	w := tabwriter.NewWriter(out, 1, 0, 2, ' ', 0)
	if err := envconfig.Usagef("", &Env{}, w, usageFormat); err != nil {
		return err
	}
	return w.Flush()
}

const usageFormat = `VARIABLE	DEFAULT	MEANING
{{range .}}{{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`

// UnknownVars returns the FANOUT_* names in environ (os.Environ's form)
// that no Env field reads: likely typos worth a warning.
func UnknownVars(environ []string) []string {
	known := make(map[string]bool)
	for _, f := range envFieldNames() {
		known[f] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "FANOUT_") && !known[name] {
			out = append(out, name)
		}
	}
	return out
}

// envFieldNames lists the variables Env reads, from its tags.
func envFieldNames() []string {
	t := reflect.TypeFor[Env]()
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if n := t.Field(i).Tag.Get("envconfig"); n != "" {
			names = append(names, n)
		}
	}
	return names
}
