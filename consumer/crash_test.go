package consumer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/rs/zerolog"
)

// childEnv, when set, makes the test binary run one consumer instead of the
// tests (see runChild): a process a test can kill with SIGKILL.
const childEnv = "CONSUMER_TEST_CHILD"

// runChild consumes the topic in CHILD_TOPIC with group CHILD_GROUP from
// CHILD_BROKERS, pacing deliveries, and writes "delivered <topic>/<p>/<off>"
// on stdout for each record before acknowledging it, until it is killed.
func runChild() int {
	brokers := strings.Split(os.Getenv("CHILD_BROKERS"), ",")
	topic, group := os.Getenv("CHILD_TOPIC"), os.Getenv("CHILD_GROUP")
	var mu sync.Mutex
	route := fanout.RouteFunc{RouteName: "r", Fn: func(ctx context.Context, m fanout.Message) error {
		mu.Lock()
		_, err := fmt.Fprintf(os.Stdout, "delivered %s/%d/%d\n", m.Topic, m.Partition, m.Offset)
		mu.Unlock()
		if m.Offset%50 == 0 {
			time.Sleep(time.Millisecond)
		}
		return err
	}}
	cfg := testConfig(brokers, group)
	logger := zerolog.New(os.Stderr).Level(zerolog.ErrorLevel)
	cfg.Logger = &logger
	cfg.SessionTimeout = 6 * time.Second // the broker's minimum: the next member waits this long
	c, err := build(cfg, fanout.Options{}, fanout.ReceiverConfig{Topic: topic, MaxInflight: 200,
		Routes: []fanout.RouteConfig{{Route: route, Workers: 4, Buffer: 256}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := c.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a consumer in a process of its own.
type child struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	seen map[string]int
	eof  chan struct{}
}

func startChild(t *testing.T, addrs []string, topic, group string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "CHILD_BROKERS="+strings.Join(addrs, ","), "CHILD_TOPIC="+topic, "CHILD_GROUP="+group)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, seen: map[string]int{}, eof: make(chan struct{})}
	go func() {
		defer close(ch.eof)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if k, ok := strings.CutPrefix(sc.Text(), "delivered "); ok {
				ch.mu.Lock()
				ch.seen[k]++
				ch.mu.Unlock()
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-ch.eof; _ = cmd.Wait() })
	return ch
}

func (ch *child) delivered() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return len(ch.seen)
}

// kill ends the process with SIGKILL (no drain, no commit, no leave) and
// waits until everything it wrote has been read.
func (ch *child) kill(t *testing.T) {
	t.Helper()
	if err := ch.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-ch.eof
	if err := ch.cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child exit: %v, want killed", err)
	}
}

// A worker killed with SIGKILL loses nothing: the next member resumes
// exactly at the last commit, so records before it are never redelivered
// and every record from it on is. The kill comes only after the group has
// committed something, so the check of what the commit covers is not
// vacuous.
func TestConsumer_crashLosesNothing(t *testing.T) {
	c := newCluster(t, 4, "events")
	addrs := c.ListenAddrs()
	const n = 5000
	produce(t, addrs, "events", n)
	first := startChild(t, addrs, "events", "g2")
	wait(t, guard, "mid-stream with commits", func() bool {
		if first.delivered() < 1500 {
			return false
		}
		offs, err := fetchGroupOffsets(addrs, "g2")
		if err != nil {
			t.Logf("fetch offsets: %v", err)
			return false
		}
		sum := int64(0)
		for _, off := range offs["events"] {
			sum += off
		}
		return sum > 0
	})
	first.kill(t)
	atCrash := groupOffsets(t, addrs, "g2")["events"]
	var committedBefore int64
	for _, off := range atCrash {
		committedBefore += off
	}
	if committedBefore == 0 || committedBefore >= n {
		t.Fatalf("committed %d of %d before the kill: the test proves nothing", committedBefore, n)
	}
	secondSeen := newSink("r")
	second := start(t, testConfig(addrs, "g2"), fanout.ReceiverConfig{Topic: "events", MaxInflight: 200, Routes: routesOf(secondSeen)})
	wait(t, guard, "all delivered after restart", func() bool {
		first.mu.Lock()
		defer first.mu.Unlock()
		union := map[string]bool{}
		for k := range first.seen {
			union[k] = true
		}
		for k := range secondSeen.Seen() {
			union[k] = true
		}
		return len(union) == n
	})
	first.mu.Lock()
	secondGot := secondSeen.Seen()
	dups := 0
	ends := endOffsets(t, addrs, "events")["events"]
	for p, end := range ends {
		for off := int64(0); off < end; off++ {
			k := fmt.Sprintf("events/%d/%d", p, off)
			_, inFirst := first.seen[k]
			_, inSecond := secondGot[k]
			switch {
			case off < atCrash[p] && !inFirst:
				t.Errorf("%s committed before the crash but never delivered", k)
			case off < atCrash[p] && inSecond:
				t.Errorf("%s redelivered although committed before the crash", k)
			case off >= atCrash[p] && !inSecond:
				t.Errorf("%s not delivered after the restart", k)
			}
			if inFirst && inSecond {
				dups++
			}
		}
	}
	first.mu.Unlock()
	t.Logf("committed %d before the kill; redelivered after it: %d records", committedBefore, dups)
	waitCommittedAtEnd(t, addrs, "g2", "events")
	if err := second.stop(t); err != nil {
		t.Fatal(err)
	}
}
