package consumer

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
)

// A partition assigned again must not inherit the pause of a previous

// ownership: the engine's partition is new and not paused, so no room

// signal would ever resume its fetching.

// A rebalance that moves a paused partition away and back while its held

// records are being refused again must leave it flowing: stress the race

// between revokes and re-offers many times over.

// Records of aborted transactions never reach a route, and a partition

// whose log ends in a transaction marker commits up to its end offset.

// A revoke whose wait for a stuck delivery uses up RevokeTimeout still

// commits what completed before the stuck record: the final commit has a

// budget of its own.

// The drain fits ShutdownTimeout plus a second even when a delivery

// ignores its context, and what completes during the drain is committed as

// it completes, not only at the end.

func TestConsumer_drainFitsItsBudget(t *testing.T) {
	c := newCluster(t, 2, "drain")
	addrs := c.ListenAddrs()
	produceTo(t, addrs, "drain", 0, 5)
	produceTo(t, addrs, "drain", 1, 200)
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	var stopping atomic.Bool
	s := newSink("r")
	s.Fn = func(ctx context.Context, m fanout.Message) error {
		if m.Partition == 0 && m.Offset == 2 {
			<-release // ignores ctx for ever
		}
		if m.Partition == 1 && stopping.Load() {
			time.Sleep(2 * time.Millisecond) // completes during the drain
		}
		return nil
	}
	commits := &commitTimes{}
	cfg := testConfig(addrs, "drain-g")
	cfg.ShutdownTimeout = 2 * time.Second
	cfg.CommitInterval = 100 * time.Millisecond
	cfg.Observer = commits
	gate := make(chan struct{})
	gated := fanout.RouteFunc{RouteName: "g", Fn: func(ctx context.Context, m fanout.Message) error {
		if m.Partition == 1 && m.Offset >= 20 {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return s.Deliver(ctx, m)
	}}
	run := start(t, cfg, fanout.ReceiverConfig{Topic: "drain", Routes: []fanout.RouteConfig{{Route: gated, Workers: 2, Buffer: 512}}})
	wait(t, guard, "stuck and waiting", func() bool { return s.Distinct("drain") >= 22 })
	stopping.Store(true)
	begin := time.Now()
	close(gate)
	err := run.stop(t)
	took := time.Since(begin)
	if took > cfg.ShutdownTimeout+time.Second {
		t.Fatalf("shutdown took %s, budget %s + 1s", took, cfg.ShutdownTimeout)
	}
	if !errors.Is(err, ErrDrainCutShort) {
		t.Fatalf("Run = %v, want ErrDrainCutShort (a delivery never returned)", err)
	}
	during := commits.between("drain", 1, begin, begin.Add(took))
	if len(during) < 2 {
		t.Fatalf("partition 1 committed %d times during the drain (%v), want commits as work completed", len(during), during)
	}
	if got := committedOffset(t, addrs, "drain-g", "drain", 1); got != 200 {
		t.Fatalf("partition 1 committed %d after the drain, want 200", got)
	}
	if got := committedOffset(t, addrs, "drain-g", "drain", 0); got != 2 {
		t.Fatalf("partition 0 committed %d, want 2 (the stuck record and after are redelivered)", got)
	}
	t.Logf("shutdown with a stuck delivery took %s (budget %s)", took.Round(time.Millisecond), cfg.ShutdownTimeout)
}

// commitTimes records when each successful commit happened.

type commitTimes struct {
	mu sync.Mutex
	at []commitAt
}

type commitAt struct {
	topic string
	p     int32
	off   int64
	when  time.Time
}

func (c *commitTimes) Consumed(string, int) {}

func (c *commitTimes) Rebalanced(string, string, int) {}

func (c *commitTimes) Ready(bool) {}

func (c *commitTimes) Committed(topic string, p int32, off int64, err error) {
	if err != nil {
		return
	}
	c.mu.Lock()
	c.at = append(c.at, commitAt{topic, p, off, time.Now()})
	c.mu.Unlock()
}

func (c *commitTimes) between(topic string, p int32, from, to time.Time) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int64
	for _, a := range c.at {
		if a.topic == topic && a.p == p && !a.when.Before(from) && !a.when.After(to) {
			out = append(out, a.off)
		}
	}
	return out
}

// silentBroker accepts connections and never answers: a broker that is

// slow to come up, and a consumer that never joins its group.

func silentBroker(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() { defer conns.Done(); _, _ = io.Copy(io.Discard, conn) }()
		}
	}()
	t.Cleanup(func() { _ = l.Close(); conns.Wait() })
	return l.Addr().String()
}

// A signal before the group was ever reached is a clean stop.

func TestConsumer_cancelBeforeJoiningIsClean(t *testing.T) {
	cfg := testConfig([]string{silentBroker(t)}, "nobody")
	c, err := build(cfg, fanout.Options{}, fanout.ReceiverConfig{Topic: "t", Routes: routesOf(newSink("r"))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after a cancel before joining = %v, want nil", err)
		}
	case <-time.After(guard):
		t.Fatal("Run did not return")
	}
}

// Readiness follows membership: a member that lost its partitions is not

// ready until it has rejoined.

// Past HeldMaxBytes a refused partition is rewound instead of held: its

// records are fetched again when it may flow, and every one is delivered,

// in offset order per partition.
