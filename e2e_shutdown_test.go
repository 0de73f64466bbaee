package main

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/internal/testkit"
	"github.com/twmb/franz-go/pkg/kfake"
)

// startWorker runs the binary with the given receivers file and extra
// environment; stdout goes to out (nil: discarded).
func startWorker(t *testing.T, bin, cfg string, out io.Writer, env ...string) (*exec.Cmd, *testkit.LockedBuffer, string, <-chan error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fanout.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "run")
	cmd.Env = append(append(os.Environ(), "FANOUT_CONFIG="+path, "FANOUT_HTTP_ADDR="+addr), env...)
	stderr := &testkit.LockedBuffer{}
	cmd.Stderr = stderr
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("worker stderr:\n%s", stderr.String())
		}
	})
	return cmd, stderr, "http://" + addr, exited
}

// gauge scrapes base/metrics and returns the value of the series of name
// whose labels include labels, and whether there was one.
func gauge(base, name string, labels map[string]string) (float64, bool) {
	families, err := testkit.Scrape(strings.TrimPrefix(base, "http://"))
	if err != nil {
		return 0, false
	}
	f := families[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// SIGTERM to exit fits FANOUT_SHUTDOWN_TIMEOUT plus one second whatever a
// route does: here a log route writes to a stdout nobody reads, so its
// workers block in a write that no context can interrupt. The exit is 0:
// the records it held are uncommitted and redelivered, which
// at-least-once allows.
func TestRun_drainFitsTheBudgetWithADeliveryThatIgnoresItsContext(t *testing.T) {
	bin := buildBinary(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addrs := cluster.ListenAddrs()
	produceOrders(t, addrs, 3000)
	// A pipe whose reader never reads: once its buffer is full every write
	// blocks.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	cmd, _, base, exited := startWorker(t, bin, "receivers:\n  - topic: orders\n    routes:\n      - {name: trace, type: log, workers: 2}\n      - {name: sink, type: discard}\n", w,
		"FANOUT_BROKERS="+strings.Join(addrs, ","), "FANOUT_GROUP=drain", "FANOUT_SHUTDOWN_TIMEOUT=3s", "FANOUT_COMMIT_INTERVAL=100ms")
	// Every worker of the log route is stuck in a write and records queue
	// behind them.
	waitFor(t, 60*time.Second, "the log route blocked on stdout", func() bool {
		busy, _ := gauge(base, "fanout_route_workers_busy", map[string]string{"route": "trace"})
		depth, _ := gauge(base, "fanout_route_queue_depth", map[string]string{"route": "trace"})
		return busy == 2 && depth > 0
	})
	time.Sleep(300 * time.Millisecond)
	if busy, _ := gauge(base, "fanout_route_workers_busy", map[string]string{"route": "trace"}); busy != 2 {
		t.Fatalf("log route workers busy %v, want both stuck", busy)
	}
	begin := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		took := time.Since(begin)
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
		if took > 4*time.Second {
			t.Fatalf("SIGTERM to exit took %s, budget 3s + 1s", took)
		}
		t.Logf("SIGTERM to exit with a blocked route: %s (budget 3s)", took.Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
}

// A signal before the worker reached the group (here the broker accepts
// connections and never answers) is a clean stop: exit 0, promptly.
func TestRun_signalBeforeJoiningExitsZero(t *testing.T) {
	bin := buildBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	cmd, stderr, _, exited := startWorker(t, bin, "receivers:\n  - topic: orders\n    routes:\n      - {name: sink, type: discard, dead_letter_topic: orders.dlq}\n", nil,
		"FANOUT_BROKERS="+l.Addr().String(), "FANOUT_SHUTDOWN_TIMEOUT=2s")
	waitFor(t, 30*time.Second, "started", func() bool { return strings.Contains(stderr.String(), "fanout starting") })
	time.Sleep(200 * time.Millisecond)
	begin := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after a signal before joining: %v", err)
		}
		if took := time.Since(begin); took > 3*time.Second {
			t.Fatalf("took %s", took)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit")
	}
}
