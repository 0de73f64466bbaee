package soak

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/receiver-fanout/fanout/internal/testkit"
)

// worker is one fanout process of the run.
type worker struct {
	id     int
	cmd    *exec.Cmd
	stderr testkit.LockedBuffer
	done   chan struct{} // closed when the process has exited

	mu     sync.Mutex // protects termAt
	termAt time.Time  // when SIGTERM was sent; zero if never
	exitAt time.Time
	code   int
	// maxRSS is the peak resident set, bytes: the largest VmHWM read
	// from /proc while it ran. (The kernel's rusage is no use here: a
	// child started by fork and exec inherits its parent's high-water
	// mark.)
	maxRSS atomic.Int64
}

func startWorker(bin string, id int, env []string, logf func(string, ...any)) (*worker, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	w := &worker{id: id, done: make(chan struct{})}
	w.cmd = exec.Command(bin, "run")
	w.cmd.Env = append(append(os.Environ(), env...), "FANOUT_HTTP_ADDR="+addr, "FANOUT_CLIENT_ID=soak-"+strconv.Itoa(id))
	w.cmd.Stderr = &w.stderr
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	logf("soak worker %d started (pid %d)", id, w.cmd.Process.Pid)
	exited := make(chan struct{})
	go func() {
		defer close(w.done)
		_ = w.cmd.Wait()
		close(exited)
		w.exitAt = time.Now()
		st := w.cmd.ProcessState
		w.code = st.ExitCode()
		logf("soak worker %d exited: %v", id, st)
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
func (w *worker) sampleRSS() {
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

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (w *worker) alive() bool {
	select {
	case <-w.done:
		return false
	default:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.termAt.IsZero()
}

func (w *worker) term() {
	w.sampleRSS()
	w.mu.Lock()
	if w.termAt.IsZero() {
		w.termAt = time.Now()
	}
	w.mu.Unlock()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
}

// kill ends the process without a drain, a commit or a leave.
func (w *worker) kill() {
	w.sampleRSS()
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

func (w *worker) wait() { <-w.done }
