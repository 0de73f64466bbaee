package consumer

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/receiver-fanout/fanout/internal/tlsfiles"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config is everything the consumer needs; the zero value of each optional
// field picks the default named in its comment.
type Config struct {
	Brokers []string // required
	Group   string   // required
	// InstanceID enables static membership (KIP-345) when set.
	InstanceID string
	// ClientID names the client in broker logs and quotas. "fanout".
	ClientID string
	// SessionTimeout and RebalanceTimeout tune the group; franz-go's
	// defaults (45s, 60s) when zero.
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	// StartOffset is "earliest" (default) or "latest": where a group with
	// no committed offset starts.
	StartOffset string
	// CommitInterval is how often completed offsets are committed. 1s.
	CommitInterval time.Duration
	// RevokeTimeout bounds how long a revoke waits for in-flight
	// deliveries before it commits and lets the rebalance go on. 10s.
	RevokeTimeout time.Duration
	// CommitTimeout bounds one commit request, including a revoked
	// partition's final commit, which has this budget of its own after the
	// revoke's wait. 5s.
	CommitTimeout time.Duration
	// ShutdownTimeout bounds the drain on shutdown. 30s.
	ShutdownTimeout time.Duration

	TLS  *TLSConfig  // nil: plaintext
	SASL *SASLConfig // nil: no authentication

	// Fetch memory bounds. Worst-case buffered fetch memory of the client
	// is about MaxConcurrentFetches × FetchMaxBytes (each partition's share
	// capped by PartitionFetchMaxBytes). Defaults 16 MiB, 1 MiB, 2.
	FetchMaxBytes          int32
	PartitionFetchMaxBytes int32
	MaxConcurrentFetches   int
	// MaxPollRecords is the most records one poll returns. 1000.
	MaxPollRecords int
	// FetchMaxWait bounds how long a fetch waits for data, and so how long
	// a resumed partition may wait for its next fetch. 250ms.
	FetchMaxWait time.Duration
	// HeldMaxBytes bounds the data of the refused records held in memory
	// across paused partitions, to be offered without fetching them again
	// when their partition may flow; past it a paused partition is rewound
	// to its refused record instead. Default: FetchMaxBytes.
	HeldMaxBytes int64
	// MaxDecompressedBatchBytes bounds what one fetched record batch may
	// decompress to, so a compression bomb cannot exhaust memory; a batch
	// beyond it stops its partition with an error in the log. 64 MiB.
	MaxDecompressedBatchBytes int

	Logger   *zerolog.Logger // default: none
	Observer Observer        // default: none
	// ExtraOpts are appended to the client's options (tests use them to
	// shorten heartbeats, for example).
	ExtraOpts []kgo.Opt
}

// TLSConfig configures TLS to the brokers.
type TLSConfig struct {
	CAFile, CertFile, KeyFile string
	InsecureSkipVerify        bool
}

// SASLConfig configures SASL authentication.
type SASLConfig struct {
	Mechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	Username  string
	Password  string
}

func (c *Config) setDefaults() {
	if c.StartOffset == "" {
		c.StartOffset = "earliest"
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = time.Second
	}
	if c.RevokeTimeout <= 0 {
		c.RevokeTimeout = 10 * time.Second
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = 5 * time.Second
	}
	if c.MaxDecompressedBatchBytes <= 0 {
		c.MaxDecompressedBatchBytes = 64 << 20
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.FetchMaxBytes <= 0 {
		c.FetchMaxBytes = 16 << 20
	}
	if c.PartitionFetchMaxBytes <= 0 {
		c.PartitionFetchMaxBytes = 1 << 20
	}
	if c.MaxConcurrentFetches <= 0 {
		c.MaxConcurrentFetches = 2
	}
	if c.HeldMaxBytes <= 0 {
		c.HeldMaxBytes = int64(c.FetchMaxBytes)
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 1000
	}
	if c.FetchMaxWait <= 0 {
		c.FetchMaxWait = 250 * time.Millisecond
	}
}

// ClientOpts builds the franz-go options shared by the group consumer and
// the producers of the routes (brokers, TLS, SASL, logging): one place that
// turns settings into a connection.
func (c *Config) ClientOpts() ([]kgo.Opt, error) {
	if len(c.Brokers) == 0 {
		return nil, errors.New("consumer: no brokers")
	}
	clientID := c.ClientID
	if clientID == "" {
		clientID = "fanout"
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(clientID)}
	if c.TLS != nil {
		tc, err := c.TLS.build()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASL != nil {
		m, err := c.SASL.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	if c.Logger != nil {
		opts = append(opts, kgo.WithLogger(logger{c.Logger}))
	}
	return opts, nil
}

// build reads the TLS files through the program's one loader; an error
// names the FANOUT_TLS_* setting and the file.
func (t *TLSConfig) build() (*tls.Config, error) {
	tc, err := tlsfiles.Config(tlsfiles.Files{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, InsecureSkipVerify: t.InsecureSkipVerify})
	if err != nil {
		return nil, fmt.Errorf("kafka tls: %w", err)
	}
	return tc, nil
}

func (s *SASLConfig) mechanism() (sasl.Mechanism, error) {
	switch strings.ToUpper(s.Mechanism) {
	case "PLAIN":
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka sasl: unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", s.Mechanism)
}

// logger adapts zerolog to kgo.Logger.
type logger struct{ l *zerolog.Logger }

func (l logger) Level() kgo.LogLevel {
	switch l.l.GetLevel() {
	case zerolog.TraceLevel, zerolog.DebugLevel:
		return kgo.LogLevelDebug
	case zerolog.InfoLevel:
		return kgo.LogLevelInfo
	case zerolog.WarnLevel:
		return kgo.LogLevelWarn
	case zerolog.Disabled:
		return kgo.LogLevelNone
	}
	return kgo.LogLevelError
}

func (l logger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var ev *zerolog.Event
	switch level {
	case kgo.LogLevelDebug:
		ev = l.l.Debug()
	case kgo.LogLevelInfo:
		ev = l.l.Info()
	case kgo.LogLevelWarn:
		ev = l.l.Warn()
	case kgo.LogLevelError:
		ev = l.l.Error()
	default:
		return
	}
	ev.Str("component", "kgo").Fields(keyvals).Msg(msg)
}
