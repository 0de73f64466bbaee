// Package worker assembles the worker from its parts: configuration, routes,
// the consumer and its engine, metrics and the HTTP listener. `fanout run`
// and `fanout demo` both run exactly this; the demo only supplies a
// different configuration.
package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/receiver-fanout/fanout/alerting"
	"github.com/receiver-fanout/fanout/config"
	"github.com/receiver-fanout/fanout/consumer"
	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/routes"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/term"
)

// Options are the inputs of a worker.
type Options struct {
	Version string
	Env     config.Env
	File    *config.File // validated
	Logger  zerolog.Logger
	// LogOut receives the log routes' JSON lines. Default: io.Discard.
	LogOut io.Writer
	// Registry is where metrics go; a new one with Go and process
	// collectors when nil.
	Registry *prometheus.Registry
	// KafkaOpts are appended to every Kafka client (tests and the demo use
	// them to shorten heartbeats).
	KafkaOpts []kgo.Opt
}

// Worker is one running process's worth of fanout.
type Worker struct {
	log      zerolog.Logger
	env      config.Env
	consumer *consumer.Consumer
	// spill feeds detached routes from their spill topics (group
	// <FANOUT_GROUP>.spill); nil when no route has spill. admin reads the
	// spill topics' backlogs.
	spill     *consumer.Consumer
	admin     *kgo.Client
	built     *built
	producers *routes.Producers
	registry  *prometheus.Registry
	listener  net.Listener
	server    *http.Server
}

// New builds a worker and binds its HTTP listener; nothing touches Kafka
// until Run.
func New(o Options) (*Worker, error) {
	if o.LogOut == nil {
		o.LogOut = io.Discard
	}
	if o.Registry == nil {
		o.Registry = alerting.NewRegistry()
	}
	if err := CheckEnv(o.Env); err != nil {
		return nil, err
	}
	if limit, source, ok := MemoryLimit(); ok {
		if err := CheckMemory(WorstCase(o.Env, o.File), limit, source); err != nil {
			return nil, err
		}
	}
	w := &Worker{log: o.Logger, env: o.Env, registry: o.Registry}
	metrics, err := alerting.NewMetrics(o.Registry, o.Version)
	if err != nil {
		return nil, err
	}
	ccfg := ConsumerConfig(o.Env)
	ccfg.Logger = &w.log
	ccfg.Observer = metrics
	// Each client exports franz-go's own metrics (kprom) on the registry.
	ccfg.ExtraOpts = append(slices.Clip(o.KafkaOpts), kgo.WithHooks(alerting.NewKafkaMetrics(o.Registry, "consumer")))
	base, err := ccfg.ClientOpts()
	if err != nil {
		return nil, err
	}
	w.producers = routes.NewProducers(append(append(base, o.KafkaOpts...), kgo.WithHooks(alerting.NewKafkaMetrics(o.Registry, "producer"))), 30*time.Second)
	var bl *backlogs
	if hasSpill(o.File) {
		w.admin, err = kgo.NewClient(append(base, o.KafkaOpts...)...)
		if err != nil {
			w.producers.Close()
			return nil, fmt.Errorf("kafka admin client: %w", err)
		}
		bl = newBacklogs(kadm.NewClient(w.admin), SpillGroup(o.Env.Group))
	}
	w.built, err = buildWith(o.File, w.producers, bl, o.LogOut)
	if err != nil {
		w.closeRoutes()
		return nil, err
	}
	// Bind before the consumer exists: a busy port then leaves nothing
	// running to clean up.
	w.listener, err = net.Listen("tcp", o.Env.HTTPAddr)
	if err != nil {
		w.closeRoutes()
		return nil, fmt.Errorf("listen on FANOUT_HTTP_ADDR %s: %w", o.Env.HTTPAddr, err)
	}
	eng, err := fanout.New(w.built.receivers, fanout.Options{Observer: metrics, Logger: &w.log})
	if err != nil {
		_ = w.listener.Close()
		w.closeRoutes()
		return nil, err
	}
	w.consumer, err = consumer.New(ccfg, eng)
	if err != nil {
		_ = eng.Close(context.Background())
		_ = w.listener.Close()
		w.closeRoutes()
		return nil, err
	}
	if len(w.built.spills) > 0 {
		spillEng, err := fanout.New(w.built.spills, fanout.Options{Observer: metrics, Logger: &w.log})
		if err == nil {
			w.spill, err = consumer.New(spillConsumerConfig(ccfg), spillEng)
			if err != nil {
				_ = spillEng.Close(context.Background())
			}
		}
		if err != nil {
			w.consumer.Abandon()
			_ = w.listener.Close()
			w.closeRoutes()
			return nil, fmt.Errorf("spill consumer: %w", err)
		}
	}
	metrics.CollectFrom(w.Stats)
	w.server = &http.Server{Handler: w.handler(), ReadHeaderTimeout: 5 * time.Second}
	return w, nil
}

// ConsumerConfig maps the process settings to the consumer's.
func ConsumerConfig(e config.Env) consumer.Config {
	c := consumer.Config{
		Brokers:                e.Brokers,
		Group:                  e.Group,
		InstanceID:             e.InstanceID,
		ClientID:               e.ClientID,
		StartOffset:            e.StartOffset,
		CommitInterval:         e.CommitInterval,
		ShutdownTimeout:        e.ShutdownTimeout,
		SessionTimeout:         e.SessionTimeout,
		RebalanceTimeout:       e.RebalanceTimeout,
		RevokeTimeout:          e.RevokeTimeout,
		FetchMaxBytes:          e.FetchMaxBytes,
		PartitionFetchMaxBytes: e.PartitionFetchMaxBytes,
		MaxConcurrentFetches:   e.MaxConcurrentFetches,
	}
	if e.TLSEnabled || e.TLSCAFile != "" || e.TLSCertFile != "" {
		c.TLS = &consumer.TLSConfig{CAFile: e.TLSCAFile, CertFile: e.TLSCertFile, KeyFile: e.TLSKeyFile}
	}
	if e.SASLMechanism != "" {
		c.SASL = &consumer.SASLConfig{Mechanism: e.SASLMechanism, Username: e.SASLUsername, Password: string(e.SASLPassword)}
	}
	return c
}

func (w *Worker) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(w.registry, promhttp.HandlerOpts{Registry: w.registry}))
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(rw, "ok\n")
	})
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if !w.consumer.Ready() {
			rw.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(rw, "not ready\n")
			return
		}
		rw.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(rw, "ready\n")
	})
	return mux
}

// Addr is the HTTP listener's address.
func (w *Worker) Addr() string { return w.listener.Addr().String() }

// Stats is the consumer's and engine's state, for the demo's view.
func (w *Worker) Stats() consumer.Snapshot {
	s := w.consumer.Stats()
	if w.spill != nil {
		ss := w.spill.Stats()
		s.Receivers = append(s.Receivers, ss.Receivers...)
		s.Partitions = append(s.Partitions, ss.Partitions...)
	}
	return s
}

func hasSpill(f *config.File) bool {
	for _, r := range f.Receivers {
		for _, rt := range r.Routes {
			if rt.Spill != nil {
				return true
			}
		}
	}
	return false
}

// Registry is the worker's metrics registry.
func (w *Worker) Registry() *prometheus.Registry { return w.registry }

// Run serves HTTP and consumes until ctx is cancelled, then drains within
// FANOUT_SHUTDOWN_TIMEOUT, commits, leaves the group and stops the
// listener. A drain cut short by the timeout is logged, not returned: the
// uncommitted records are redelivered, which at-least-once allows. Errors
// are startup failures (Kafka unreachable, credentials refused).
func (w *Worker) Run(ctx context.Context) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- w.server.Serve(w.listener) }()
	w.log.Info().Str("http_addr", w.Addr()).Strs("brokers", w.env.Brokers).Str("group", w.env.Group).Msg("fanout starting")

	// Dead-letter topics must exist and every destination's record limit
	// is read before the first record is produced.
	checkCtx, cancelCheck := context.WithTimeout(ctx, 30*time.Second)
	runErr := w.producers.Check(checkCtx)
	cancelCheck()
	switch {
	case ctx.Err() != nil:
		runErr = nil // a signal while starting is a clean stop
		w.abandon()
	case runErr != nil:
		runErr = fmt.Errorf("checking destination topics: %w", runErr)
		w.abandon()
	default:
		// The spill consumer runs beside the main one and drains within
		// the same budget, at the same time.
		spillErr := make(chan error, 1)
		if w.spill != nil {
			go func() { spillErr <- w.spill.Run(ctx) }()
		} else {
			spillErr <- nil
		}
		runErr = w.consumer.Run(ctx)
		if err := <-spillErr; err != nil && (runErr == nil || isDrainErr(runErr)) {
			runErr = fmt.Errorf("spill consumer: %w", err)
			if isDrainErr(err) {
				runErr = err
			}
		}
	}
	var startErr error
	if runErr != nil && !isDrainErr(runErr) {
		startErr = runErr
	} else if runErr != nil {
		w.log.Warn().Err(runErr).Msg("shutdown drain cut short")
	}
	w.closeRoutes()

	// The drain has used the shutdown budget; a scrape in progress gets a
	// moment, not a budget of its own.
	shutCtx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := w.server.Shutdown(shutCtx); err != nil {
		_ = w.server.Close()
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return errors.Join(startErr, fmt.Errorf("http listener: %w", err))
	}
	if startErr == nil {
		w.log.Info().Msg("fanout stopped")
	}
	return startErr
}

func isDrainErr(err error) bool { return errors.Is(err, consumer.ErrDrainCutShort) }

func (w *Worker) abandon() {
	w.consumer.Abandon()
	if w.spill != nil {
		w.spill.Abandon()
	}
}

func (w *Worker) closeRoutes() {
	if w.built != nil {
		if err := w.built.close(); err != nil {
			w.log.Warn().Err(err).Msg("closing routes")
		}
	}
	w.producers.Close()
	if w.admin != nil {
		w.admin.Close()
	}
}

// NewLogger builds the process logger from FANOUT_LOG_LEVEL and
// FANOUT_LOG_FORMAT, writing to w (stderr: stdout belongs to log routes).
// The console format colours its output only when w is a terminal and
// NO_COLOR is not set (no-color.org), so files and pipes get plain text.
func NewLogger(e config.Env, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(e.LogLevel)
	if err != nil {
		level = zerolog.InfoLevel
	}
	if e.LogFormat == "console" {
		f, isFile := w.(*os.File)
		colour := isFile && term.IsTerminal(int(f.Fd())) && os.Getenv("NO_COLOR") == ""
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !colour}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}
