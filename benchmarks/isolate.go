package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Each run happens in a fresh process (this program, re-executed with
// -child), so one design's leftovers cannot skew the next one's peaks: the
// Go runtime keeps every goroutine descriptor it ever made and sizes its
// heap goal from what is live, so after design (2) has leaked ten thousand
// goroutines every later run in the same process would show a larger heap.

// childEnv marks a child process; TestMain uses it to run the harness
// instead of the tests when the test binary is the one re-executed.
const childEnv = "FANOUT_BENCHMARKS_CHILD"

// childResult is a run's result on the child's stdout.
type childResult struct {
	Elapsed       time.Duration
	Ingested      int64
	FastDelivered int64
	FastP50       time.Duration
	FastP99       time.Duration
	SlowP50       time.Duration
	PeakGor       int
	PeakHeap      uint64
	PeakStacks    uint64
	HitLimit      bool
	Err           string
}

// runIsolated runs one design under one workload in a child process.
func runIsolated(spec designSpec, w workload, cfg config) result {
	res := result{design: spec, workload: w}
	exe, err := os.Executable()
	if err != nil {
		res.err = err
		return res
	}
	cmd := exec.Command(exe,
		"-child", fmt.Sprintf("%d/%s", spec.id, w.name),
		"-duration", cfg.duration.String(),
		"-rate", strconv.FormatFloat(cfg.rate, 'f', -1, 64),
		"-fast", cfg.fastWork.String(),
		"-slow-factor", strconv.Itoa(cfg.slowFactor),
		"-payload", strconv.Itoa(cfg.payload),
		"-heap-limit-mib", strconv.FormatUint(cfg.heapLimit>>20, 10),
		"-out", "",
	)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		res.err = fmt.Errorf("child process: %w", err)
		return res
	}
	var cr childResult
	if err := json.Unmarshal(stdout.Bytes(), &cr); err != nil {
		res.err = fmt.Errorf("child output %q: %w", stdout.String(), err)
		return res
	}
	res.elapsed, res.ingested, res.fastDelivered = cr.Elapsed, cr.Ingested, cr.FastDelivered
	res.fastP50, res.fastP99, res.slowP50 = cr.FastP50, cr.FastP99, cr.SlowP50
	res.peakGor, res.peakHeap, res.peakStacks, res.hitLimit = cr.PeakGor, cr.PeakHeap, cr.PeakStacks, cr.HitLimit
	if cr.Err != "" {
		res.err = errors.New(cr.Err)
	}
	return res
}

// runChild is the child's side: one run, its result as JSON on stdout.
func runChild(cfg config, which string, stdout io.Writer) error {
	idText, wname, _ := strings.Cut(which, "/")
	id, err := strconv.Atoi(idText)
	if err != nil || id < 1 || id > len(designs) {
		return fmt.Errorf("-child %q: want <design 1-%d>/<workload>", which, len(designs))
	}
	var w *workload
	for i := range workloads {
		if workloads[i].name == wname {
			w = &workloads[i]
		}
	}
	if w == nil {
		return fmt.Errorf("-child %q: unknown workload", which)
	}
	res := runOne(designs[id-1], *w, cfg)
	cr := childResult{
		Elapsed: res.elapsed, Ingested: res.ingested, FastDelivered: res.fastDelivered,
		FastP50: res.fastP50, FastP99: res.fastP99, SlowP50: res.slowP50,
		PeakGor: res.peakGor, PeakHeap: res.peakHeap, PeakStacks: res.peakStacks, HitLimit: res.hitLimit,
	}
	if res.err != nil {
		cr.Err = res.err.Error()
	}
	return json.NewEncoder(stdout).Encode(cr)
}
