package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"time"
)

// The comparison for users deciding: this worker against what they would
// run instead, in one run, on the same records and the same broker. See
// docs/benchmarks.md, section "This worker against the alternatives".

// Contender kinds and transports.
const (
	kindWorker = "worker" // worker.Worker, what `fanout run` runs
	kindGroups = "groups" // one franz-go consumer group per route
	kindPlain  = "plain"  // one franz-go consumer feeding every route: the limit

	transportKafka   = "kafka"
	transportHTTP    = "http"
	transportDiscard = "discard"

	// discardRoutes is the worker's discard routes against the bare
	// consumer (issue 11's hot-path target).
	discardRoutes = 3
)

var (
	allKinds      = []string{kindWorker, kindGroups, kindPlain}
	allTransports = []string{transportKafka, transportHTTP, transportDiscard}
)

// contender is one program under test.
type contender struct {
	Kind      string
	Transport string
	Routes    int // 0 for the bare consumer
}

func (c contender) validate() error {
	switch {
	case !slices.Contains(allKinds, c.Kind):
		return fmt.Errorf("contender kind %q: want one of %v", c.Kind, allKinds)
	case !slices.Contains(allTransports, c.Transport):
		return fmt.Errorf("contender transport %q: want one of %v", c.Transport, allTransports)
	case c.Transport == transportDiscard && c.Kind == kindGroups:
		return fmt.Errorf("contender %s: no group-per-route discard contender", c)
	case c.Transport == transportDiscard && c.Kind == kindPlain && c.Routes != 0:
		return fmt.Errorf("contender %s: the bare consumer has no routes", c)
	case (c.Transport != transportDiscard || c.Kind == kindWorker) && c.Routes < 1:
		return fmt.Errorf("contender %s: needs at least one route", c)
	}
	return nil
}

// name is the contender as the tables and charts call it.
func (c contender) name() string {
	switch {
	case c.Kind == kindWorker:
		return "fanout worker"
	case c.Kind == kindGroups:
		return "group per route"
	case c.Transport == transportKafka:
		return "franz-go pipeline"
	case c.Transport == transportHTTP:
		return "franz-go + posters"
	}
	return "bare franz-go consumer"
}

func (c contender) String() string {
	switch {
	case c.Routes == 0:
		return c.name()
	case c.Routes == 1:
		return fmt.Sprintf("%s, 1 %s route", c.name(), c.Transport)
	}
	return fmt.Sprintf("%s, %d %s routes", c.name(), c.Routes, c.Transport)
}

// perRecord is the deliveries one record makes.
func (c contender) perRecord() int { return max(c.Routes, 1) }

// compareConfig is one invocation of the comparison.
type compareConfig struct {
	brokers         []string // empty: kfake
	brokerLabel     string   // what the brokers are, for the report
	records         int      // the backlog every throughput run reads
	valueBytes      int
	partitions      int
	keys            int
	duration        time.Duration // most time one throughput run measures
	latencyRate     float64       // records/s offered in latency runs
	latencyDuration time.Duration
	routes          []int
	kinds           []string
	transports      []string
	httpWorkers     int
	ordering        string
	count           int
	ratioRounds     int           // side-by-side pairs behind each target ratio
	joinTimeout     time.Duration // until a contender's first delivery
}

// contenders are the programs cfg selects, in table order.
func (cfg compareConfig) contenders() []contender {
	var out []contender
	for _, t := range []string{transportKafka, transportHTTP} {
		if !slices.Contains(cfg.transports, t) {
			continue
		}
		for _, n := range cfg.routes {
			for _, k := range allKinds {
				if slices.Contains(cfg.kinds, k) {
					out = append(out, contender{Kind: k, Transport: t, Routes: n})
				}
			}
		}
	}
	if slices.Contains(cfg.transports, transportDiscard) {
		if slices.Contains(cfg.kinds, kindWorker) {
			out = append(out, contender{Kind: kindWorker, Transport: transportDiscard, Routes: discardRoutes})
		}
		if slices.Contains(cfg.kinds, kindPlain) {
			out = append(out, contender{Kind: kindPlain, Transport: transportDiscard})
		}
	}
	return out
}

// measurement is one run of one contender.
type measurement struct {
	c contender
	// Throughput run: from its first delivery until the backlog was
	// delivered (done) or cfg.duration passed.
	deliveries int64
	window     time.Duration
	done       bool
	cpu        time.Duration // the child's user + system time in the window
	fetchBytes int64         // bytes the child's consumers fetched in the window
	// readPerRecord is what the broker sent per record of the topic (see
	// childMark.ReadPerRecord), over the child's life to the window's end.
	readPerRecord float64
	peakRSS       int64 // the child's peak resident set, bytes
	// Latency run (not for discard contenders).
	latOffered, latDelivered int64
	p50, p99                 time.Duration
}

func (m measurement) recordsPerSec() float64 {
	return float64(m.deliveries) / float64(m.c.perRecord()) / m.window.Seconds()
}

func (m measurement) cpuPerMillion() float64 {
	return m.cpu.Seconds() / float64(m.deliveries) * 1e6
}

// summary is a contender's measurements over the rounds: the median of
// each figure, the highest peak memory.
type summary struct {
	c                         contender
	runs                      int
	recordsPerSec, cpuPerMill float64
	readPerRecord             float64
	p50, p99                  time.Duration
	latOffered, latDelivered  int64
	peakRSS                   int64
	window                    time.Duration
	allDone                   bool
	deliveries                int64
	hasLatency                bool
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

func summarize(ms []measurement) summary {
	s := summary{c: ms[0].c, runs: len(ms), allDone: true, hasLatency: ms[0].c.Transport != transportDiscard}
	pick := func(f func(m measurement) float64) float64 {
		v := make([]float64, len(ms))
		for i, m := range ms {
			v[i] = f(m)
		}
		return median(v)
	}
	s.recordsPerSec = pick(measurement.recordsPerSec)
	s.cpuPerMill = pick(measurement.cpuPerMillion)
	s.readPerRecord = pick(func(m measurement) float64 { return m.readPerRecord })
	s.p50 = time.Duration(pick(func(m measurement) float64 { return float64(m.p50) }))
	s.p99 = time.Duration(pick(func(m measurement) float64 { return float64(m.p99) }))
	s.latOffered = int64(pick(func(m measurement) float64 { return float64(m.latOffered) }))
	s.latDelivered = int64(pick(func(m measurement) float64 { return float64(m.latDelivered) }))
	s.window = time.Duration(pick(func(m measurement) float64 { return float64(m.window) }))
	s.deliveries = int64(pick(func(m measurement) float64 { return float64(m.deliveries) }))
	for _, m := range ms {
		s.peakRSS = max(s.peakRSS, m.peakRSS)
		s.allDone = s.allDone && m.done
	}
	return s
}

// realBroker tells a run against -brokers from one on kfake.
func (rep *compareReport) realBroker() bool { return len(rep.cfg.brokers) > 0 }

// section is the heading of rep's section of docs/benchmarks.md.
func (rep *compareReport) section() string {
	if rep.realBroker() {
		return sectionBroker
	}
	return sectionCompare
}

// ratio is one of issue 11's targets, measured side by side: each
// sample is one pair of throughput runs of num and den, back to back.
type ratio struct {
	what     string
	num, den contender
	target   float64
	samples  []float64 // num/den records/s, one per pair
	// Medians over the pairs; value 0: not measured in this run.
	value, lo, hi    float64
	numRate, denRate float64
}

func (r ratio) met() bool { return r.value >= r.target }

// ratioDefs are the three ratios the issue sets.
func ratioDefs() []ratio {
	return []ratio{
		{what: "kafka route / franz-go pipeline, 1 route", target: 0.9,
			num: contender{kindWorker, transportKafka, 1}, den: contender{kindPlain, transportKafka, 1}},
		{what: "3 discard routes / bare franz-go consumer", target: 0.6,
			num: contender{kindWorker, transportDiscard, discardRoutes}, den: contender{kindPlain, transportDiscard, 0}},
		{what: "http route / net/http posters of the same concurrency, 1 route", target: 0.95,
			num: contender{kindWorker, transportHTTP, 1}, den: contender{kindPlain, transportHTTP, 1}},
	}
}

// computeRatios pairs the k-th throughput run of each ratio's numerator
// with the k-th of its denominator.
func computeRatios(runs map[contender][]measurement) []ratio {
	rs := ratioDefs()
	for i := range rs {
		r := &rs[i]
		nums, dens := runs[r.num], runs[r.den]
		var nr, dr []float64
		for k := range min(len(nums), len(dens)) {
			n, d := nums[k].recordsPerSec(), dens[k].recordsPerSec()
			if d <= 0 {
				continue
			}
			r.samples = append(r.samples, n/d)
			nr, dr = append(nr, n), append(dr, d)
		}
		if len(r.samples) == 0 {
			continue
		}
		r.value, r.numRate, r.denRate = median(r.samples), median(nr), median(dr)
		r.lo, r.hi = slices.Min(r.samples), slices.Max(r.samples)
	}
	return rs
}

// childProc is a contender's child process.
type childProc struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	kill *time.Timer
	// exited is set once Wait returned.
	exited bool
}

// startChildProc starts spec in a child; the child is killed if it is
// still running after lifetime.
func startChildProc(spec childSpec, stderr io.Writer, lifetime time.Duration) (*childProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-compare-child", string(js))
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &childProc{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	p.kill = time.AfterFunc(lifetime, func() { _ = cmd.Process.Kill() })
	return p, nil
}

// ask sends a command and reads the answer; a contender's failure is an
// error.
func (p *childProc) ask(command string) (childMark, error) {
	if _, err := fmt.Fprintln(p.in, command); err != nil {
		return childMark{}, fmt.Errorf("child: %s: %w", command, err)
	}
	if !p.out.Scan() {
		return childMark{}, fmt.Errorf("child: %s: no answer (exited: %v)", command, p.out.Err())
	}
	var m childMark
	if err := json.Unmarshal(p.out.Bytes(), &m); err != nil {
		return childMark{}, fmt.Errorf("child: %s: answer %q: %w", command, p.out.Text(), err)
	}
	if m.Err != "" {
		return m, errors.New(m.Err)
	}
	return m, nil
}

// stop ends the contender and the child and returns the child's peak
// resident set in bytes.
func (p *childProc) stop() (int64, error) {
	m, err := p.ask("stop")
	_ = p.in.Close()
	werr := p.cmd.Wait()
	p.exited = true
	p.kill.Stop()
	if err == nil && werr != nil {
		err = fmt.Errorf("child: %w", werr)
	}
	if err == nil && m.PeakRSS == 0 {
		err = fmt.Errorf("child: no peak RSS (VmHWM of /proc/self/status): this program measures memory on Linux only")
	}
	return m.PeakRSS, err
}

// abort kills the child unless it was stopped.
func (p *childProc) abort() {
	if p.exited {
		return
	}
	_ = p.in.Close()
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.exited = true
	p.kill.Stop()
}
