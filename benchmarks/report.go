package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

const (
	title           = "# Benchmarks"
	sectionCompare  = "## This worker against the alternatives"
	sectionBroker   = "## This worker against the alternatives, on a real broker"
	sectionDesigns  = "## Engine vs the four naive designs"
	sectionDispatch = "## Dispatch cost"
	sectionConsumer = "## Consumer throughput vs bare franz-go"
)

// placeholders for sections not run yet, this program's or other
// benchmarks'.
var placeholders = map[string]string{
	sectionCompare:  "(run `go run ./benchmarks -sections compare`)\n",
	sectionBroker:   "(run `scripts/kafka-local.sh start`, then `go run ./benchmarks -sections compare -brokers 127.0.0.1:9092`)\n",
	sectionDesigns:  "(run `go run ./benchmarks -sections designs`)\n",
	sectionDispatch: "(run `go test -run '^$' -bench Dispatch -benchmem ./fanout/` and paste the output here)\n",
	sectionConsumer: "(filled by the consumer benchmark)\n",
}

// ownSections are the sections this program writes, in file order; they
// come first.
var ownSections = []string{sectionCompare, sectionBroker, sectionDesigns}

// render is the whole markdown file: this program's sections (fresh ones
// from fresh, the others as old had them), then every other section of
// old (the previous file) as it was, with placeholders for the sections
// other benchmarks fill.
func render(old string, fresh map[string]string) string {
	kept := sections(old)
	var b strings.Builder
	b.WriteString(title + "\n")
	write := func(h, body string) {
		b.WriteString("\n" + h + "\n\n")
		b.WriteString(strings.Trim(body, "\n") + "\n")
	}
	for _, h := range ownSections {
		body, ok := fresh[h]
		if !ok {
			if body, ok = kept.body[h]; !ok {
				body = placeholders[h]
			}
		}
		write(h, body)
	}
	for _, h := range []string{sectionDispatch, sectionConsumer} {
		if _, ok := kept.body[h]; !ok {
			kept.order = append(kept.order, h)
			kept.body[h] = placeholders[h]
		}
	}
	for _, h := range kept.order {
		if !slices.Contains(ownSections, h) {
			write(h, kept.body[h])
		}
	}
	return b.String()
}

type parsed struct {
	order []string
	body  map[string]string
}

// sections splits markdown at its "## " headings; text before the first
// one (the title) is dropped.
func sections(md string) parsed {
	p := parsed{body: map[string]string{}}
	cur := ""
	inFence := false
	for _, line := range strings.SplitAfter(md, "\n") {
		trimmed := strings.TrimRight(line, "\n")
		if strings.HasPrefix(trimmed, "```") {
			inFence = !inFence
		}
		if !inFence && strings.HasPrefix(trimmed, "## ") {
			cur = strings.TrimSpace(trimmed)
			if _, dup := p.body[cur]; !dup {
				p.order = append(p.order, cur)
			}
			p.body[cur] += ""
			continue
		}
		if cur != "" {
			p.body[cur] += line
		}
	}
	return p
}

func renderDesigns(rep *report) string {
	cfg, cal := rep.cfg, rep.cal
	var b strings.Builder
	fmt.Fprintf(&b, `One receiver, two routes. A poll loop offers %s records/s (%d-byte values, released
in 1 ms batches; a loop that falls behind catches up as fast as the design lets it)
and calls each design's `+"`next(event)`"+` for every record, as the proposal's receiver does.
The **fast** route busy-waits %s per record; the **slow** route sleeps %s (%d× the fast
one), which its workers can still keep up with. Under **stall** the slow route blocks until
the run ends. Each design runs %s per workload, in %d rounds (interleaved), %s; a row shows the
median of each rate, count and latency over the rounds, and the highest of each peak.

`, fmtCount(cfg.rate), cfg.payload, fmtDur(cfg.fastWork), fmtDur(cfg.slowWork()), cfg.slowFactor, cfg.duration, cfg.count, isolation(cfg))
	fmt.Fprintf(&b, `- (1) WaitGroup per event: next starts a goroutine per route and waits for all.
- (2) goroutine per route per event, nobody waits.
- (3) goroutine per route per event, at most %d at once per receiver (sync.Cond counter, as proposed).
- (4) one channel of %d jobs and %d workers per receiver; next queues one job per route
  (as many workers as (3)'s cap and the engine's slow route, so all three get the same concurrency).
- (5) this engine: `+"`fanout.New`"+`, one receiver, one partition (in-flight window: the default 10000);
  the fast route %d workers, the slow one %d, each with its own buffer of %d, ordering `+"`none`"+`; next offers the record and on `+"`ErrCongested`"+`
  waits for `+"`OnResume`"+` and offers it again, as the consumer does.
- (6) the same engine, the slow route with `+"`spill`"+` (after %s): once congested that long it
  detaches, and its records go to a parking route that acknowledges at once (standing in for
  the spill topic's producer; nothing replays it during the run).

`, semaphoreCap, poolChannel, poolWorkers, engineFastWork, engineSlowWork, engineBuffer, spillAfter)
	fmt.Fprintf(&b, `Columns: *ingested/s* counts the records next accepted (returned) per second; *fast route/s* the
fast route's completed records per second; *fast delivered / ingested* both counts over the
run; *fast p50/p99* the time from handing a record to next to the end of the fast route's work
on it (the p99 with its range over the runs); *peak goroutines*, *peak heap* (heap spans in use) and *peak stacks* (goroutine stacks)
are sampled every 2 ms with runtime/metrics. A run stops early when heap + stacks exceed
%.0f MiB.

`, mib(cfg.heapLimit))
	b.WriteString(renderTable(rep))
	fmt.Fprintf(&b, "\nReproduce (from the repository root):\n\n```sh\n%s\n```\n\n", rep.command)
	fmt.Fprintf(&b, "Machine: %s. Load average (1, 5, 15 min) before the runs %s, after %s: the cores are shared with other work, so latencies in particular are noisy.\n\n",
		machine(rep.started), rep.loadBefore, rep.loadAfter)
	fmt.Fprintf(&b, `Calibration on this machine (medians, idle process): `+"`time.Sleep(%s)`"+` takes %s, so the fast
route's work is a busy wait instead (`+"`spin(%s)`"+` takes %s); `+"`time.Sleep(%s)`"+` takes %s.`,
		cfg.fastWork, fmtDur(cal.sleepFast), cfg.fastWork, fmtDur(cal.spinFast), cfg.slowWork(), fmtDur(cal.sleepSlow))
	if slow := rep.slowService(); slow > 0 {
		fmt.Fprintf(&b, ` During the normal runs the slow route's sleep took %s (median), %.0f× the fast route's work.`,
			fmtDur(slow), float64(slow)/float64(max(cal.spinFast, 1)))
	}
	b.WriteString("\n\n")
	if c := conclusions(rep); len(c) > 0 {
		b.WriteString("Conclusions:\n\n")
		for _, line := range c {
			b.WriteString("- " + line + "\n")
		}
	}
	return b.String()
}

func isolation(cfg config) string {
	if cfg.isolate {
		return "each run in a fresh process"
	}
	return "all runs in one process (-isolate=false: later runs inherit earlier ones' heap)"
}

func renderTable(rep *report) string {
	var b strings.Builder
	b.WriteString("| design | workload | ingested/s | fast route/s | fast delivered / ingested | fast p50 | fast p99 | peak goroutines | peak heap MiB | peak stacks MiB | note |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range rep.results {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d / %d | %s | %s | %d | %.1f | %.1f | %s |\n",
			r.design.name, r.workload.name, fmtCount(r.ingestRate()), fmtCount(r.fastRate()),
			r.fastDelivered, r.ingested, fmtLat(r, r.fastP50), fmtP99(r),
			r.peakGor, mib(r.peakHeap), mib(r.peakStacks), strings.TrimSpace(noteOf(r, rep.cfg)))
	}
	return b.String()
}

func fmtCount(v float64) string { return fmt.Sprintf("%.0f", v) }

func fmtLat(r result, d time.Duration) string {
	if r.fastDelivered == 0 {
		return "–"
	}
	return fmtDur(d)
}

func fmtP99(r result) string {
	s := fmtLat(r, r.fastP99)
	if r.runs > 1 && r.fastDelivered > 0 {
		s += fmt.Sprintf(" (%s–%s)", fmtDur(r.p99Min), fmtDur(r.p99Max))
	}
	return s
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func machine(at time.Time) string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("nproc %d (GOMAXPROCS %d), %s%s, %s %s/%s, %s",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), cpu, kernel, runtime.Version(), runtime.GOOS, runtime.GOARCH,
		at.UTC().Format("2006-01-02 15:04 MST"))
}

// slowService is the slow route's median time per record over the normal
// runs of every design (0 when none ran).
func (rep *report) slowService() time.Duration {
	var v []time.Duration
	for _, r := range rep.results {
		if !r.workload.stall && r.slowP50 > 0 {
			v = append(v, r.slowP50)
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func (rep *report) get(id int, workload string) *result {
	for i := range rep.results {
		if r := &rep.results[i]; r.design.id == id && r.workload.name == workload {
			return r
		}
	}
	return nil
}

// conclusions states, from the numbers above, whether the engine meets the
// goals where the naive designs fail. Each line says so either way.
func conclusions(rep *report) []string {
	var out []string
	e, w := rep.get(5, "normal"), rep.get(1, "normal")
	if e != nil && w != nil {
		verdict := "The engine beats (1) on both"
		if !(e.ingestRate() > 1.2*w.ingestRate() && e.fastRate() > 1.2*w.fastRate()) {
			verdict = "In this run the engine does NOT clearly beat (1)"
		}
		out = append(out, fmt.Sprintf("**Ingestion, normal load.** %s: it ingested %s records/s (offered %s/s) "+
			"and its fast route completed %s/s, against %s/s and %s/s for (1), whose every next waits for the slow "+
			"route (%s per record in its run): %.1f× the ingestion.",
			verdict, fmtCount(e.ingestRate()), fmtCount(rep.cfg.rate), fmtCount(e.fastRate()),
			fmtCount(w.ingestRate()), fmtCount(w.fastRate()), fmtDur(w.slowP50), e.ingestRate()/max(w.ingestRate(), 1)))
	}
	if e != nil {
		var others []string
		hol := ""
		for id := 1; id <= 4; id++ {
			r := rep.get(id, "normal")
			if r == nil {
				continue
			}
			others = append(others, fmt.Sprintf("(%d) %s", id, fmtLat(*r, r.fastP99)))
			if id == 4 && r.fastP99 > 2*e.fastP99 {
				hol = fmt.Sprintf(" (4)'s fast jobs queue behind slow ones in the shared channel: its p99 is %.1f× the engine's.", float64(r.fastP99)/float64(max(e.fastP99, 1)))
			}
		}
		if hol == "" {
			hol = fmt.Sprintf(" At this load (2), (3) and (4) are within the run-to-run noise of the engine: (4)'s %d shared workers are enough that fast jobs rarely queue behind slow ones.", poolWorkers)
		}
		if len(others) > 0 {
			out = append(out, fmt.Sprintf("**Fast route latency, normal load.** Fast-route p99 from ingestion to the end of its work: "+
				"engine %s, %s.%s (1)'s fast route never waits, but (1) ingests late, which this column does not show.",
				fmtLat(*e, e.fastP99), strings.Join(others, ", "), hol))
		}
	}
	es, en, g2 := rep.get(5, "stall"), rep.get(5, "normal"), rep.get(2, "stall")
	if es != nil && g2 != nil {
		mem2 := g2.peakHeap + g2.peakStacks
		base := uint64(0)
		if g2n := rep.get(2, "normal"); g2n != nil {
			base = g2n.peakHeap + g2n.peakStacks
		}
		growth := (mib(mem2) - mib(base)) / g2.elapsed.Seconds()
		grow := fmt.Sprintf("after %.1f s it held %d goroutines, %.1f MiB of heap and %.1f MiB of stacks, growing about %.0f MiB/s with the backlog",
			g2.elapsed.Seconds(), g2.peakGor, mib(g2.peakHeap), mib(g2.peakStacks), growth)
		if g2.hitLimit {
			grow += fmt.Sprintf(" and hitting the %.0f MiB limit", mib(rep.cfg.heapLimit))
		} else if growth > 0 {
			grow += fmt.Sprintf(" (%.0f MiB after about %.0f s at this rate)", mib(rep.cfg.heapLimit), (mib(rep.cfg.heapLimit)-mib(mem2))/growth+g2.elapsed.Seconds())
		}
		engine := fmt.Sprintf("the engine peaked at %d goroutines, %.1f MiB of heap and %.1f MiB of stacks", es.peakGor, mib(es.peakHeap), mib(es.peakStacks))
		verdict := "The engine keeps memory flat where (2) grows"
		if en != nil {
			engine += fmt.Sprintf(" (normal load: %d, %.1f and %.1f)", en.peakGor, mib(en.peakHeap), mib(en.peakStacks))
			if float64(es.peakHeap+es.peakStacks) > 1.5*float64(en.peakHeap+en.peakStacks)+(4<<20) || es.peakGor > en.peakGor+5 {
				verdict = "In this run the engine's memory did NOT stay flat under the stall"
			}
		}
		out = append(out, fmt.Sprintf("**Memory, slow route stalled.** %s: with (2) %s; %s, bounded by its buffers, not by the backlog.",
			verdict, grow, engine))
	}
	s3, s4 := rep.get(3, "stall"), rep.get(4, "stall")
	if es != nil && (s3 != nil || s4 != nil) {
		var parts []string
		if s3 != nil {
			parts = append(parts, fmt.Sprintf("(3) ingested %d records and its fast route completed %d (%s/s over the run): after that all %d slots "+
				"belong to goroutines of the stalled route and next blocks", s3.ingested, s3.fastDelivered, fmtCount(s3.fastRate()), semaphoreCap))
		}
		if s4 != nil {
			parts = append(parts, fmt.Sprintf("(4) ingested %d records and its fast route completed only %d of them (%s/s): "+
				"its %d workers sit on the stalled route and the fast jobs wait behind them in the full channel",
				s4.ingested, s4.fastDelivered, fmtCount(s4.fastRate()), poolWorkers))
		}
		all := "every one of them"
		if es.fastDelivered < es.ingested {
			all = fmt.Sprintf("only %d of them", es.fastDelivered)
		}
		best := int64(0)
		for _, r := range []*result{s3, s4} {
			if r != nil {
				best = max(best, r.fastDelivered)
			}
		}
		out = append(out, fmt.Sprintf("**Fast route, slow route stalled.** %s. The engine accepted %d records (the stalled route's "+
			"buffer of %d plus its %d busy workers) and its fast route completed %s (p99 %s), %.0f× what the fast route got "+
			"from (3) or (4); then it paused the partition, which is what the consumer stops fetching on and operators are alerted by. "+
			"That is a buffer's worth, not a rate: once paused, the engine's fast route receives nothing more either, because a "+
			"partition whose offsets cannot commit past a stalled route pauses for every route, by design, so over a longer stall "+
			"all three fast-route rates fall to zero. What the engine adds is that nothing it accepted is held back from the fast "+
			"route, the stall costs the configured buffer and no more, and other receivers (not part of this run) keep flowing.",
			strings.Join(parts, "; "), es.ingested, engineBuffer, engineSlowWork, all, fmtLat(*es, es.fastP99),
			float64(es.fastDelivered)/float64(max(best, 1))))
	}
	if line := spillConclusion(rep); line != "" {
		out = append(out, line)
	}
	return out
}

// spillConclusion compares the fast route beside a stalled slow route with
// and without spill, and against the fast route beside a healthy one.
func spillConclusion(rep *report) string {
	sp, es, sn := rep.get(6, "stall"), rep.get(5, "stall"), rep.get(6, "normal")
	if sp == nil || es == nil {
		return ""
	}
	verdict := "With spill the fast route keeps its rate through the stall"
	if sp.fastRate() < 0.9*rep.cfg.rate {
		verdict = fmt.Sprintf("In this run the fast route did NOT keep the offered rate with spill (%.0f%% of it)", 100*sp.fastRate()/rep.cfg.rate)
	}
	line := fmt.Sprintf("**Fast route, slow route stalled, with spill.** %s: it completed %s records/s (%d records; offered %s/s) "+
		"against %s/s without spill (%d records, then paused), p99 %s against %s",
		verdict, fmtCount(sp.fastRate()), sp.fastDelivered, fmtCount(rep.cfg.rate), fmtCount(es.fastRate()), es.fastDelivered,
		fmtLat(*sp, sp.fastP99), fmtLat(*es, es.fastP99))
	if sn != nil {
		line += fmt.Sprintf(" (%s beside a healthy slow route, %.1f×)", fmtLat(*sn, sn.fastP99), float64(sp.fastP99)/float64(max(sn.fastP99, 1)))
	}
	return line + fmt.Sprintf(". The first %s of the stall are the wait before detaching, when the partition pauses as in (5); "+
		"its peak memory (%.1f MiB heap, %d goroutines) stays that of the buffers.", spillAfter, mib(sp.peakHeap), sp.peakGor)
}
