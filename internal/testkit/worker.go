package testkit

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Worker is a fanout binary run as a child process (`fanout run`), with
// its own FANOUT_HTTP_ADDR, as the soak and spill checks run it.
type Worker struct {
	Name string
	Addr string // FANOUT_HTTP_ADDR: /metrics, /readyz

	cmd    *exec.Cmd
	stderr LockedBuffer
	done   chan struct{} // closed when the process has exited

	mu     sync.Mutex // protects termAt
	termAt time.Time  // when SIGTERM was sent; zero if never
	exitAt time.Time  // set before done is closed
	code   int        // likewise
	// maxRSS is the peak resident set, bytes: the largest VmHWM read from
	// /proc while it ran. (The kernel's rusage is no use here: a child
	// started by fork and exec inherits its parent's high-water mark.)
	maxRSS atomic.Int64
}

// StartWorker starts bin run with the environment plus env, a free
// FANOUT_HTTP_ADDR and FANOUT_CLIENT_ID=name. logf, if not nil, hears of
// its start and exit.
func StartWorker(bin, name string, env []string, logf func(string, ...any)) (*Worker, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	w := &Worker{Name: name, Addr: addr, done: make(chan struct{})}
	w.cmd = exec.Command(bin, "run")
	w.cmd.Env = append(append(os.Environ(), env...), "FANOUT_HTTP_ADDR="+addr, "FANOUT_CLIENT_ID="+name)
	w.cmd.Stderr = &w.stderr
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	logf("worker %s started (pid %d)", name, w.cmd.Process.Pid)
	exited := make(chan struct{})
	go func() {
		defer close(w.done)
		_ = w.cmd.Wait()
		close(exited)
		w.exitAt = time.Now()
		st := w.cmd.ProcessState
		w.code = st.ExitCode()
		logf("worker %s exited: %v", name, st)
	}()
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			w.sampleRSS()
			select {
			case <-exited:
				return
			case <-t.C:
			}
		}
	}()
	return w, nil
}

// sampleRSS reads the process's VmHWM, its resident high-water mark.
func (w *Worker) sampleRSS() {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(w.cmd.Process.Pid) + "/status")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil && kb<<10 > w.maxRSS.Load() {
				w.maxRSS.Store(kb << 10)
			}
		}
	}
}

// Alive reports whether the process runs and was not told to stop.
func (w *Worker) Alive() bool {
	select {
	case <-w.done:
		return false
	default:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.termAt.IsZero()
}

// Term sends SIGTERM (a graceful drain).
func (w *Worker) Term() {
	w.sampleRSS()
	w.mu.Lock()
	if w.termAt.IsZero() {
		w.termAt = time.Now()
	}
	w.mu.Unlock()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
}

// Kill ends the process without a drain, a commit or a leave, and waits.
func (w *Worker) Kill() {
	w.sampleRSS()
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

// Wait waits for the process to exit.
func (w *Worker) Wait() { <-w.done }

// Exited is closed once the process has exited.
func (w *Worker) Exited() <-chan struct{} { return w.done }

// Exit returns, after the process exited, its exit code and how long it
// took from SIGTERM (termed false: it was not sent one).
func (w *Worker) Exit() (code int, took time.Duration, termed bool) {
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.termAt.IsZero() {
		return w.code, 0, false
	}
	return w.code, w.exitAt.Sub(w.termAt), true
}

// PeakRSS is the largest VmHWM read, bytes; 0 if none was read.
func (w *Worker) PeakRSS() int64 { return w.maxRSS.Load() }

// Stderr is what the process wrote to standard error so far.
func (w *Worker) Stderr() string { return w.stderr.String() }

// Ready reports whether /readyz answers 200.
func (w *Worker) Ready() bool {
	resp, err := http.Get("http://" + w.Addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Metric returns the samples of a metric family from /metrics, keyed by
// their label text (`{route="a",topic="b"}`).
func (w *Worker) Metric(name string) (map[string]float64, error) {
	return ScrapeMetric(w.Addr, name)
}

// Scrape reads the /metrics of the worker serving addr.
func Scrape(addr string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// ScrapeMetric returns the samples of a gauge or counter family from the
// /metrics of the worker serving addr, keyed by their label text as
// exposed (`{route="a",topic="b"}`, empty without labels).
func ScrapeMetric(addr, name string) (map[string]float64, error) {
	families, err := Scrape(addr)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, m := range families[name].GetMetric() {
		var key strings.Builder
		for i, l := range m.GetLabel() {
			if i == 0 {
				key.WriteByte('{')
			} else {
				key.WriteByte(',')
			}
			fmt.Fprintf(&key, "%s=%q", l.GetName(), l.GetValue())
		}
		if len(m.GetLabel()) > 0 {
			key.WriteByte('}')
		}
		switch {
		case m.GetGauge() != nil:
			out[key.String()] = m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			out[key.String()] = m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			out[key.String()] = m.GetUntyped().GetValue()
		}
	}
	return out, nil
}
