package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// config is one invocation of the harness.
type config struct {
	duration   time.Duration // per design and workload
	rate       float64       // records offered per second
	fastWork   time.Duration // the fast route's time per record
	slowFactor int           // the slow route takes slowFactor × fastWork
	payload    int           // bytes per record
	heapLimit  uint64        // a run stops when heap + stacks exceed it
	count      int           // runs of each design under each workload
	designs    []int         // ids of the designs to run
	isolate    bool          // each run in a child process
	workloads  []workload
}

func (c config) slowWork() time.Duration { return time.Duration(c.slowFactor) * c.fastWork }

// workload is what the slow route does.
type workload struct {
	name  string
	stall bool // the slow route blocks until the run ends
}

var workloads = []workload{
	{name: "normal"},
	{name: "stall", stall: true},
}

// result is one design under one workload.
type result struct {
	design   designSpec
	workload workload
	elapsed  time.Duration
	// ingested counts the events next accepted before the deadline.
	ingested int64
	// fastDelivered counts the fast route's deliveries before the deadline.
	fastDelivered int64
	fastP50       time.Duration
	fastP99       time.Duration
	slowP50       time.Duration // the slow route's real time per record (not under stall)
	peakGor       int
	peakHeap      uint64 // heap in use (objects and unused space in heap spans)
	peakStacks    uint64 // goroutine stacks
	hitLimit      bool
	err           error

	// Set by aggregate: the number of runs summarised, their median rates
	// and the spread of their fast-route p99.
	runs                     int
	ingestPerSec, fastPerSec float64
	p99Min, p99Max           time.Duration
}

// ingestRate is ingested per second (the median over runs once aggregated).
func (r result) ingestRate() float64 {
	if r.runs > 0 {
		return r.ingestPerSec
	}
	return float64(r.ingested) / r.elapsed.Seconds()
}

// fastRate is fastDelivered per second (the median over runs once aggregated).
func (r result) fastRate() float64 {
	if r.runs > 0 {
		return r.fastPerSec
	}
	return float64(r.fastDelivered) / r.elapsed.Seconds()
}

// recorder collects the fast route's latencies, ingestion to the end of
// its work. It stops counting at the run's deadline.
type recorder struct {
	stopped atomic.Bool
	n       atomic.Int64
	lat     []time.Duration // preallocated; read only after the run's goroutines ended
}

func (r *recorder) observe(d time.Duration) {
	if r.stopped.Load() {
		return
	}
	if i := r.n.Add(1) - 1; i < int64(len(r.lat)) {
		r.lat[i] = d
	}
}

// spin busy-waits d. The fast route uses it because time.Sleep of a few
// microseconds takes about a millisecond on many Linux machines (see the
// calibration in the report).
func spin(d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
	}
}

// sleepCtx sleeps d unless ctx has ended.
func sleepCtx(ctx context.Context, d time.Duration) {
	if ctx.Err() == nil {
		time.Sleep(d)
	}
}

func routesFor(ctx context.Context, cfg config, w workload, rec, slowRec *recorder) []routeFn {
	fast := func(ingested time.Time, payload []byte) {
		spin(cfg.fastWork)
		_ = payload[len(payload)-1] // a route reads its record
		rec.observe(time.Since(ingested))
	}
	slow := func(time.Time, []byte) {
		start := time.Now()
		sleepCtx(ctx, cfg.slowWork())
		slowRec.observe(time.Since(start))
	}
	if w.stall {
		slow = func(time.Time, []byte) { <-ctx.Done() }
	}
	return []routeFn{fast, slow}
}

// sampler records peak goroutines, heap and stacks every few milliseconds,
// and calls over once when heap + stacks pass the limit.
type sampler struct {
	stopCh  chan struct{}
	done    chan struct{}
	peakGor int
	heap    uint64
	stacks  uint64
	over    atomic.Bool
}

func startSampler(limit uint64, over func()) *sampler {
	s := &sampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/sched/goroutines:goroutines"},
	}
	read := func() {
		metrics.Read(samples)
		heap := samples[0].Value.Uint64() + samples[1].Value.Uint64()
		stacks := samples[2].Value.Uint64()
		s.heap = max(s.heap, heap)
		s.stacks = max(s.stacks, stacks)
		s.peakGor = max(s.peakGor, int(samples[3].Value.Uint64()))
		if heap+stacks > limit && !s.over.Swap(true) {
			over()
		}
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-t.C:
			case <-s.stopCh:
				read()
				return
			}
		}
	}()
	return s
}

// stop ends sampling; the peaks are readable afterwards.
func (s *sampler) stop() { close(s.stopCh); <-s.done }

// drive is the receiver's poll loop: records become due at cfg.rate (a
// ticker releases each millisecond's batch; a loop that fell behind
// catches up as fast as next lets it) and it calls next for each, in
// order, until ctx ends.
func drive(ctx context.Context, d design, cfg config, ingested *atomic.Int64, stopped *atomic.Bool) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	start := time.Now()
	var seq int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		due := int64(time.Since(start).Seconds() * cfg.rate)
		for seq < due {
			if ctx.Err() != nil {
				return nil
			}
			ev := &event{seq: seq, payload: make([]byte, cfg.payload)}
			ev.ingested = time.Now()
			if err := d.next(ctx, ev); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			seq++
			if !stopped.Load() {
				ingested.Add(1)
			}
		}
	}
}

// runOne runs one design under one workload for cfg.duration (less when
// the heap limit stops it) and tears it down.
func runOne(spec designSpec, w workload, cfg config) result {
	res := result{design: spec, workload: w}
	runtime.GC()
	debug.FreeOSMemory()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	samples := int(cfg.rate*cfg.duration.Seconds()*1.5) + 4096
	rec := &recorder{lat: make([]time.Duration, samples)}
	slowRec := &recorder{lat: make([]time.Duration, samples)}
	d := spec.build()
	if err := d.start(routesFor(ctx, cfg, w, rec, slowRec)); err != nil {
		res.err = err
		return res
	}
	var ingested atomic.Int64
	var stopped atomic.Bool
	limit := make(chan struct{})
	samp := startSampler(cfg.heapLimit, func() { close(limit) })

	start := time.Now()
	driverErr := make(chan error, 1)
	go func() { driverErr <- drive(ctx, d, cfg, &ingested, &stopped) }()
	deadline := time.NewTimer(cfg.duration)
	defer deadline.Stop()
	var derr error
	driverDone := false
	select {
	case <-deadline.C:
	case <-limit:
		res.hitLimit = true
	case derr = <-driverErr:
		driverDone = true
	}
	res.elapsed = time.Since(start)
	stopped.Store(true)
	rec.stopped.Store(true)
	slowRec.stopped.Store(true)
	res.ingested = ingested.Load()
	res.fastDelivered = rec.n.Load()
	samp.stop()
	res.peakGor, res.peakHeap, res.peakStacks = samp.peakGor, samp.heap, samp.stacks

	cancel()
	if !driverDone {
		derr = <-driverErr
	}
	serr := d.stop()
	switch {
	case derr != nil:
		res.err = fmt.Errorf("driver: %w", derr)
	case serr != nil:
		res.err = fmt.Errorf("stop: %w", serr)
	}
	// Every route goroutine has ended: the latencies are safe to read.
	n := min(res.fastDelivered, int64(len(rec.lat)))
	lat := slices.Clone(rec.lat[:n])
	slices.Sort(lat)
	res.fastP50 = quantile(lat, 0.50)
	res.fastP99 = quantile(lat, 0.99)
	n = min(slowRec.n.Load(), int64(len(slowRec.lat)))
	lat = slices.Clone(slowRec.lat[:n])
	slices.Sort(lat)
	res.slowP50 = quantile(lat, 0.50)
	return res
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// calibration is what the simulated work really takes on this machine.
type calibration struct {
	sleepFast time.Duration // median of time.Sleep(fastWork)
	sleepSlow time.Duration // median of time.Sleep(slowWork)
	spinFast  time.Duration // median of spin(fastWork)
}

func calibrate(cfg config) calibration {
	median := func(n int, f func()) time.Duration {
		d := make([]time.Duration, n)
		for i := range d {
			start := time.Now()
			f()
			d[i] = time.Since(start)
		}
		slices.Sort(d)
		return d[n/2]
	}
	return calibration{
		sleepFast: median(100, func() { time.Sleep(cfg.fastWork) }),
		sleepSlow: median(100, func() { time.Sleep(cfg.slowWork()) }),
		spinFast:  median(1000, func() { spin(cfg.fastWork) }),
	}
}

// report is a whole invocation's results.
type report struct {
	cfg     config
	cal     calibration
	results []result
	started time.Time
	// loadBefore and loadAfter are /proc/loadavg around the runs: other
	// processes on the machine skew the numbers.
	loadBefore, loadAfter string
	command               string // the command line that reproduces it
}

// run calibrates and runs every selected design under every workload
// cfg.count times, logging progress to log. The rounds are interleaved, so
// a noisy moment of the machine hits one run of several designs rather
// than every run of one.
func run(cfg config, log io.Writer) (*report, error) {
	rep := &report{cfg: cfg, started: time.Now(), loadBefore: loadavg()}
	rep.cal = calibrate(cfg)
	fmt.Fprintf(log, "calibration: time.Sleep(%s) takes %s, time.Sleep(%s) takes %s, spin(%s) takes %s; load average %s\n",
		cfg.fastWork, rep.cal.sleepFast, cfg.slowWork(), rep.cal.sleepSlow, cfg.fastWork, rep.cal.spinFast, rep.loadBefore)
	type key struct {
		id int
		w  string
	}
	runs := map[key][]result{}
	for round := 1; round <= cfg.count; round++ {
		for _, w := range cfg.workloads {
			for _, spec := range designs {
				if !slices.Contains(cfg.designs, spec.id) {
					continue
				}
				var res result
				if cfg.isolate {
					res = runIsolated(spec, w, cfg)
				} else {
					res = runOne(spec, w, cfg)
				}
				fmt.Fprintf(log, "round %d %-38s %-6s ingested %6.0f/s fast %6.0f/s (%d/%d) p99 %-9s goroutines %6d heap %6.1f MiB stacks %6.1f MiB%s\n",
					round, spec.name, w.name, res.ingestRate(), res.fastRate(), res.fastDelivered, res.ingested, fmtDur(res.fastP99),
					res.peakGor, mib(res.peakHeap), mib(res.peakStacks), noteOf(res, cfg))
				if res.err != nil {
					return rep, fmt.Errorf("%s, %s: %w", spec.name, w.name, res.err)
				}
				k := key{spec.id, w.name}
				runs[k] = append(runs[k], res)
			}
		}
	}
	rep.loadAfter = loadavg()
	for _, w := range cfg.workloads {
		for _, spec := range designs {
			if rs := runs[key{spec.id, w.name}]; len(rs) > 0 {
				rep.results = append(rep.results, aggregate(rs))
			}
		}
	}
	return rep, nil
}

// aggregate is the median of each rate, count and latency over rs, and
// the highest of each peak: a row is not one run but a summary of them.
func aggregate(rs []result) result {
	med := func(f func(r result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if n := len(v); n%2 == 0 {
			return (v[n/2-1] + v[n/2]) / 2
		}
		return v[len(v)/2]
	}
	out := rs[0]
	out.runs = len(rs)
	// Rates are kept exact by scaling the counts to the median elapsed time.
	out.elapsed = time.Duration(med(func(r result) float64 { return float64(r.elapsed) }))
	out.ingested = int64(med(func(r result) float64 { return float64(r.ingested) }) + 0.5)
	out.fastDelivered = int64(med(func(r result) float64 { return float64(r.fastDelivered) }) + 0.5)
	out.ingestPerSec = med(func(r result) float64 { return r.ingestRate() })
	out.fastPerSec = med(func(r result) float64 { return r.fastRate() })
	out.fastP50 = time.Duration(med(func(r result) float64 { return float64(r.fastP50) }))
	out.fastP99 = time.Duration(med(func(r result) float64 { return float64(r.fastP99) }))
	out.slowP50 = time.Duration(med(func(r result) float64 { return float64(r.slowP50) }))
	out.p99Min, out.p99Max = rs[0].fastP99, rs[0].fastP99
	for _, r := range rs {
		out.peakGor = max(out.peakGor, r.peakGor)
		out.peakHeap = max(out.peakHeap, r.peakHeap)
		out.peakStacks = max(out.peakStacks, r.peakStacks)
		out.hitLimit = out.hitLimit || r.hitLimit
		out.p99Min, out.p99Max = min(out.p99Min, r.fastP99), max(out.p99Max, r.fastP99)
	}
	return out
}

// loadavg is the machine's 1, 5 and 15 minute load averages, or "?".
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func noteOf(r result, cfg config) string {
	if r.hitLimit {
		return fmt.Sprintf(" stopped at the %.0f MiB heap+stacks limit after %.1fs", mib(cfg.heapLimit), r.elapsed.Seconds())
	}
	return ""
}
