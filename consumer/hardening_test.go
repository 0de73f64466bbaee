package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A partition assigned again must not inherit the pause of a previous
// ownership: the engine's partition is new and not paused, so no room
// signal would ever resume its fetching.
func TestConsumer_assignClearsStalePauses(t *testing.T) {
	// The client never reaches the group, so only this test calls the
	// callbacks.
	s := newSink("r")
	cons, err := build(testConfig([]string{silentBroker(t)}, "stale-g"), fanout.Options{}, fanout.ReceiverConfig{Topic: "stale", Routes: routesOf(s)})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.closeNow()
	k := tp{"stale", 0}
	cons.pausedMu.Lock()
	cons.paused[k] = pausedAt{offset: 3}
	cons.pausedMu.Unlock()
	cons.cl.PauseFetchPartitions(map[string][]int32{"stale": {0}})
	cons.onAssigned(context.Background(), cons.cl, map[string][]int32{"stale": {0}})
	cons.pausedMu.Lock()
	_, still := cons.paused[k]
	cons.pausedMu.Unlock()
	if still {
		t.Fatal("a freshly assigned partition keeps the pause of its previous ownership")
	}
	if p := cons.cl.PauseFetchPartitions(nil); len(p["stale"]) != 0 {
		t.Fatalf("fetching still paused after assign: %v", p)
	}
	recs := []*kgo.Record{{Topic: "stale", Partition: 0, Offset: 0, Value: []byte("a")}, {Topic: "stale", Partition: 0, Offset: 1, Value: []byte("b")}}
	cons.dispatch(kgo.FetchTopicPartition{Topic: "stale", FetchPartition: kgo.FetchPartition{Partition: 0, Records: recs}})
	wait(t, guard, "records offered and delivered", func() bool { return s.distinct("stale") == 2 })
}

// A rebalance that moves a paused partition away and back while its held
// records are being refused again must leave it flowing: stress the race
// between revokes and re-offers many times over.
func TestConsumer_revokeDuringReofferKeepsFlowing(t *testing.T) {
	c := newCluster(t, 2, "reoffer")
	addrs := c.ListenAddrs()
	produceTo(t, addrs, "reoffer", 0, 2000)
	produceTo(t, addrs, "reoffer", 1, 2000)
	var slow atomic.Bool
	slow.Store(true)
	first := newSink("r")
	first.fn = func(ctx context.Context, m fanout.Message) error {
		if slow.Load() {
			time.Sleep(2 * time.Millisecond) // drains a little at a time: re-offers are refused again and again
		}
		return nil
	}
	cfg := testConfig(addrs, "reoffer-g")
	cfg.RevokeTimeout = 100 * time.Millisecond
	m1 := start(t, cfg, fanout.ReceiverConfig{Topic: "reoffer", MaxInflight: 40,
		Routes: []fanout.RouteConfig{{Route: first, Workers: 1, Buffer: 8}}})
	wait(t, guard, "member 1 consuming", func() bool { return first.distinct("reoffer") > 50 })
	seconds := []*sink{}
	for range 3 {
		second := newSink("r")
		seconds = append(seconds, second)
		m2 := start(t, testConfig(addrs, "reoffer-g"), fanout.ReceiverConfig{Topic: "reoffer", Routes: routesOf(second)})
		wait(t, guard, "member 2 owns a partition", func() bool { return len(m2.c.Stats().Partitions) == 1 })
		if err := m2.stop(t); err != nil {
			t.Fatal(err)
		}
		wait(t, guard, "member 1 owns both again", func() bool { return len(m1.c.Stats().Partitions) == 2 })
	}
	slow.Store(false)
	produceTo(t, addrs, "reoffer", 0, 100)
	produceTo(t, addrs, "reoffer", 1, 100)
	waitCommittedAtEnd(t, addrs, "reoffer-g", "reoffer")
	union := map[string]bool{}
	for _, s := range append(seconds, first) {
		s.mu.Lock()
		for k := range s.seen {
			union[k] = true
		}
		s.mu.Unlock()
	}
	if len(union) != 4200 {
		t.Fatalf("delivered %d distinct records of 4200", len(union))
	}
	m1.c.pausedMu.Lock()
	paused := len(m1.c.paused)
	m1.c.pausedMu.Unlock()
	if paused != 0 {
		t.Fatalf("%d partitions still paused after everything was committed", paused)
	}
}

// Records of aborted transactions never reach a route, and a partition
// whose log ends in a transaction marker commits up to its end offset.
func TestConsumer_readCommittedAndMarkersCommitToTheEnd(t *testing.T) {
	c := newCluster(t, 1, "txn")
	addrs := c.ListenAddrs()
	txn, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.TransactionalID("txn-producer"), kgo.DefaultProduceTopic("txn"))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	ctx := context.Background()
	batch := func(commit bool, label string, n int) {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := txn.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%s-%d", label, i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	batch(true, "committed-a", 5)
	batch(false, "aborted", 5)
	batch(true, "committed-b", 5) // the log ends with this transaction's marker
	var mu sync.Mutex
	var got []string
	s := newSink("r")
	s.fn = func(_ context.Context, m fanout.Message) error {
		mu.Lock()
		got = append(got, string(m.Value))
		mu.Unlock()
		return nil
	}
	run := start(t, testConfig(addrs, "txn-g"), fanout.ReceiverConfig{Topic: "txn", Routes: routesOf(s)})
	waitCommittedAtEnd(t, addrs, "txn-g", "txn")
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 10 {
		t.Fatalf("delivered %d records, want the 10 committed: %v", len(got), got)
	}
	for _, v := range got {
		if len(v) >= 7 && v[:7] == "aborted" {
			t.Fatalf("an aborted record was delivered: %s", v)
		}
	}
	end := endOffsets(t, addrs, "txn")["txn"][0]
	if end != 18 { // 15 records and 3 markers
		t.Fatalf("end offset %d, want 18", end)
	}
	wait(t, guard, "lag 0 in stats", func() bool {
		for _, p := range run.c.Stats().Partitions {
			if p.Lag != 0 {
				return false
			}
		}
		return true
	})
}

// A revoke whose wait for a stuck delivery uses up RevokeTimeout still
// commits what completed before the stuck record: the final commit has a
// budget of its own.
func TestConsumer_revokeCommitsAfterItsWaitExpired(t *testing.T) {
	c := newCluster(t, 2, "budget")
	addrs := c.ListenAddrs()
	produceTo(t, addrs, "budget", 0, 10)
	produceTo(t, addrs, "budget", 1, 10)
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	first := newSink("r")
	first.fn = func(ctx context.Context, m fanout.Message) error {
		if m.Offset == 5 {
			<-release // ignores ctx
		}
		return nil
	}
	cfg := testConfig(addrs, "budget-g")
	cfg.CommitInterval = time.Hour // only the revoke commits
	cfg.RevokeTimeout = 300 * time.Millisecond
	start(t, cfg, fanout.ReceiverConfig{Topic: "budget", Routes: []fanout.RouteConfig{{Route: first, Workers: 2, Buffer: 16, Ordering: fanout.OrderPartition}}})
	wait(t, guard, "0-4 of both partitions delivered", func() bool { return first.distinct("budget") == 10 })
	// The new owner delivers nothing, so whatever the group holds for the
	// moved partition was committed by the revoke.
	stalled, unstall := stalledSink("r")
	defer unstall()
	m2 := start(t, testConfig(addrs, "budget-g"), fanout.ReceiverConfig{Topic: "budget", Routes: routesOf(stalled)})
	wait(t, guard, "member 2 owns a partition", func() bool { return len(m2.c.Stats().Partitions) == 1 })
	moved := m2.c.Stats().Partitions[0].Partition
	if got := committedOffset(t, addrs, "budget-g", "budget", moved); got < 5 {
		t.Fatalf("after the revoke of partition %d the group committed %d, want at least 5 (records 0-4 completed)", moved, got)
	}
	once.Do(func() { close(release) })
	unstall()
}

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
	s.fn = func(ctx context.Context, m fanout.Message) error {
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
	wait(t, guard, "stuck and waiting", func() bool { return s.distinct("drain") >= 22 })
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

func (c *commitTimes) Consumed(string, int)           {}
func (c *commitTimes) Rebalanced(string, string, int) {}
func (c *commitTimes) Ready(bool)                     {}
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
func TestConsumer_notReadyWhileLost(t *testing.T) {
	// The client never reaches the group, so only this test calls the
	// callbacks.
	cons, err := build(testConfig([]string{silentBroker(t)}, "ready-g"), fanout.Options{}, fanout.ReceiverConfig{Topic: "ready", Routes: routesOf(newSink("r"))})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.closeNow()
	cons.onAssigned(context.Background(), cons.cl, map[string][]int32{"ready": {0}})
	if !cons.Ready() {
		t.Fatal("not ready after joining")
	}
	cons.onLost(context.Background(), cons.cl, map[string][]int32{"ready": {0}})
	if cons.Ready() {
		t.Fatal("ready after losing every partition")
	}
	cons.onAssigned(context.Background(), cons.cl, map[string][]int32{})
	if !cons.Ready() {
		t.Fatal("not ready after rejoining (with nothing assigned)")
	}
}

// Past HeldMaxBytes a refused partition is rewound instead of held: its
// records are fetched again when it may flow, and every one is delivered,
// in offset order per partition.
func TestConsumer_rewindPastTheHeldBoundLosesNothing(t *testing.T) {
	c := newCluster(t, 2, "rewind")
	addrs := c.ListenAddrs()
	produceTo(t, addrs, "rewind", 0, 3000)
	produceTo(t, addrs, "rewind", 1, 3000)
	var mu sync.Mutex
	last := map[int32]int64{0: -1, 1: -1}
	var outOfOrder []string
	s := newSink("r")
	s.fn = func(_ context.Context, m fanout.Message) error {
		time.Sleep(50 * time.Microsecond)
		mu.Lock()
		if m.Offset != last[m.Partition]+1 {
			outOfOrder = append(outOfOrder, fmt.Sprintf("%d/%d after %d", m.Partition, m.Offset, last[m.Partition]))
		}
		last[m.Partition] = m.Offset
		mu.Unlock()
		return nil
	}
	cfg := testConfig(addrs, "rewind-g")
	cfg.HeldMaxBytes = 1 // hold nothing: every refusal rewinds
	start(t, cfg, fanout.ReceiverConfig{Topic: "rewind", Routes: []fanout.RouteConfig{{Route: s, Workers: 1, Buffer: 50, Ordering: fanout.OrderPartition}}})
	waitCommittedAtEnd(t, addrs, "rewind-g", "rewind")
	mu.Lock()
	defer mu.Unlock()
	if len(outOfOrder) > 0 {
		t.Fatalf("%d deliveries out of order, first %v", len(outOfOrder), outOfOrder[0])
	}
	if s.distinct("rewind") != 6000 || s.duplicates() != 0 {
		t.Fatalf("delivered %d distinct, %d duplicates", s.distinct("rewind"), s.duplicates())
	}
}
