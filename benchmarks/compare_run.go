package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// comparer runs the contenders against one broker and one HTTP sink.
type comparer struct {
	cfg    compareConfig
	b      *broker
	sink   *httpSink
	rs     records
	log    io.Writer
	prefix string // of every topic and group this run creates
	seq    int
	source string // the backlog topic
	groups []string
}

// compareReport is a whole comparison's results.
type compareReport struct {
	cfg                   compareConfig
	broker                string
	started               time.Time
	backlogTook           time.Duration
	sums                  []summary
	ratios                []ratio
	loadBefore, loadAfter string
	command               string
	charts                []string // files written, relative to the markdown file
}

// pollEvery is how often a run reads its counters.
const pollEvery = 10 * time.Millisecond

func runCompare(cfg compareConfig, log io.Writer) (rep *compareReport, err error) {
	rep = &compareReport{cfg: cfg, started: time.Now(), loadBefore: loadavg()}
	b, err := openBroker(cfg.brokers)
	if err != nil {
		return nil, err
	}
	defer b.close()
	rep.broker = b.kind(cfg.brokerLabel)
	sink, err := startHTTPSink()
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, sink.close()) }()
	c := &comparer{cfg: cfg, b: b, sink: sink, rs: newRecords(cfg.valueBytes, cfg.keys), log: log,
		prefix: fmt.Sprintf("fanout-bench-%d", time.Now().UnixNano())}
	defer func() {
		// On a real broker nothing of the run stays behind. A failure
		// here costs no result: it is only said.
		if cerr := errors.Join(b.deleteTopics(c.source), b.deleteGroups(c.groups...)); cerr != nil {
			fmt.Fprintf(log, "compare: cleaning up: %v\n", cerr)
		}
	}()
	c.source = c.name("backlog")
	if err := b.createTopics(cfg.partitions, c.source); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := b.produceBacklog(c.source, c.rs, cfg.records); err != nil {
		return nil, err
	}
	rep.backlogTook = time.Since(start)
	fmt.Fprintf(log, "compare: %s, backlog of %d records of %d bytes on %d partitions written in %s\n",
		rep.broker, cfg.records, cfg.valueBytes, cfg.partitions, rep.backlogTook.Round(time.Millisecond))

	cs := cfg.contenders()
	runs := make([][]measurement, len(cs))
	for round := 1; round <= cfg.count; round++ {
		for i, ct := range cs {
			m, err := c.measure(ct)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ct, err)
			}
			runs[i] = append(runs[i], m)
			lat := ""
			if ct.Transport != transportDiscard {
				lat = fmt.Sprintf(" p50 %s p99 %s (%d/%d)", fmtDur(m.p50), fmtDur(m.p99), m.latDelivered, m.latOffered)
			}
			fmt.Fprintf(log, "round %d %-42s %9.0f rec/s in %-7s cpu %6.2f s/M deliveries read %5.0f B/rec rss %5.0f MiB%s\n",
				round, ct, m.recordsPerSec(), m.window.Round(time.Millisecond), m.cpuPerMillion(), m.readPerRecord,
				mib(uint64(m.peakRSS)), lat)
		}
	}
	pairs := map[contender][]measurement{}
	for i, ms := range runs {
		rep.sums = append(rep.sums, summarize(ms))
		pairs[cs[i]] = slices.Clone(ms)
	}
	// More pairs behind the target ratios, throughput runs only, back to
	// back and in alternating order, so that the machine's drift and
	// other work on it hit both sides alike.
	for round := cfg.count + 1; round <= cfg.ratioRounds; round++ {
		for _, r := range ratioDefs() {
			if len(pairs[r.num]) == 0 || len(pairs[r.den]) == 0 {
				continue
			}
			order := []contender{r.num, r.den}
			if round%2 == 0 {
				order = []contender{r.den, r.num}
			}
			for _, ct := range order {
				m := measurement{c: ct}
				if err := c.throughput(&m); err != nil {
					return nil, fmt.Errorf("%s: ratio round %d: %w", ct, round, err)
				}
				pairs[ct] = append(pairs[ct], m)
				fmt.Fprintf(log, "ratio round %d %-42s %9.0f rec/s in %s\n", round, ct, m.recordsPerSec(), m.window.Round(time.Millisecond))
			}
		}
	}
	rep.ratios = computeRatios(pairs)
	rep.loadAfter = loadavg()
	return rep, nil
}

// name is a fresh topic or group name.
func (c *comparer) name(what string) string {
	c.seq++
	return fmt.Sprintf("%s-%s-%d", c.prefix, what, c.seq)
}

// destinations makes ct's routes' destinations: fresh topics (deleted by
// cleanup) or the sink's URLs.
func (c *comparer) destinations(ct contender) (dests []string, cleanup func() error, err error) {
	switch ct.Transport {
	case transportKafka:
		for range ct.Routes {
			dests = append(dests, c.name("dest"))
		}
		if err := c.b.createTopics(c.cfg.partitions, dests...); err != nil {
			return nil, nil, err
		}
		return dests, func() error { return c.b.deleteTopics(dests...) }, nil
	case transportHTTP:
		for i := range ct.Routes {
			dests = append(dests, c.sink.url(i))
		}
	}
	return dests, func() error { return nil }, nil
}

func (c *comparer) spec(ct contender, source string, dests []string) childSpec {
	s := childSpec{Contender: ct, Brokers: c.b.addrs, Source: source, Group: c.name("group"), Dests: dests,
		HTTPWorkers: c.cfg.httpWorkers, Ordering: c.cfg.ordering}
	if ct.Kind == kindGroups { // the groups are the base name's, one per route
		for i := range ct.Routes {
			c.groups = append(c.groups, fmt.Sprintf("%s-r%d", s.Group, i))
		}
	} else {
		c.groups = append(c.groups, s.Group)
	}
	return s
}

// cleanUp runs f and says, without failing the run, when it fails.
func (c *comparer) cleanUp(f func() error) {
	if err := f(); err != nil {
		fmt.Fprintf(c.log, "compare: cleaning up: %v\n", err)
	}
}

// lifetime bounds a child: its start, the run and its stop.
func (c *comparer) lifetime() time.Duration {
	return c.cfg.joinTimeout + c.cfg.duration + c.cfg.latencyDuration + 2*time.Minute
}

func (c *comparer) measure(ct contender) (measurement, error) {
	m := measurement{c: ct}
	if err := c.throughput(&m); err != nil {
		return m, fmt.Errorf("throughput run: %w", err)
	}
	if ct.Transport != transportDiscard {
		if err := c.latency(&m); err != nil {
			return m, fmt.Errorf("latency run: %w", err)
		}
	}
	return m, nil
}

// waitFor polls count until it reaches n, failing when the child reports
// a failure (asked every half second) or timeout passes.
func waitFor(p *childProc, count func() (int64, error), n int64, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	for i := 1; ; i++ {
		got, err := count()
		if err != nil || got >= n {
			return got, err
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("%d of %d deliveries after %s", got, n, timeout)
		}
		if i%50 == 0 {
			if _, err := p.ask("mark"); err != nil {
				return got, err
			}
		}
		time.Sleep(pollEvery)
	}
}

// throughput runs ct on the backlog: from its first delivery until every
// record reached every route or cfg.duration passed.
func (c *comparer) throughput(m *measurement) (err error) {
	ct := m.c
	dests, cleanup, err := c.destinations(ct)
	if err != nil {
		return err
	}
	defer c.cleanUp(cleanup)
	p, err := startChildProc(c.spec(ct, c.source, dests), c.log, c.lifetime())
	if err != nil {
		return err
	}
	defer p.abort()
	var count func() (int64, error)
	interval := pollEvery
	switch ct.Transport {
	case transportKafka:
		count = func() (int64, error) { return c.b.endOffsets(dests) }
	case transportHTTP:
		run := c.sink.begin(nil)
		count = func() (int64, error) { return run.n.Load(), nil }
	default: // discard: only the contender knows
		count = func() (int64, error) {
			mk, err := p.ask("mark")
			return mk.Count, err
		}
		if ct.Kind == kindWorker {
			// The worker counts in its metrics registry, and gathering
			// it costs the worker's CPU: ask less often.
			interval = 5 * pollEvery
		}
	}
	if _, err := waitFor(p, count, 1, c.cfg.joinTimeout); err != nil {
		return fmt.Errorf("waiting for the first delivery: %w", err)
	}
	m0, err := p.ask("mark")
	if err != nil {
		return err
	}
	c0, err := count()
	if err != nil {
		return err
	}
	t0 := time.Now()
	target := int64(c.cfg.records * ct.perRecord())
	var c1 int64
	var t1 time.Time
	for {
		time.Sleep(interval)
		if c1, err = count(); err != nil {
			return err
		}
		t1 = time.Now()
		if c1 >= target {
			m.done = true
			break
		}
		if t1.Sub(t0) >= c.cfg.duration {
			break
		}
	}
	m1, err := p.ask("mark")
	if err != nil {
		return err
	}
	if m.peakRSS, err = p.stop(); err != nil {
		return err
	}
	m.deliveries, m.window = c1-c0, t1.Sub(t0)
	m.cpu, m.fetchBytes, m.readPerRecord = m1.CPU-m0.CPU, m1.FetchBytes-m0.FetchBytes, m1.ReadPerRecord
	switch {
	case c0 >= target:
		return fmt.Errorf("the backlog went through before the first measurement: raise -records")
	case m.deliveries <= 0:
		return fmt.Errorf("%d of %d deliveries, none in the %s window after the first", c1, target, m.window)
	}
	return nil
}

// warmRecords go through a contender before a latency run measures.
const warmRecords = 100

// latency runs ct on a fresh topic: once warmRecords went through, it
// offers cfg.latencyRate records/s for cfg.latencyDuration and measures
// each delivery's latency, from the record's handing to the producer to
// its arrival at the destination (the HTTP sink, or a consumer of the
// destination topics in the harness).
func (c *comparer) latency(m *measurement) (err error) {
	ct := m.c
	source := c.name("live")
	if err := c.b.createTopics(c.cfg.partitions, source); err != nil {
		return err
	}
	defer c.cleanUp(func() error { return c.b.deleteTopics(source) })
	dests, cleanup, err := c.destinations(ct)
	if err != nil {
		return err
	}
	defer c.cleanUp(cleanup)
	lat := &latencies{}
	var count func() (int64, error)
	if ct.Transport == transportHTTP {
		run := c.sink.begin(lat)
		count = func() (int64, error) { return run.n.Load(), nil }
	} else {
		ts, err := c.b.startTopicSink(dests, lat)
		if err != nil {
			return err
		}
		defer func() {
			ts.stop()
			err = errors.Join(err, ts.err)
		}()
		count = func() (int64, error) { return ts.n.Load(), nil }
	}
	p, err := startChildProc(c.spec(ct, source, dests), c.log, c.lifetime())
	if err != nil {
		return err
	}
	defer p.abort()
	per := int64(ct.perRecord())
	if err := c.b.producePaced(source, c.rs, warmRecords, 0, false); err != nil {
		return err
	}
	if _, err := waitFor(p, count, warmRecords*per, c.cfg.joinTimeout); err != nil {
		return fmt.Errorf("warming up: %w", err)
	}
	offered := int(c.cfg.latencyRate * c.cfg.latencyDuration.Seconds())
	if err := c.b.producePaced(source, c.rs, offered, c.cfg.latencyRate, true); err != nil {
		return err
	}
	// A contender that cannot keep up gets a few seconds more, then the
	// run reports what arrived.
	_, werr := waitFor(p, count, (warmRecords+int64(offered))*per, 5*time.Second+c.cfg.latencyDuration)
	if _, err := p.stop(); err != nil {
		return err
	}
	d := lat.sorted()
	m.latOffered, m.latDelivered = int64(offered)*per, int64(len(d))
	m.p50, m.p99 = quantile(d, 0.50), quantile(d, 0.99)
	if len(d) == 0 {
		return fmt.Errorf("no stamped record arrived: %w", werr)
	}
	return nil
}
