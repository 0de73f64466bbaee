package main

import (
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseArgs_compareDefaultsAndLists(t *testing.T) {
	o, err := parseArgs(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cs := o.compare.contenders()
	// kafka and http: 3 route counts × 3 kinds; discard: worker and bare.
	if len(cs) != 20 {
		t.Fatalf("%d default contenders, want 20: %v", len(cs), cs)
	}
	for _, c := range cs {
		if err := c.validate(); err != nil {
			t.Errorf("default contender %v: %v", c, err)
		}
	}
	if cs[0] != (contender{kindWorker, transportKafka, 1}) || cs[19] != (contender{kindPlain, transportDiscard, 0}) {
		t.Errorf("order: first %v, last %v", cs[0], cs[19])
	}
	if len(o.compare.brokers) != 0 || o.compare.records != 2_000_000 || o.compare.httpWorkers != 64 {
		t.Errorf("defaults: %+v", o.compare)
	}

	o, err = parseArgs([]string{"-brokers", "a:9092, b:9092", "-routes", "3,3,1", "-contenders", "plain", "-transports", "http", "-sections", "compare"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.compare.brokers, " "); got != "a:9092 b:9092" {
		t.Errorf("brokers %q", got)
	}
	want := []contender{{kindPlain, transportHTTP, 3}, {kindPlain, transportHTTP, 1}}
	if got := o.compare.contenders(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("contenders %v, want %v", got, want)
	}
	if len(o.sections) != 1 || o.sections[0] != secCompare {
		t.Errorf("sections %v", o.sections)
	}
}

func TestContender_validateAndNames(t *testing.T) {
	for _, tc := range []struct {
		c    contender
		ok   bool
		name string
	}{
		{contender{kindWorker, transportKafka, 3}, true, "fanout worker, 3 kafka routes"},
		{contender{kindGroups, transportHTTP, 1}, true, "group per route, 1 http route"},
		{contender{kindPlain, transportKafka, 10}, true, "franz-go pipeline, 10 kafka routes"},
		{contender{kindPlain, transportHTTP, 1}, true, "franz-go + posters, 1 http route"},
		{contender{kindPlain, transportDiscard, 0}, true, "bare franz-go consumer"},
		{contender{kindWorker, transportDiscard, 3}, true, "fanout worker, 3 discard routes"},
		{contender{kindGroups, transportDiscard, 3}, false, ""},
		{contender{kindPlain, transportDiscard, 2}, false, ""},
		{contender{kindWorker, transportKafka, 0}, false, ""},
		{contender{"mine", transportKafka, 1}, false, ""},
		{contender{kindWorker, "grpc", 1}, false, ""},
	} {
		err := tc.c.validate()
		if (err == nil) != tc.ok {
			t.Errorf("%#v: validate() = %v, want ok %v", tc.c, err, tc.ok)
		}
		if tc.ok && tc.c.String() != tc.name {
			t.Errorf("%#v: name %q, want %q", tc.c, tc.c.String(), tc.name)
		}
	}
}

func TestSummarize_mediansAndPeaks(t *testing.T) {
	c := contender{kindWorker, transportKafka, 2}
	ms := []measurement{
		{c: c, deliveries: 2000, window: time.Second, cpu: 2 * time.Second, readPerRecord: 100, peakRSS: 10 << 20, done: true, p99: 3 * time.Millisecond, latDelivered: 10, latOffered: 10},
		{c: c, deliveries: 6000, window: time.Second, cpu: 3 * time.Second, readPerRecord: 120, peakRSS: 30 << 20, done: false, p99: 9 * time.Millisecond, latDelivered: 8, latOffered: 10},
		{c: c, deliveries: 4000, window: 2 * time.Second, cpu: 2 * time.Second, readPerRecord: 110, peakRSS: 20 << 20, done: true, p99: 5 * time.Millisecond, latDelivered: 9, latOffered: 10},
	}
	s := summarize(ms)
	// records/s: 1000, 3000, 1000 → 1000; CPU s per M deliveries: 1000, 500, 500 → 500.
	if s.recordsPerSec != 1000 || s.cpuPerMill != 500 || s.readPerRecord != 110 {
		t.Errorf("medians: %+v", s)
	}
	if s.p99 != 5*time.Millisecond || s.latDelivered != 9 || s.peakRSS != 30<<20 || s.allDone || s.runs != 3 || !s.hasLatency {
		t.Errorf("summary: %+v", s)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of an even count: %v", got)
	}
}

func TestComputeRatios_pairsRunsInOrder(t *testing.T) {
	run := func(c contender, perSec ...float64) []measurement {
		var ms []measurement
		for _, v := range perSec {
			ms = append(ms, measurement{c: c, deliveries: int64(v) * int64(c.perRecord()), window: time.Second})
		}
		return ms
	}
	wk, pk := contender{kindWorker, transportKafka, 1}, contender{kindPlain, transportKafka, 1}
	wd, bd := contender{kindWorker, transportDiscard, 3}, contender{kindPlain, transportDiscard, 0}
	runs := map[contender][]measurement{
		wk: run(wk, 450, 100, 900),
		pk: run(pk, 500, 1000, 1000, 7), // the fourth has no partner
		wd: run(wd, 100),
		bd: run(bd, 400),
		// http: the worker's 1-route runs are missing
		{kindWorker, transportHTTP, 3}: run(contender{kindWorker, transportHTTP, 3}, 100),
		{kindPlain, transportHTTP, 1}:  run(contender{kindPlain, transportHTTP, 1}, 100),
	}
	rs := computeRatios(runs)
	if len(rs) != 3 {
		t.Fatalf("%d ratios", len(rs))
	}
	// Pairs 450/500, 100/1000, 900/1000: 0.9, 0.1, 0.9.
	if k := rs[0]; len(k.samples) != 3 || k.value != 0.9 || k.lo != 0.1 || k.hi != 0.9 || !k.met() || k.numRate != 450 || k.denRate != 1000 {
		t.Errorf("kafka: %+v", k)
	}
	if d := rs[1]; d.value != 0.25 || d.met() || d.numRate != 100 {
		t.Errorf("discard (the worker's records/s are deliveries over 3 routes): %+v", d)
	}
	if h := rs[2]; h.value != 0 || h.met() || len(h.samples) != 0 {
		t.Errorf("http, worker's 1-route runs missing: %+v", h)
	}
	md := renderRatios(&compareReport{ratios: rs})
	for _, want := range []string{
		"| **0.90** | 3, 0.10–0.90 | 450 / 1000 | ≥ 0.90 | **met** |",
		"| **0.25** | 1, 0.25–0.25 | 100 / 400 | ≥ 0.60 | **not met** |",
		"| not measured | | | ≥ 0.95 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("ratios lack %q:\n%s", want, md)
		}
	}
}

func TestParseVmHWM(t *testing.T) {
	status := "Name:\tbenchmarks\nVmPeak:\t  900000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t  1000 kB\n"
	if got := parseVmHWM(status); got != 12345<<10 {
		t.Errorf("VmHWM %d", got)
	}
	if got := parseVmHWM("VmRSS: 1 kB\n"); got != 0 {
		t.Errorf("no VmHWM: %d", got)
	}
	if peakRSSSelf() <= 0 {
		t.Error("this process has no peak RSS (Linux /proc/self/status)")
	}
}

func TestRender_keepsSectionsNotRun(t *testing.T) {
	old := "# Benchmarks\n\n" + sectionCompare + "\n\nold compare\n\n" + sectionDesigns + "\n\nold designs\n\n## Extra\n\nkept\n"
	md := render(old, map[string]string{sectionDesigns: "new designs\n"})
	for _, want := range []string{sectionCompare + "\n\nold compare\n", sectionDesigns + "\n\nnew designs\n", "## Extra\n\nkept\n", sectionDispatch + "\n\n" + placeholders[sectionDispatch]} {
		if !strings.Contains(md, want) {
			t.Errorf("lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "old designs") || strings.Index(md, sectionCompare) > strings.Index(md, sectionDesigns) {
		t.Errorf("sections wrong:\n%s", md)
	}
}

func TestWriteCharts(t *testing.T) {
	rep := &compareReport{
		cfg:     compareConfig{records: 1000, valueBytes: 100, partitions: 8, latencyRate: 100},
		broker:  "kfake",
		started: time.Now(),
		command: "go run ./benchmarks -records 1000",
	}
	for _, n := range []int{1, 3} {
		for i, k := range allKinds {
			rep.sums = append(rep.sums,
				summary{c: contender{k, transportKafka, n}, recordsPerSec: float64(1000 * (i + 1)), cpuPerMill: 2, readPerRecord: 115 * float64(n), p99: time.Millisecond, latDelivered: 1, hasLatency: true, peakRSS: 50 << 20},
				summary{c: contender{k, transportHTTP, n}, recordsPerSec: float64(100 * (i + 1)), cpuPerMill: 30, readPerRecord: 115, p99: 2 * time.Millisecond, latDelivered: 1, hasLatency: true, peakRSS: 60 << 20})
		}
	}
	rep.sums = append(rep.sums,
		summary{c: contender{kindWorker, transportDiscard, 3}, recordsPerSec: 3e5, cpuPerMill: 1, readPerRecord: 115, peakRSS: 40 << 20},
		summary{c: contender{kindPlain, transportDiscard, 0}, recordsPerSec: 1e6, cpuPerMill: 0.8, readPerRecord: 115, peakRSS: 30 << 20})
	md := t.TempDir()
	dir := filepath.Join(md, "docs")
	files, err := writeCharts(rep, dir, md)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(charts) {
		t.Fatalf("files %v, want %d", files, len(charts))
	}
	for i, f := range files {
		if f != "docs/bench-"+charts[i].file {
			t.Errorf("path %q is not relative to the markdown's folder", f)
		}
		fh, err := os.Open(filepath.Join(md, f))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(fh)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		// Three columns (kafka, http, discard) of 300 pt at 110 dpi.
		if w := img.Bounds().Dx(); w < 3*300*110/72-2 {
			t.Errorf("%s: %d px wide, want three panels", f, w)
		}
	}
	rep.cfg.brokers = []string{"b:9092"}
	files, err = writeCharts(rep, dir, md)
	if err != nil || len(files) != len(charts) || files[0] != "docs/bench-broker-"+charts[0].file {
		t.Errorf("a real broker's charts: %v, %v", files, err)
	}
	if _, err := writeCharts(&compareReport{}, dir, md); err == nil {
		t.Error("charts of nothing: no error")
	}
}

// A short comparison on kfake, end to end: the backlog, child processes
// for the worker and the plain programs, the ratios, the table and the
// charts. The throughput window is a second: under -race on two shared
// cores a contender can stand still for a few hundred milliseconds.
func TestCompare_shortRunOnKfake(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "benchmarks.md")
	args := []string{"-sections", "compare", "-records", "200000", "-run-time", "1s", "-latency-time", "300ms", "-latency-rate", "200",
		"-routes", "1", "-contenders", "worker,plain", "-ratio-rounds", "2", "-transports", "kafka,discard", "-partitions", "4", "-out", out, "-charts", dir}
	var stdout strings.Builder
	md := runToFile(t, args, out, &stdout)
	for _, want := range []string{
		sectionCompare + "\n", "go run ./benchmarks " + strings.Join(args, " "), "Machine: nproc ",
		"| kafka route / franz-go pipeline, 1 route | **", "| 3 discard routes / bare franz-go consumer | **",
		"| http route / net/http posters of the same concurrency, 1 route | not measured |", "| 2, ",
		"](bench-throughput.png)\n", sectionDesigns + "\n\n" + placeholders[sectionDesigns],
		sectionBroker + "\n\n" + placeholders[sectionBroker],
	} {
		if !strings.Contains(md, want) {
			t.Errorf("output lacks %q:\n%s", want, md)
		}
	}
	rows := map[string]bool{}
	for _, line := range strings.Split(md, "\n") {
		cols := strings.Split(line, "|")
		if len(cols) != 12 || !strings.Contains(cols[2], "kafka") && !strings.Contains(cols[2], "discard") && strings.TrimSpace(cols[2]) != "none" {
			continue
		}
		name := strings.TrimSpace(cols[1]) + " / " + strings.TrimSpace(cols[2])
		rows[name] = true
		for i, col := range []int{3, 4, 5, 9} { // records/s, CPU, bytes read, RSS
			if v, err := strconv.ParseFloat(strings.TrimSpace(cols[col]), 64); err != nil || v <= 0 {
				t.Errorf("%s: column %d is %q, want > 0", name, i, cols[col])
			}
		}
		if strings.Contains(cols[2], "kafka") {
			if got := strings.TrimSpace(cols[8]); got != "60 / 60" {
				t.Errorf("%s: latency delivered / offered %q, want 60 / 60", name, got)
			}
		}
	}
	if len(rows) != 4 {
		t.Errorf("rows %v, want the worker and the pipeline (kafka), the worker and the bare consumer (discard)", rows)
	}
	for _, c := range charts {
		if _, err := os.Stat(filepath.Join(dir, chartFile(false, c))); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(stdout.String(), "| ratio of records/s, side by side |") {
		t.Errorf("stdout lacks the ratios:\n%s", stdout.String())
	}
}
