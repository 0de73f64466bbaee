// Package demo is `fanout demo`: an in-process Kafka, generated events and
// routes of different speeds running through the real worker, with a live
// view of what happens.
//
// The worker is exactly the one `fanout run` starts (worker.New and Run); the
// demo only supplies its configuration, the Kafka cluster, the event
// generator and the HTTP endpoints the routes deliver to. Files:
//
//   - cluster.go: the embedded kfake cluster and the event generator
//   - sinks.go: the HTTP endpoints (fast, slow, flaky, congesting)
//   - scenario.go: the receivers and routes, the settings, the timeline
//   - monitor.go, store.go: a small Prometheus: scrapes the worker's
//     registry every tick into an in-memory store and evaluates
//     alerting/rules.yml on it with Prometheus's PromQL engine
//   - figures.go: the figures, PromQL queries on the same store
//   - verdicts.go: the goals of the design, judged on the figures
//   - tui.go, plain.go: the terminal view and the one-line-a-second printer
package demo

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receiver-fanout/fanout/alerting"
	"github.com/receiver-fanout/fanout/config"
	"github.com/receiver-fanout/fanout/worker"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Usage is the demo command's help text.
const Usage = `Usage: fanout demo [--duration D] [--plain] [--http-addr ADDR] [--rate N]

Shows Receiver Fanout at work with nothing installed but Go: it starts a
Kafka cluster inside the process (loopback, random ports), generates events
to two receivers, orders and payments (4 partitions each), and runs the
real worker, the one "fanout run" starts, against HTTP endpoints served in
the process:

  fast       answers in about 1ms
  slow       answers in about 50ms, with enough workers to keep up
  flaky      answers 503 to 10% of requests (retried) and 400 to 1% of
             records (permanent): retries, then the dead-letter topic
  congested  orders only: answers in 1ms, then 8s after the group is
             joined it takes 2s a request for 10s, and recovers; it has
             spill: congested for 3s, it detaches to the topic
             orders.spill.congested and is fed from there
  audit      a kafka route copying every record to the topic "audit"

Watch the three goals of the design hold live: the fast route is never
slowed by the slow one, each receiver ingests at the rate events arrive,
and a slow destination holds back only its own route: orders/congested
fills its queue and pauses orders for 3s, then detaches; its records wait
in its spill topic (the view shows the backlog and its age) while orders
and its other routes keep their full rate, and once the destination
recovers the backlog drains and the route re-attaches. The view also
shows the alerts of the shipped rules (alerting/rules.yml), evaluated
every second on the worker's metrics by Prometheus's own PromQL engine:
how long each condition has held against its for: (pending), and what
fires.

On a terminal the view is live (q or Ctrl-C quits); it is laid out for
80×24 and says so when the terminal is smaller. Otherwise, or with
--plain, one status line a second goes to stdout, and the demo stops by
itself a few seconds after orders has caught up and orders/congested
re-attached (about 30s in all). --duration D stops either after D
instead. /metrics, /healthz and /readyz are served as by "fanout run",
on --http-addr (when that port is busy, on a free port; the address is
printed at start).
`

// Defaults of the flags.
const (
	defaultHTTPAddr = "127.0.0.1:8080"
	defaultRate     = 400
)

// Options are the demo's flags, plus knobs the tests use to compress the
// timeline.
type Options struct {
	// Duration stops the demo after this long. 0: the live view runs until
	// ctx ends or the user quits, the plain output until orders has
	// recovered from the congestion.
	Duration time.Duration
	// Version is exported as fanout_build_info.
	Version string
	// HTTPAddr is the worker's listener for /metrics, /healthz, /readyz.
	HTTPAddr string
	// Plain prints status lines even on a terminal.
	Plain bool
	// Rate is the number of events a second generated for each receiver.
	Rate int

	// The congestion of orders/congested: it starts congestAfter after the
	// worker joined the group, lasts congestFor, and meanwhile every
	// request takes congestDelay.
	congestAfter, congestFor, congestDelay time.Duration
	// spillAfter is orders/congested's spill.after: how long it stays
	// congested before it detaches to its spill topic.
	spillAfter time.Duration
	// tick is how often the worker is scraped, the rules evaluated and the
	// figures computed.
	tick time.Duration
	// virtualStep, when set, is how far the monitor's clock moves a tick:
	// it then starts at Unix 0 instead of following the wall clock
	// (tests compress time so).
	virtualStep time.Duration
	// observe, when set, receives every tick's figures, and inspect the
	// monitor once the demo stopped (tests).
	observe func(Figures)
	inspect func(*monitor)
}

// Bind registers the flags on fs.
func (o *Options) Bind(fs *flag.FlagSet) {
	fs.DurationVar(&o.Duration, "duration", 0, "stop after this long (0: the live view runs until q, the plain output until orders has recovered)")
	fs.BoolVar(&o.Plain, "plain", false, "print one plain status line a second even on a terminal")
	fs.StringVar(&o.HTTPAddr, "http-addr", defaultHTTPAddr, "listener for /metrics, /healthz and /readyz (a free port when busy)")
	fs.IntVar(&o.Rate, "rate", defaultRate, "events a second generated for each receiver")
}

func (o *Options) setDefaults() {
	if o.HTTPAddr == "" {
		o.HTTPAddr = defaultHTTPAddr
	}
	if o.Rate <= 0 {
		o.Rate = defaultRate
	}
	if o.congestAfter <= 0 {
		o.congestAfter = 8 * time.Second
	}
	if o.congestFor <= 0 {
		// Shorter than FanoutReceiverPaused's for: (45s): the page is seen
		// pending, and a 10s stall does not page.
		o.congestFor = 10 * time.Second
	}
	if o.congestDelay <= 0 {
		o.congestDelay = 2 * time.Second
	}
	if o.spillAfter <= 0 {
		// Well within the congestion: the route detaches and orders
		// flows again for most of it.
		o.spillAfter = 3 * time.Second
	}
	if o.tick <= 0 {
		o.tick = time.Second
	}
}

// Run runs the demo until ctx ends, the duration passes or, on a terminal,
// the user quits. It returns an error only when the demo cannot start or
// the worker fails.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) error {
	o.setDefaults()
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	plain := o.Plain || !isTerminal(stdout)

	// Plain mode logs errors to stderr (warnings would be one line per
	// retry); the live view owns the terminal, so there the last lines are
	// kept and printed once it is gone.
	var logs *tail
	var logger zerolog.Logger
	if plain {
		logger = zerolog.New(zerolog.ConsoleWriter{Out: zerolog.SyncWriter(stderr), TimeFormat: time.TimeOnly}).Level(zerolog.ErrorLevel).With().Timestamp().Logger()
	} else {
		logs = newTail(5)
		logger = zerolog.New(logs).Level(zerolog.ErrorLevel).With().Timestamp().Logger()
	}

	d, err := start(o, logger)
	if err != nil {
		return err
	}
	var viewErr error
	if plain {
		viewErr = runPlain(ctx, d, stdout)
	} else {
		viewErr = runTUI(ctx, d, stdout)
	}
	stopErr := d.stop()
	if logs != nil {
		logs.flush(stderr)
	}
	if o.inspect != nil {
		o.inspect(d.monitor)
	}
	return errors.Join(viewErr, stopErr)
}

// isTerminal tells whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// running is a started demo: cluster, endpoints, worker, generator and
// timeline.
type running struct {
	opts    Options
	started time.Time
	cluster *cluster
	sinks   *sinks
	file    *config.File
	worker  *worker.Worker
	notice  string // said once at start (a port fallback)

	cancelWorker context.CancelFunc
	workerExited chan struct{} // closed when Run returned
	workerErr    error         // Run's result, set before workerExited closes
	gen          *generator
	timeline     *timeline
	monitor      *monitor
	figures      *collector
}

// start brings everything up in dependency order and undoes what it did
// when a step fails.
func start(o Options, logger zerolog.Logger) (d *running, err error) {
	d = &running{opts: o, started: time.Now()}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	d.cluster, err = startCluster(kafkaTopics())
	if err != nil {
		return nil, fmt.Errorf("start the embedded Kafka: %w", err)
	}
	undo = append(undo, d.cluster.close)

	d.sinks, err = startSinks(o.congestDelay)
	if err != nil {
		return nil, fmt.Errorf("start the HTTP endpoints: %w", err)
	}
	undo = append(undo, d.sinks.close)

	d.file = demoFile(d.sinks, o.spillAfter)
	if err := d.file.Validate(); err != nil {
		return nil, fmt.Errorf("demo configuration: %w", err)
	}
	httpAddr, notice := pickHTTPAddr(o.HTTPAddr)
	d.notice = notice
	env := demoEnv(d.cluster.addrs, httpAddr)
	if err := env.Validate(); err != nil {
		return nil, fmt.Errorf("demo settings: %w", err)
	}
	// The rules are loaded before the worker exists (one not run cannot
	// be released): a rules file the demo cannot evaluate stops it here.
	workerReg, demoReg := alerting.NewRegistry(), prometheus.NewRegistry()
	step := cmp.Or(o.virtualStep, o.tick)
	d.monitor, err = newMonitor(alerting.RulesYAML, prometheus.Gatherers{workerReg, demoReg}, step, figureExprs(step)...)
	if err != nil {
		return nil, err
	}
	d.worker, err = worker.New(worker.Options{
		Registry:  workerReg,
		Version:   o.Version,
		Env:       env,
		File:      d.file,
		Logger:    logger,
		KafkaOpts: []kgo.Opt{kgo.HeartbeatInterval(500 * time.Millisecond)},
	})
	if err != nil {
		return nil, err
	}
	d.monitor.instance = d.worker.Addr()

	ctx, cancel := context.WithCancel(context.Background())
	d.cancelWorker = cancel
	d.workerExited = make(chan struct{})
	go func() {
		d.workerErr = d.worker.Run(ctx)
		close(d.workerExited)
	}()
	undo = append(undo, func() { cancel(); <-d.workerExited })

	d.gen, err = startGenerator(d.cluster.addrs, receiverTopics(), o.Rate, demoReg)
	if err != nil {
		return nil, fmt.Errorf("start the event generator: %w", err)
	}
	undo = append(undo, d.gen.stop)

	d.timeline = startTimeline(d.started, d.worker, d.sinks, o.congestAfter, o.congestFor)
	d.figures = &collector{started: d.started, mon: d.monitor, file: d.file, timeline: d.timeline, step: step, virtual: o.virtualStep > 0}
	return d, nil
}

// pickHTTPAddr returns addr, or a free loopback port with a notice when
// addr is in use. It tries before worker.New does, because a worker whose
// listener fails to bind is not fully released by worker.New.
func pickHTTPAddr(addr string) (string, string) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return "127.0.0.1:0", addr + " is busy; serving on a free port instead"
	}
	if err == nil {
		_ = ln.Close()
	}
	return addr, "" // any other problem is worker.New's to report
}

// stop shuts down in the reverse order of start: no more events, the
// worker drains and leaves the group, then the endpoints and the cluster
// go (no kfake method may be called after its Close).
func (d *running) stop() error {
	d.timeline.stop()
	d.gen.stop()
	d.cancelWorker()
	<-d.workerExited
	d.sinks.close()
	d.cluster.close()
	if d.workerErr != nil {
		return fmt.Errorf("worker: %w", d.workerErr)
	}
	return nil
}

// metricsURL is where the worker serves its metrics.
func (d *running) metricsURL() string { return "http://" + d.worker.Addr() + "/metrics" }

// sample takes one tick of figures and hands it to the test hook.
func (d *running) sample() Figures {
	f := d.figures.collect(context.Background(), time.Now())
	if d.opts.observe != nil {
		d.opts.observe(f)
	}
	return f
}
