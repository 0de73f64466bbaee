package main

import (
	"fmt"
	"strings"

	fconfig "github.com/receiver-fanout/fanout/config"
)

// renderRatios states issue 11's three ratios, measured side by side.
func renderRatios(rep *compareReport) string {
	var b strings.Builder
	b.WriteString("| ratio of records/s, side by side | median | pairs, range | median records/s | target | |\n| --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range rep.ratios {
		if r.value == 0 {
			fmt.Fprintf(&b, "| %s | not measured | | | ≥ %.2f | |\n", r.what, r.target)
			continue
		}
		verdict := "**met**"
		if !r.met() {
			verdict = "**not met**"
		}
		fmt.Fprintf(&b, "| %s | **%.2f** | %d, %.2f–%.2f | %s / %s | ≥ %.2f | %s |\n",
			r.what, r.value, len(r.samples), r.lo, r.hi, fmtCount(r.numRate), fmtCount(r.denRate), r.target, verdict)
	}
	return b.String()
}

func renderCompareTable(rep *compareReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| contender | routes | records/s | CPU s per M deliveries | broker bytes read per record | latency p50 | latency p99 | latency delivered / offered | peak RSS MiB | throughput window |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, s := range rep.sums {
		routes := fmt.Sprintf("%d %s", s.c.Routes, s.c.Transport)
		if s.c.Routes == 0 {
			routes = "none"
		}
		p50, p99, lat := "–", "–", "–"
		if s.hasLatency {
			lat = fmt.Sprintf("%d / %d", s.latDelivered, s.latOffered)
			if s.latDelivered > 0 {
				p50, p99 = fmtDur(s.p50), fmtDur(s.p99)
			}
		}
		window := fmt.Sprintf("%.2f s, backlog not through", s.window.Seconds())
		if s.allDone {
			window = fmt.Sprintf("%.2f s, whole backlog", s.window.Seconds())
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f | %.0f | %s | %s | %s | %.0f | %s |\n",
			s.c.name(), routes, fmtCount(s.recordsPerSec), s.cpuPerMill, s.readPerRecord, p50, p99, lat,
			mib(uint64(s.peakRSS)), window)
	}
	return b.String()
}

// renderCompare is the compare section of docs/benchmarks.md.
func renderCompare(rep *compareReport) string {
	cfg := rep.cfg
	var b strings.Builder
	ordering := "key (the default)"
	if cfg.ordering != "" {
		ordering = cfg.ordering
	}
	fmt.Fprintf(&b, `What a user deciding gets: this worker against what they would run instead,
in one run, on the same records, against the same broker: %s. Each contender
runs in a child process of its own, so its CPU and memory are its own; the harness, the HTTP
sink and (with kfake) the broker run in the parent process, on the same cores.

- **fanout worker**: `+"`worker.Worker`"+`, exactly what `+"`fanout run`"+` runs: one receiver with N routes
  at the configuration's defaults (%d workers and buffer %d, a kafka route %d and %d; max_inflight %d; ordering %s),
  except that each http route has %d workers. Its http routes send what docs/contract.md specifies
  (the X-Fanout-* headers, Idempotency-Key).
- **group per route**: N independent franz-go programs, each in its own consumer group reading
  the topic, producing each record asynchronously to its route's topic (franz-go's producer
  defaults: idempotent, acks=all, 10 ms linger) or POSTing its value with only a Content-Type
  from %d net/http posters, and committing a poll's offsets once all of it is delivered (polls
  overlap; a committer marks them in order).
- **franz-go pipeline**, **franz-go + posters**: one such program feeding all N routes (%d
  posters per route): the limit of a program that delivers and commits.
- **bare franz-go consumer**: polls, counts, commits; against the worker with 3 discard routes,
  it is the limit of any consumer.

Records: a backlog of %d records, %d-byte values (random printable bytes), %d keys, %d
partitions. **Throughput**: each contender reads the backlog from the start; its window runs from
its first delivery until every record reached every route or %s passed. *records/s* is deliveries
÷ routes per second (for the bare consumer, records polled); *CPU s per M deliveries* is the
child's user + system time in the window (getrusage) per million deliveries; *broker bytes read
per record* is, summed over the contender's consumers, each one's record-batch bytes fetched per
record fetched (franz-go's HookFetchBatchRead): what the broker sends per record of the topic;
*peak RSS* is the child's VmHWM. **Latency**: a second run on a fresh topic offers %.0f records/s
for %s, each stamped when the harness hands it to its producer, and measures its arrival at the
destination (the HTTP sink, or a consumer of the destination topics in the harness); a contender
that cannot keep up delivers fewer than offered in the time allowed. Each row is the median of %d
round(s); other work on the machine shows in the load average below.

`, rep.broker, fconfig.DefaultWorkers, fconfig.DefaultBuffer, fconfig.DefaultKafkaWorkers, fconfig.DefaultKafkaBuffer, fconfig.DefaultMaxInflight, ordering, cfg.httpWorkers, cfg.httpWorkers, cfg.httpWorkers,
		cfg.records, cfg.valueBytes, cfg.keys, cfg.partitions, cfg.duration,
		cfg.latencyRate, cfg.latencyDuration, cfg.count)
	b.WriteString("Issue 11's targets:\n\n")
	b.WriteString(renderRatios(rep))
	b.WriteString("\n")
	b.WriteString(renderCompareTable(rep))
	b.WriteString("\n")
	for i, c := range rep.charts {
		fmt.Fprintf(&b, "![%s](%s)\n\n", charts[i].title, c)
	}
	fmt.Fprintf(&b, "Reproduce (from the repository root; the backlog took %.1f s to write):\n\n```sh\n%s\n```\n\n",
		rep.backlogTook.Seconds(), rep.command)
	fmt.Fprintf(&b, "Machine: %s. Load average (1, 5, 15 min) before the runs %s, after %s: the cores are shared with other work.\n",
		machine(rep.started), rep.loadBefore, rep.loadAfter)
	if f := findings(rep); len(f) > 0 {
		b.WriteString("\nWhat the numbers say:\n\n")
		for _, line := range f {
			b.WriteString("- " + line + "\n")
		}
	}
	return b.String()
}

func (rep *compareReport) find(c contender) *summary {
	for i := range rep.sums {
		if rep.sums[i].c == c {
			return &rep.sums[i]
		}
	}
	return nil
}

// findings are sentences computed from the table, each true of this run.
func findings(rep *compareReport) []string {
	var out []string
	for _, r := range rep.ratios {
		if r.value == 0 {
			continue
		}
		verdict := "meets"
		if !r.met() {
			verdict = "does NOT meet"
		}
		out = append(out, fmt.Sprintf("%s: %.2f (median of %d side-by-side pairs, %.2f–%.2f), which %s the target of %.2f.",
			r.what, r.value, len(r.samples), r.lo, r.hi, verdict, r.target))
	}
	for _, t := range []string{transportKafka, transportHTTP} {
		n := 0
		for _, x := range rep.cfg.routes {
			n = max(n, x)
		}
		w, g := rep.find(contender{kindWorker, t, n}), rep.find(contender{kindGroups, t, n})
		if w == nil || g == nil || w.readPerRecord == 0 || w.cpuPerMill == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("With %d %s routes, one consumer group per route read %.1f× the broker bytes per record "+
			"of the worker (%.0f against %.0f) and used %.2f× its CPU per delivery; it forwarded %s records/s against the worker's %s.",
			n, t, g.readPerRecord/w.readPerRecord, g.readPerRecord, w.readPerRecord, g.cpuPerMill/w.cpuPerMill,
			fmtCount(g.recordsPerSec), fmtCount(w.recordsPerSec)))
	}
	return out
}
