// Command benchmarks measures the fanout engine against the four designs of
// the original proposal (see docs/benchmarks.md and /DESIGN.md "The
// problem"), in one harness: a receiver poll loop that offers records at a
// fixed rate to a fast route and a route 50 times slower, first with the
// slow route keeping up (normal), then with it stalled until the run ends.
// It writes the results as a markdown table.
//
//	go run ./benchmarks [-duration 2s] [-count 3] [-out docs/benchmarks.md]
//
// Other sections of the output file (the dispatch and consumer benchmarks)
// are kept as they are.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
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

func realMain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchmarks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	var out, designList, workloadList string
	var heapLimitMiB uint64
	fs.DurationVar(&cfg.duration, "duration", 2*time.Second, "run time of each design under each workload, per round")
	fs.IntVar(&cfg.count, "count", 3, "rounds: each row is the median of this many runs")
	fs.StringVar(&out, "out", "docs/benchmarks.md", "markdown file to write (its other sections are kept); empty: stdout only")
	fs.Float64Var(&cfg.rate, "rate", 5000, "records offered per second")
	fs.DurationVar(&cfg.fastWork, "fast", 20*time.Microsecond, "the fast route's work per record (a busy wait)")
	fs.IntVar(&cfg.slowFactor, "slow-factor", 50, "the slow route takes this many times -fast per record (a sleep)")
	fs.IntVar(&cfg.payload, "payload", 1024, "bytes per record")
	fs.Uint64Var(&heapLimitMiB, "heap-limit-mib", 1024, "stop a run when heap + goroutine stacks exceed this")
	fs.StringVar(&designList, "designs", "1,2,3,4,5", "designs to run: 1-4 the proposal's, 5 the engine")
	fs.StringVar(&workloadList, "workloads", "normal,stall", "workloads to run")
	fs.BoolVar(&cfg.isolate, "isolate", true, "run each design in a fresh process, so runs cannot skew each other's peaks")
	child := fs.String("child", "", "internal: run one `design/workload` and print its result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.duration <= 0 || cfg.count < 1 || cfg.rate <= 0 || cfg.fastWork <= 0 || cfg.slowFactor < 1 || cfg.payload < 1 || heapLimitMiB == 0 {
		return fmt.Errorf("-duration, -count, -rate, -fast, -slow-factor, -payload and -heap-limit-mib must be positive")
	}
	cfg.heapLimit = heapLimitMiB << 20
	if *child != "" {
		return runChild(cfg, *child, stdout)
	}
	for _, f := range strings.Split(designList, ",") {
		id, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || id < 1 || id > len(designs) {
			return fmt.Errorf("-designs: %q is not a design 1-%d", f, len(designs))
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
			return fmt.Errorf("-workloads: unknown workload %q (normal, stall)", f)
		}
	}

	rep, err := run(cfg, stderr)
	if err != nil {
		return err
	}
	rep.command = strings.TrimSpace("go run ./benchmarks " + strings.Join(args, " "))
	fmt.Fprintln(stdout, renderTable(rep))
	if out == "" {
		return nil
	}
	old, err := os.ReadFile(out)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.WriteFile(out, []byte(render(rep, string(old))), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "wrote", out)
	return nil
}
