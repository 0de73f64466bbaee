package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		// Re-executed by runIsolated: be the program, not the tests.
		if err := realMain(os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "benchmarks:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// runToFile runs the program with args and returns the markdown file out
// that it wrote.
func runToFile(t *testing.T, args []string, out string, stdout io.Writer) string {
	t.Helper()
	if err := realMain(args, stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A very short run of design (1) and the engine must ingest, deliver,
// render the table and keep the sections other benchmarks own.
func TestHarness_shortRunRendersTable(t *testing.T) {
	out := filepath.Join(t.TempDir(), "benchmarks.md")
	const consumer = sectionConsumer + "\n\nnumbers of the consumer benchmark\n"
	if err := os.WriteFile(out, []byte("# Benchmarks\n\n"+sectionDesigns+"\n\nstale table\n\n"+consumer), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-sections", "designs", "-duration", "300ms", "-count", "1", "-rate", "1000", "-designs", "1,5", "-workloads", "normal", "-out", out}
	md := runToFile(t, args, out, io.Discard)
	for _, want := range []string{
		"# Benchmarks\n", sectionDesigns + "\n", "| design | workload | ingested/s |",
		"go run ./benchmarks " + strings.Join(args, " "), "Machine: nproc ",
		sectionDispatch + "\n", placeholders[sectionDispatch], consumer,
		sectionCompare + "\n\n" + placeholders[sectionCompare],
	} {
		if !strings.Contains(md, want) {
			t.Errorf("output lacks %q:\n%s", want, md)
		}
	}
	if !strings.HasPrefix(md, "# Benchmarks\n") || strings.Contains(md, "stale table") || strings.Count(md, sectionDesigns) != 1 {
		t.Errorf("the designs section was not replaced:\n%s", md)
	}
	rows := 0
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "| (") {
			continue
		}
		rows++
		cols := strings.Split(line, "|")
		name, ingested := strings.TrimSpace(cols[1]), strings.TrimSpace(cols[3])
		if n, err := strconv.ParseFloat(ingested, 64); err != nil || n <= 0 {
			t.Errorf("%s: ingested/s %q, want > 0", name, ingested)
		}
		delivered, _, _ := strings.Cut(strings.TrimSpace(cols[5]), " / ")
		if n, err := strconv.Atoi(delivered); err != nil || n <= 0 {
			t.Errorf("%s: fast delivered %q, want > 0", name, delivered)
		}
	}
	if rows != 2 {
		t.Errorf("table has %d rows, want 2 (designs 1 and 5, normal):\n%s", rows, md)
	}
}

func TestRealMain_rejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-designs", "7"},
		{"-workloads", "burst"},
		{"-duration", "0s"},
		{"extra"},
		{"-sections", "all"},
		{"-routes", "0"},
		{"-routes", "1,x"},
		{"-contenders", "worker,mine"},
		{"-transports", "grpc"},
		{"-transports", "discard", "-contenders", "groups"},
		{"-value-bytes", "7"},
		{"-records", "0"},
		{"-ordering", "random"},
		{"-latency-rate", "0"},
		{"-ratio-rounds", "0"},
		{"-compare-child", "{not json"},
	} {
		if err := realMain(append(args, "-out", ""), io.Discard, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
