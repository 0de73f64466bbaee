package soak

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
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
	maxRSS int64 // peak resident set, bytes (from the kernel's rusage)
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
	go func() {
		defer close(w.done)
		_ = w.cmd.Wait()
		w.exitAt = time.Now()
		st := w.cmd.ProcessState
		w.code = st.ExitCode()
		if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
			w.maxRSS = ru.Maxrss << 10 // kilobytes on Linux
		}
		logf("soak worker %d exited: %v", id, st)
	}()
	return w, nil
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
	w.mu.Lock()
	if w.termAt.IsZero() {
		w.termAt = time.Now()
	}
	w.mu.Unlock()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
}

// kill ends the process without a drain, a commit or a leave.
func (w *worker) kill() {
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

func (w *worker) wait() { <-w.done }
