package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	fconfig "github.com/receiver-fanout/fanout/config"
	"github.com/receiver-fanout/fanout/worker"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A contender runs in a child process of its own (this program re-executed
// with -compare-child), so that its CPU time and peak memory are the
// process's own rusage and nothing else's: the broker (kfake), the HTTP
// sink and the harness live in the parent. The parent talks to the child
// over its standard input and output, one line each way:
//
//	mark  -> {"CPU":..., "Count":..., ...}   (the child's rusage and counters now)
//	stop  -> the same, after the contender shut down; then the child exits
//
// A closed standard input (the parent died) stops the child too.

// childSpec is what the parent asks a child to run.
type childSpec struct {
	Contender   contender
	Brokers     []string
	Source      string   // the topic consumed
	Group       string   // the consumer group (a prefix for group-per-route)
	Dests       []string // per route: a topic (kafka) or a URL (http)
	HTTPWorkers int      // per http route: the worker's workers, the plain program's posters
	Ordering    string   // the worker's routes' ordering; empty: the configuration's default
}

// childMark is a child's answer to mark and stop.
type childMark struct {
	CPU        time.Duration // user + system time of the whole process so far
	Count      int64         // deliveries the contender counted itself
	FetchBytes int64         // record-batch bytes its Kafka consumers fetched (franz-go's HookFetchBatchRead)
	// ReadPerRecord is, summed over the contender's consumers, each
	// one's fetched bytes per record it fetched: what the broker sends
	// per record of the topic.
	ReadPerRecord float64
	// PeakRSS is the process's peak resident set in bytes (VmHWM): read
	// here because the ru_maxrss the parent gets from wait4 starts from
	// the parent's own peak, inherited across the fork and exec.
	PeakRSS int64
	Err     string // the contender failed
}

// running is a started contender.
type running struct {
	count func() int64
	check func() error  // a failure while running (nil: cannot fail so)
	done  chan struct{} // closed when the contender stopped; err is set before
	err   error
}

func (r *running) failed() error {
	select {
	case <-r.done:
		if r.err == nil {
			return fmt.Errorf("stopped by itself")
		}
		return r.err
	default:
	}
	if r.check != nil {
		return r.check()
	}
	return nil
}

// fetchStats counts what one consumer (its client) read from the broker.
type fetchStats struct{ bytes, records atomic.Int64 }

var _ kgo.HookFetchBatchRead = (*fetchStats)(nil)

func (f *fetchStats) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	f.bytes.Add(int64(m.CompressedBytes))
	f.records.Add(int64(m.NumRecords))
}

// reads are the fetch counters of a contender's consumers.
type reads struct {
	mu   sync.Mutex
	list []*fetchStats
}

// add is a new consumer's counter.
func (r *reads) add() *fetchStats {
	f := &fetchStats{}
	r.mu.Lock()
	r.list = append(r.list, f)
	r.mu.Unlock()
	return f
}

// mark fills m's fetch figures.
func (r *reads) mark(m *childMark) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.list {
		b, n := f.bytes.Load(), f.records.Load()
		m.FetchBytes += b
		if n > 0 {
			m.ReadPerRecord += float64(b) / float64(n)
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSSSelf is this process's peak resident set in bytes, from
// /proc/self/status (Linux); 0 where that is not available.
func peakRSSSelf() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	return parseVmHWM(string(b))
}

// parseVmHWM reads the "VmHWM:  1234 kB" line of a /proc status file.
func parseVmHWM(status string) int64 {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return n << 10
				}
			}
		}
	}
	return 0
}

// runCompareChild is the child's side.
func runCompareChild(specJSON string, stdin io.Reader, stdout io.Writer) error {
	var spec childSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("-compare-child: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fb := &reads{}
	enc := json.NewEncoder(stdout)
	stopProfile, err := startChildProfile(spec.Contender)
	if err != nil {
		return enc.Encode(childMark{Err: err.Error()})
	}
	defer stopProfile()
	r, err := startContender(ctx, spec, fb)
	if err != nil {
		return enc.Encode(childMark{Err: err.Error()})
	}
	mark := func() childMark {
		m := childMark{CPU: cpuTime(), Count: r.count()}
		fb.mark(&m)
		if err := r.failed(); err != nil {
			m.Err = err.Error()
		}
		return m
	}
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "mark":
			if err := enc.Encode(mark()); err != nil {
				return err
			}
		case "stop":
			early := r.failed()
			cancel()
			<-r.done
			m := childMark{CPU: cpuTime(), Count: r.count(), PeakRSS: peakRSSSelf()}
			fb.mark(&m)
			if early != nil {
				m.Err = early.Error()
			} else if r.err != nil {
				m.Err = r.err.Error()
			}
			return enc.Encode(m)
		default:
			return fmt.Errorf("-compare-child: unknown command %q", sc.Text())
		}
	}
	cancel()
	<-r.done
	return nil
}

// profileDirEnv names a directory for the children's CPU profiles: with
// it set, each contender process writes <dir>/<contender>-<n>.pprof
// covering its whole run, n counting its runs (the throughput runs come
// first, then the latency run).
const profileDirEnv = "BENCH_CPUPROFILE_DIR"

// startChildProfile starts the CPU profile BENCH_CPUPROFILE_DIR asks for,
// if any, and returns what stops it.
func startChildProfile(c contender) (func(), error) {
	dir := os.Getenv(profileDirEnv)
	if dir == "" {
		return func() {}, nil
	}
	name := strings.NewReplacer(" ", "-", "/", "-").Replace(c.String())
	var f *os.File
	var err error
	for n := 1; ; n++ {
		f, err = os.OpenFile(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", name, n)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", profileDirEnv, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", profileDirEnv, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func startContender(ctx context.Context, spec childSpec, fb *reads) (*running, error) {
	c := spec.Contender
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.Transport != transportDiscard && len(spec.Dests) != c.Routes {
		return nil, fmt.Errorf("%s: %d destinations for %d routes", c, len(spec.Dests), c.Routes)
	}
	switch c.Kind {
	case kindWorker:
		return startWorker(ctx, spec, fb)
	case kindGroups:
		pipes := make([]*pipe, c.Routes)
		for i := range pipes {
			p, err := newPipe(spec, fmt.Sprintf("%s-r%d", spec.Group, i), spec.Dests[i:i+1], fb)
			if err != nil {
				for _, q := range pipes[:i] {
					q.abandon()
				}
				return nil, err
			}
			pipes[i] = p
		}
		return runPipes(ctx, pipes), nil
	default: // kindPlain
		p, err := newPipe(spec, spec.Group, spec.Dests, fb)
		if err != nil {
			return nil, err
		}
		return runPipes(ctx, []*pipe{p}), nil
	}
}

// workerYAML is the receivers file of the worker under test: one receiver,
// its routes at the configuration's defaults but for the http routes'
// workers (as many as the plain program's posters) and, when asked, the
// ordering.
func workerYAML(spec childSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "receivers:\n  - topic: %q\n    routes:\n", spec.Source)
	for i := range spec.Contender.Routes {
		fmt.Fprintf(&b, "      - name: r%d\n        type: %s\n", i, spec.Contender.Transport)
		if spec.Ordering != "" {
			fmt.Fprintf(&b, "        ordering: %s\n", spec.Ordering)
		}
		switch spec.Contender.Transport {
		case transportKafka:
			fmt.Fprintf(&b, "        kafka:\n          topic: %q\n", spec.Dests[i])
		case transportHTTP:
			fmt.Fprintf(&b, "        workers: %d\n        http:\n          url: %q\n", spec.HTTPWorkers, spec.Dests[i])
		}
	}
	return b.String()
}

// startWorker runs worker.Worker, exactly what `fanout run` runs.
func startWorker(ctx context.Context, spec childSpec, fb *reads) (*running, error) {
	f, err := fconfig.Parse("benchmark receivers", []byte(workerYAML(spec)), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, err
	}
	env := fconfig.DefaultEnv()
	env.Brokers = spec.Brokers
	env.Group = spec.Group
	env.HTTPAddr = "127.0.0.1:0"
	env.ShutdownTimeout = 5 * time.Second
	env.Normalize()
	if err := env.Validate(); err != nil {
		return nil, err
	}
	// A registry without the Go and process collectors: they cost only
	// on scrape, and the harness reads the delivery counter from it.
	reg := prometheus.NewRegistry()
	w, err := worker.New(worker.Options{
		Version:   "benchmark",
		Env:       env,
		File:      f,
		Logger:    zerolog.Nop(),
		Registry:  reg,
		KafkaOpts: []kgo.Opt{kgo.WithHooks(fb.add())}, // only the consumer fetches
	})
	if err != nil {
		return nil, err
	}
	r := &running{done: make(chan struct{}), count: func() int64 { return successes(reg) }}
	go func() {
		defer close(r.done)
		r.err = w.Run(ctx)
	}()
	return r, nil
}

// successes is the sum of fanout_route_deliveries_total{outcome="success"}.
func successes(g prometheus.Gatherer) int64 {
	mfs, err := g.Gather()
	if err != nil {
		return -1
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "fanout_route_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == "success" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return int64(n)
}
