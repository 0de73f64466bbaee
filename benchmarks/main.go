// Command benchmarks measures the fanout worker for users deciding
// whether to run it, and the engine's design against the alternatives.
// It has two sections, both run by default; see docs/benchmarks.md.
//
// compare: this worker (worker.Worker, what `fanout run` runs) against what
// users would run instead, in one run, on the same records and the same
// broker (kfake in this process by default, -brokers for a real one):
// with kafka and http routes (1, 3 and 10), one franz-go consumer group
// per route, and the plain franz-go programs (the limit); plus three
// discard routes against a bare franz-go consumer. Each contender runs in
// a child process of its own; the program reports records/s, CPU seconds
// per million deliveries (the child's rusage), bytes read from the broker,
// p99 delivery latency and peak RSS, prints issue 11's three ratios and
// draws charts into docs/.
//
// designs: the engine against the four naive designs of the original
// proposal (the design's "The problem"), in one in-process harness.
//
//	go run ./benchmarks [-sections compare,designs] [-brokers host:port] [-out docs/benchmarks.md]
//
// Other sections of the output file (the dispatch and consumer benchmarks)
// are kept as they are.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := realMain(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchmarks:", err)
		os.Exit(1)
	}
}

const (
	secCompare = "compare"
	secDesigns = "designs"
)

// options are the parsed command line.
type options struct {
	sections []string
	designs  config
	compare  compareConfig
	out      string
	charts   string // directory; empty: no charts
	child    string // internal: a designs child
	cchild   string // internal: a compare child
}

func parseArgs(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("benchmarks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	cfg, cc := &o.designs, &o.compare
	var sectionList, designList, workloadList, brokerList, routeList, kindList, transportList string
	var heapLimitMiB uint64
	fs.StringVar(&sectionList, "sections", "compare,designs", "sections to run: compare (this worker against the alternatives), designs (the engine against the four naive designs)")
	fs.StringVar(&o.out, "out", "docs/benchmarks.md", "markdown file to write (its other sections are kept); empty: stdout only")
	fs.StringVar(&o.charts, "charts", "docs", "directory for the compare section's charts (PNG); empty: none")

	// compare
	fs.StringVar(&brokerList, "brokers", "", "compare: seed brokers of a real Kafka, comma-separated; empty: kfake in this process")
	fs.StringVar(&cc.brokerLabel, "broker-label", "", "compare: what -brokers is, for the report (e.g. \"Apache Kafka 4.4.0\")")
	fs.IntVar(&cc.records, "records", 2_000_000, "compare: records in the backlog every throughput run reads")
	fs.IntVar(&cc.valueBytes, "value-bytes", 100, "compare: bytes per record value (at least 8)")
	fs.IntVar(&cc.partitions, "partitions", 8, "compare: partitions of every topic")
	fs.IntVar(&cc.keys, "keys", 10000, "compare: distinct record keys")
	fs.DurationVar(&cc.duration, "run-time", 3*time.Second, "compare: most time a throughput run measures (it ends sooner when the backlog is through)")
	fs.Float64Var(&cc.latencyRate, "latency-rate", 1000, "compare: records/s offered in latency runs")
	fs.DurationVar(&cc.latencyDuration, "latency-time", 2*time.Second, "compare: how long a latency run offers records")
	fs.StringVar(&routeList, "routes", "1,3,10", "compare: route counts of the kafka and http contenders")
	fs.StringVar(&kindList, "contenders", "worker,groups,plain", "compare: worker (worker.Worker), groups (a consumer group per route), plain (the plain franz-go programs)")
	fs.StringVar(&transportList, "transports", "kafka,http,discard", "compare: kafka, http, discard (3 discard routes against a bare consumer)")
	fs.IntVar(&cc.httpWorkers, "http-workers", 64, "compare: workers of each http route, and posters of the plain programs per route")
	fs.StringVar(&cc.ordering, "ordering", "", "compare: ordering of the worker's routes (key, partition, none); empty: the configuration's default")
	fs.IntVar(&cc.count, "compare-count", 1, "compare: rounds; each row is the median of this many runs")
	fs.IntVar(&cc.ratioRounds, "ratio-rounds", 5, "compare: side-by-side pairs of throughput runs behind each of issue 11's ratios (the rounds' pairs included)")
	fs.DurationVar(&cc.joinTimeout, "join-timeout", time.Minute, "compare: how long a contender may take to its first delivery")

	// designs
	fs.DurationVar(&cfg.duration, "duration", 2*time.Second, "designs: run time of each design under each workload, per round")
	fs.IntVar(&cfg.count, "count", 3, "designs: rounds; each row is the median of this many runs")
	fs.Float64Var(&cfg.rate, "rate", 5000, "designs: records offered per second")
	fs.DurationVar(&cfg.fastWork, "fast", 20*time.Microsecond, "designs: the fast route's work per record (a busy wait)")
	fs.IntVar(&cfg.slowFactor, "slow-factor", 50, "designs: the slow route takes this many times -fast per record (a sleep)")
	fs.IntVar(&cfg.payload, "payload", 1024, "designs: bytes per record")
	fs.Uint64Var(&heapLimitMiB, "heap-limit-mib", 1024, "designs: stop a run when heap + goroutine stacks exceed this")
	fs.StringVar(&designList, "designs", "1,2,3,4,5,6", "designs: designs to run, 1-4 the proposal's, 5 the engine, 6 the engine with its slow route spilling")
	fs.StringVar(&workloadList, "workloads", "normal,stall", "designs: workloads to run")
	fs.BoolVar(&cfg.isolate, "isolate", true, "designs: run each design in a fresh process, so runs cannot skew each other's peaks")

	fs.StringVar(&o.child, "child", "", "internal: run one `design/workload` and print its result as JSON")
	fs.StringVar(&o.cchild, "compare-child", "", "internal: run one compare contender, driven over stdin/stdout")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() != 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.duration <= 0 || cfg.count < 1 || cfg.rate <= 0 || cfg.fastWork <= 0 || cfg.slowFactor < 1 || cfg.payload < 1 || heapLimitMiB == 0 {
		return o, fmt.Errorf("-duration, -count, -rate, -fast, -slow-factor, -payload and -heap-limit-mib must be positive")
	}
	cfg.heapLimit = heapLimitMiB << 20
	var err error
	if o.sections, err = parseList("-sections", sectionList, []string{secCompare, secDesigns}); err != nil {
		return o, err
	}
	for _, f := range strings.Split(designList, ",") {
		id, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || id < 1 || id > len(designs) {
			return o, fmt.Errorf("-designs: %q is not a design 1-%d", f, len(designs))
		}
		cfg.designs = append(cfg.designs, id)
	}
	for _, f := range strings.Split(workloadList, ",") {
		found := false
		for _, w := range workloads {
			if w.name == strings.TrimSpace(f) {
				cfg.workloads = append(cfg.workloads, w)
				found = true
			}
		}
		if !found {
			return o, fmt.Errorf("-workloads: unknown workload %q (normal, stall)", f)
		}
	}

	if brokerList != "" {
		for _, b := range strings.Split(brokerList, ",") {
			if b = strings.TrimSpace(b); b != "" {
				cc.brokers = append(cc.brokers, b)
			}
		}
	}
	if cc.kinds, err = parseList("-contenders", kindList, allKinds); err != nil {
		return o, err
	}
	if cc.transports, err = parseList("-transports", transportList, allTransports); err != nil {
		return o, err
	}
	for _, f := range strings.Split(routeList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64 {
			return o, fmt.Errorf("-routes: %q is not a route count 1-64", f)
		}
		if !slices.Contains(cc.routes, n) {
			cc.routes = append(cc.routes, n)
		}
	}
	switch {
	case cc.records < 1:
		return o, fmt.Errorf("-records must be positive")
	case cc.valueBytes < 8:
		return o, fmt.Errorf("-value-bytes must be at least 8 (the first 8 carry the produce time)")
	case cc.partitions < 1 || cc.keys < 1 || cc.httpWorkers < 1 || cc.count < 1 || cc.ratioRounds < 1:
		return o, fmt.Errorf("-partitions, -keys, -http-workers, -compare-count and -ratio-rounds must be positive")
	case cc.duration <= 0 || cc.latencyDuration <= 0 || cc.latencyRate <= 0 || cc.joinTimeout <= 0:
		return o, fmt.Errorf("-run-time, -latency-time, -latency-rate and -join-timeout must be positive")
	case cc.ordering != "" && !slices.Contains([]string{"key", "partition", "none"}, cc.ordering):
		return o, fmt.Errorf("-ordering %q: want key, partition or none", cc.ordering)
	case len(cc.contenders()) == 0 && slices.Contains(o.sections, secCompare):
		return o, fmt.Errorf("-contenders %q and -transports %q select no contender", kindList, transportList)
	}
	return o, nil
}

// parseList splits a comma-separated flag value and checks every item is
// one of allowed.
func parseList(flagName, value string, allowed []string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(value, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(allowed, f) {
			return nil, fmt.Errorf("%s: unknown %q (want %s)", flagName, f, strings.Join(allowed, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

func realMain(args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	if o.child != "" {
		return runChild(o.designs, o.child, stdout)
	}
	if o.cchild != "" {
		return runCompareChild(o.cchild, os.Stdin, stdout)
	}
	command := strings.TrimSpace("go run ./benchmarks " + strings.Join(args, " "))
	fresh := map[string]string{}
	if slices.Contains(o.sections, secCompare) {
		rep, err := runCompare(o.compare, stderr)
		if err != nil {
			return fmt.Errorf("compare: %w", err)
		}
		rep.command = command
		if o.out != "" && o.charts != "" {
			if rep.charts, err = writeCharts(rep, o.charts, filepath.Dir(o.out)); err != nil {
				return fmt.Errorf("charts: %w", err)
			}
			for _, c := range rep.charts {
				fmt.Fprintln(stderr, "wrote", filepath.Join(filepath.Dir(o.out), c))
			}
		}
		fmt.Fprintln(stdout, renderRatios(rep))
		fmt.Fprintln(stdout, renderCompareTable(rep))
		fresh[rep.section()] = renderCompare(rep)
	}
	if slices.Contains(o.sections, secDesigns) {
		rep, err := run(o.designs, stderr)
		if err != nil {
			return err
		}
		rep.command = command
		fmt.Fprintln(stdout, renderTable(rep))
		fresh[sectionDesigns] = renderDesigns(rep)
	}
	if o.out == "" {
		return nil
	}
	old, err := os.ReadFile(o.out)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.WriteFile(o.out, []byte(render(string(old), fresh)), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "wrote", o.out)
	return nil
}
