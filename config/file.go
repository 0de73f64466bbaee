package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/receiver-fanout/fanout/internal/redact"
)

// RouteType says where a route delivers.
type RouteType string

// The route types.
const (
	RouteHTTP    RouteType = "http"    // POST each record to a URL
	RouteKafka   RouteType = "kafka"   // produce each record to another topic
	RouteLog     RouteType = "log"     // one JSON line per record on stdout
	RouteDiscard RouteType = "discard" // acknowledge at once
)

// Ordering says which records of a route are delivered one at a time, in
// offset order.
type Ordering string

// The orderings.
const (
	OrderingKey       Ordering = "key"       // per record key (the default)
	OrderingPartition Ordering = "partition" // per partition
	OrderingNone      Ordering = "none"      // any order
)

// Defaults and limits of the file. A zero value in a File built in code
// means the default (see [File.SetDefaults]); in a parsed file, a field
// that is absent or null gets the default and an explicit 0 is checked
// against the limits.
const (
	DefaultMaxInflight    = 10000
	DefaultMaxInflightMiB = 64
	DefaultWorkers        = 4
	// DefaultKafkaWorkers is a kafka route's default: its workers are
	// records in flight through the producer, not goroutines, and the
	// producer batches them. Throughput is about records in flight over
	// the produce round trip, and with ordering key only one record of a
	// key is in flight: the buffer must hold enough records to find that
	// many distinct keys, hence DefaultKafkaBuffer. A buffered job costs
	// about 100 bytes (the record itself is in the receiver's window).
	DefaultKafkaWorkers   = 8192
	DefaultBuffer         = 1024
	DefaultKafkaBuffer    = 8192
	DefaultOrdering       = OrderingKey
	DefaultInitialBackoff = 200 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultHTTPTimeout    = 5 * time.Second

	MaxMaxInflight    = 1_000_000
	MaxMaxInflightMiB = 1 << 20
	// MaxRoutes matches the engine: a record tracks its unacknowledged
	// routes in one 64-bit mask.
	MaxRoutes  = 64
	MaxWorkers = 1024
	// MaxKafkaWorkers bounds a kafka route's records in flight, which
	// are not goroutines.
	MaxKafkaWorkers = 65536
	MaxBuffer       = 1_000_000
)

// File is the receivers and routes file.
type File struct {
	// Receivers (YAML receivers): at least one, each on its own topic.
	Receivers []Receiver

	// src is where a parsed file came from, so that problems found after
	// parsing (when its routes are built) are reported as the file's own.
	src *source
}

// source is what Parse keeps of a file for later problems.
type source struct {
	name  string
	lines map[string]int      // field path → line where it is written
	env   map[string][]string // field path → the variables its value came from
}

// Problems reports problems of this file found outside its own checks, by
// building its routes, say: as a *ValidationError in the file's form, each
// at the line where its path (or the nearest written ancestor) is, with
// the variables a value came from named (never the value). Problems whose
// Line is set keep it. nil when list is empty.
func (f *File) Problems(list []Problem) error {
	if len(list) == 0 {
		return nil
	}
	p := newProblems()
	name := ""
	if f.src != nil {
		name = f.src.name
		p.lines, p.env = f.src.lines, f.src.env
	}
	for _, pr := range list {
		line := pr.Line
		if line == 0 {
			line = p.lineOf(pr.Path)
		}
		p.addLine(line, pr.Path, pr.Msg+p.from(pr.Path))
	}
	return p.err(name)
}

// Receiver is one consumed topic and the routes that each of its records
// goes to.
type Receiver struct {
	Topic string // topic
	// MaxInflight (max_inflight) bounds, per partition, the records
	// accepted and not yet acknowledged by every route; beyond it the
	// partition pauses. 1..1,000,000, default 10000.
	MaxInflight int
	// MaxInflightMiB (max_inflight_mib) bounds the memory of the
	// receiver's records in flight, across all its partitions: keys,
	// values and headers until their last route acknowledged, and about
	// 200 bytes of bookkeeping a record until its offset is committable.
	// A partition whose next record does not fit pauses. 1..1048576,
	// default 64.
	MaxInflightMiB int
	Routes         []Route // routes: 1..64
}

// Route is one destination of a receiver's records.
type Route struct {
	// Name (name) is unique within the receiver and a metric label:
	// letters, digits, '.', '_' and '-'.
	Name string
	Type RouteType // type: required
	// Workers (workers) is how many deliveries run at once: 1..1024
	// (kafka: 1..65536; see MaxWorkersFor). For an http route each is a
	// request in flight on a connection of its own; for a kafka route
	// each is a record in flight through the shared producer. Default 4,
	// for a kafka route 8192 (see DefaultWorkersFor).
	Workers int
	// Buffer (buffer) bounds the queue in front of the workers:
	// 1..1,000,000, default 1024, for a kafka route 8192 (see
	// DefaultBufferFor).
	Buffer   int
	Ordering Ordering // ordering: key (default), partition or none
	// Filter (filter), when set, selects the records the route receives.
	Filter *Filter
	Retry  Retry // retry
	// DeadLetterTopic (dead_letter_topic) receives records that exhausted
	// Retry.MaxAttempts or failed permanently. Empty: retry forever.
	DeadLetterTopic string
	HTTP            *HTTP  // http: required for, and only for, type http
	Kafka           *Kafka // kafka: required for, and only for, type kafka
	// Spill (spill), when set, detaches the route when it stays congested:
	// its records go to a parking topic that feeds it at its own pace.
	Spill *Spill
}

// DefaultSpillAfter is how long a route with spill must stay congested
// before it detaches, when spill.after is not set.
const DefaultSpillAfter = 30 * time.Second

// Spill is a route's parking topic.
type Spill struct {
	Topic string        // topic: required; must exist
	After time.Duration // after: default DefaultSpillAfter
}

// Filter selects records by header: a record passes when every listed
// header is present with exactly the given value.
type Filter struct {
	Headers map[string]string // headers: at least one
}

// Retry is a route's retry policy: exponential backoff between attempts.
type Retry struct {
	// MaxAttempts (max_attempts) is the number of attempts before a record
	// goes to the dead-letter topic; 0 means unlimited. A positive value
	// requires a dead_letter_topic.
	MaxAttempts int
	// InitialBackoff (initial_backoff, default 200ms) and MaxBackoff
	// (max_backoff, default 30s) bound the waits between attempts.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
}

// HTTP configures an http route.
type HTTP struct {
	// URL (url) is an absolute http or https URL. Its user info, path and
	// query may hold credentials (Slack, Discord, Teams and Zapier put them
	// in the path), so it is only ever shown through redact.URL.
	URL     string
	Timeout time.Duration // timeout: per attempt, default 5s
	// Headers (headers) are added to every request. Their values may be
	// credentials and are never printed.
	Headers map[string]string
	// SigningSecret (signing_secret), when set, signs every request the
	// Standard Webhooks way (webhook-id, webhook-timestamp and
	// webhook-signature headers). It is written whsec_<base64 of the key>;
	// [SigningKey] reads it.
	SigningSecret Secret
	TLS           *TLS // tls: client TLS settings for https URLs
}

// TLS is a client TLS configuration. Relative file names are relative to
// the working directory of the process.
type TLS struct {
	CAFile             string // ca_file: PEM roots to trust instead of the system's
	CertFile           string // cert_file: PEM client certificate, with key_file
	KeyFile            string // key_file: PEM client key, with cert_file
	InsecureSkipVerify bool   // insecure_skip_verify: do not verify the server
}

// Kafka configures a kafka route.
type Kafka struct {
	Topic string // topic: required
	// Brokers (brokers) are the seed brokers of another cluster, as
	// host:port; empty means the cluster the worker consumes from.
	Brokers []string
}

// DefaultWorkersFor is the default workers of a route of type t.
func DefaultWorkersFor(t RouteType) int {
	if t == RouteKafka {
		return DefaultKafkaWorkers
	}
	return DefaultWorkers
}

// MaxWorkersFor is the most workers a route of type t may have.
func MaxWorkersFor(t RouteType) int {
	if t == RouteKafka {
		return MaxKafkaWorkers
	}
	return MaxWorkers
}

// DefaultBufferFor is the default buffer of a route of type t.
func DefaultBufferFor(t RouteType) int {
	if t == RouteKafka {
		return DefaultKafkaBuffer
	}
	return DefaultBuffer
}

// SetDefaults fills every zero field that has a default. Parse has already
// done it for a parsed file; call it on a File built in code before
// Validate.
func (f *File) SetDefaults() {
	for i := range f.Receivers {
		r := &f.Receivers[i]
		if r.MaxInflight == 0 {
			r.MaxInflight = DefaultMaxInflight
		}
		if r.MaxInflightMiB == 0 {
			r.MaxInflightMiB = DefaultMaxInflightMiB
		}
		for j := range r.Routes {
			rt := &r.Routes[j]
			if rt.Workers == 0 {
				rt.Workers = DefaultWorkersFor(rt.Type)
			}
			if rt.Buffer == 0 {
				rt.Buffer = DefaultBufferFor(rt.Type)
			}
			if rt.Ordering == "" {
				rt.Ordering = DefaultOrdering
			}
			if rt.Retry.InitialBackoff == 0 {
				rt.Retry.InitialBackoff = DefaultInitialBackoff
			}
			if rt.Retry.MaxBackoff == 0 {
				rt.Retry.MaxBackoff = DefaultMaxBackoff
			}
			if rt.HTTP != nil && rt.HTTP.Timeout == 0 {
				rt.HTTP.Timeout = DefaultHTTPTimeout
			}
			if rt.Spill != nil && rt.Spill.After == 0 {
				rt.Spill.After = DefaultSpillAfter
			}
		}
	}
}

// Routes returns the number of routes over all receivers.
func (f *File) Routes() int {
	n := 0
	for _, r := range f.Receivers {
		n += len(r.Routes)
	}
	return n
}

// Summary describes the file for people, one line per receiver and per
// route: topic and max_inflight; name, type, workers, buffer, ordering,
// destination, retry and dead-letter topic. It contains no secret: a URL
// shows only its scheme and host (redact.URL), header values are never
// shown.
func (f *File) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s, %d %s\n", len(f.Receivers), plural(len(f.Receivers), "receiver"), f.Routes(), plural(f.Routes(), "route"))
	for _, r := range f.Receivers {
		fmt.Fprintf(&b, "receiver %s: max_inflight=%d, max_inflight_mib=%d, %d %s\n", r.Topic, r.MaxInflight, r.MaxInflightMiB, len(r.Routes), plural(len(r.Routes), "route"))
		for _, rt := range r.Routes {
			fmt.Fprintf(&b, "  route %s: %s workers=%d buffer=%d ordering=%s", rt.Name, rt.Type, rt.Workers, rt.Buffer, rt.Ordering)
			if d := rt.destination(); d != "" {
				fmt.Fprintf(&b, " -> %s", d)
			}
			if rt.Filter != nil && len(rt.Filter.Headers) > 0 {
				fmt.Fprintf(&b, " filter=headers[%s]", strings.Join(sortedKeys(rt.Filter.Headers), ","))
			}
			if rt.Type == RouteHTTP || rt.Type == RouteKafka {
				attempts := "unlimited"
				if rt.Retry.MaxAttempts > 0 && rt.DeadLetterTopic != "" {
					attempts = fmt.Sprint(rt.Retry.MaxAttempts)
				}
				fmt.Fprintf(&b, " retry=%s (%s..%s)", attempts, rt.Retry.InitialBackoff, rt.Retry.MaxBackoff)
			}
			if rt.DeadLetterTopic != "" {
				fmt.Fprintf(&b, " dlq=%s", rt.DeadLetterTopic)
			}
			if rt.Spill != nil {
				fmt.Fprintf(&b, " spill=%s after %s", rt.Spill.Topic, rt.Spill.After)
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (rt *Route) destination() string {
	switch {
	case rt.Type == RouteHTTP && rt.HTTP != nil:
		d := redact.URL(rt.HTTP.URL)
		if rt.HTTP.Timeout > 0 {
			d += fmt.Sprintf(" timeout=%s", rt.HTTP.Timeout)
		}
		if rt.HTTP.SigningSecret != "" {
			d += " signed"
		}
		return d
	case rt.Type == RouteKafka && rt.Kafka != nil:
		if len(rt.Kafka.Brokers) > 0 {
			return fmt.Sprintf("topic %s on %s", rt.Kafka.Topic, strings.Join(rt.Kafka.Brokers, ","))
		}
		return "topic " + rt.Kafka.Topic
	case rt.Type == RouteLog:
		return "stdout"
	}
	return ""
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
