package consumer

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
)

func routesOf(rs ...fanout.Route) []fanout.RouteConfig {
	out := make([]fanout.RouteConfig, len(rs))
	for i, r := range rs {
		out[i] = fanout.RouteConfig{Route: r, Workers: 4, Buffer: 256}
	}
	return out
}

func TestConsumer_everyRecordReachesEveryRoute(t *testing.T) {
	c := newCluster(t, 4, "orders", "payments")
	addrs := c.ListenAddrs()
	produced := map[string]map[string]*recordView{}
	for _, topic := range []string{"orders", "payments"} {
		produced[topic] = map[string]*recordView{}
		for k, r := range produce(t, addrs, topic, 2000) {
			produced[topic][k] = &recordView{key: r.Key, value: r.Value, header: r.Headers[0].Value}
		}
	}
	a, b, d := newSink("a"), newSink("b"), newSink("c")
	p1, p2, p3 := newSink("a"), newSink("b"), newSink("c")
	run := start(t, testConfig(addrs, "g1"),
		fanout.ReceiverConfig{Topic: "orders", Routes: routesOf(a, b, d)},
		fanout.ReceiverConfig{Topic: "payments", Routes: routesOf(p1, p2, p3)},
	)
	wait(t, guard, "all delivered", func() bool {
		for _, s := range []*sink{a, b, d} {
			if s.Distinct("orders") != 2000 {
				return false
			}
		}
		for _, s := range []*sink{p1, p2, p3} {
			if s.Distinct("payments") != 2000 {
				return false
			}
		}
		return true
	})
	// Exactly as produced: key, value, headers.
	for topic, sinks := range map[string][]*sink{"orders": {a, b, d}, "payments": {p1, p2, p3}} {
		for _, s := range sinks {
			for k, want := range produced[topic] {
				m, _ := s.Last(topic + "/" + k)
				if !bytes.Equal(m.Key, want.key) || !bytes.Equal(m.Value, want.value) || len(m.Headers) != 1 || !bytes.Equal(m.Headers[0].Value, want.header) {
					t.Errorf("%s %s/%s: got key %q value %q headers %v", s.Name(), topic, k, m.Key, m.Value, m.Headers)
				}
			}
		}
	}
	if !run.c.Ready() {
		t.Error("not ready while consuming")
	}
	waitCommittedAtEnd(t, addrs, "g1", "orders", "payments")
	snap := run.c.Stats()
	for _, p := range snap.Partitions {
		if p.Lag != 0 || p.Paused {
			t.Errorf("stats %+v", p)
		}
	}
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if run.c.Ready() {
		t.Error("ready after shutdown")
	}
}

type recordView struct{ key, value, header []byte }

// commitLog checks that the group's committed offsets never go backwards,
// whichever member commits.
type commitLog struct {
	mu   sync.Mutex
	last map[string]int64
	bad  []string
}

func (l *commitLog) Consumed(string, int)           {}
func (l *commitLog) Rebalanced(string, string, int) {}
func (l *commitLog) Ready(bool)                     {}
func (l *commitLog) Committed(topic string, p int32, off int64, err error) {
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := fmt.Sprintf("%s/%d", topic, p)
	if off < l.last[k] {
		l.bad = append(l.bad, fmt.Sprintf("%s: %d after %d", k, off, l.last[k]))
	}
	l.last[k] = off
}

func TestConsumer_membersJoiningAndLeavingLoseNothing(t *testing.T) {
	c := newCluster(t, 6, "events")
	addrs := c.ListenAddrs()
	const n = 20000
	produce(t, addrs, "events", n)
	seen := newSink("r")
	var delivered atomic.Int64
	seen.Fn = func(ctx context.Context, m fanout.Message) error {
		if delivered.Add(1)%100 == 0 {
			time.Sleep(time.Millisecond) // keep the load going through the rebalances
		}
		return nil
	}
	log := &commitLog{last: map[string]int64{}}
	cfg := testConfig(addrs, "g3")
	cfg.Observer = log
	rc := fanout.ReceiverConfig{Topic: "events", MaxInflight: 500, Routes: routesOf(seen)}
	m1 := start(t, cfg, rc)
	wait(t, guard, "some progress", func() bool { return delivered.Load() > 2000 })
	m2 := start(t, cfg, rc)
	wait(t, guard, "more progress", func() bool { return delivered.Load() > 6000 })
	m3 := start(t, cfg, rc)
	wait(t, guard, "more progress", func() bool { return delivered.Load() > 10000 })
	if err := m1.stop(t); err != nil {
		t.Fatal(err)
	}
	wait(t, guard, "more progress", func() bool { return delivered.Load() > 14000 })
	if err := m2.stop(t); err != nil {
		t.Fatal(err)
	}
	wait(t, guard, "all delivered", func() bool { return seen.Distinct("events") == n })
	waitCommittedAtEnd(t, addrs, "g3", "events")
	if err := m3.stop(t); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.bad) > 0 {
		t.Fatalf("commits went backwards: %v", log.bad)
	}
	t.Logf("duplicates across rebalances: %d", seen.Duplicates())
}

// A stalled route on one receiver pauses only that receiver's partitions
// while the other receiver keeps flowing; memory stays bounded while the
// backlog waits in Kafka; releasing the stall drains everything.
func TestConsumer_stalledRoutePausesOnlyItsReceiver(t *testing.T) {
	c := newCluster(t, 4, "stalled", "flowing")
	addrs := c.ListenAddrs()
	const backlog = 100_000
	produce(t, addrs, "stalled", backlog)
	stuck, release := stalledSink("stuck")
	defer release()
	fastOnStalled := newSink("fast")
	other := newSink("other")
	const buffer, maxInflight, workers = 500, 1000, 4
	run := start(t, testConfig(addrs, "g4"),
		fanout.ReceiverConfig{Topic: "stalled", MaxInflight: maxInflight, Routes: []fanout.RouteConfig{
			{Route: stuck, Workers: workers, Buffer: buffer},
			{Route: fastOnStalled, Workers: 4, Buffer: buffer},
		}},
		fanout.ReceiverConfig{Topic: "flowing", Routes: routesOf(other)},
	)
	wait(t, guard, "stalled receiver paused", func() bool {
		for _, p := range run.c.Stats().Partitions {
			if p.Topic == "stalled" && p.Paused {
				return true
			}
		}
		return false
	})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	// The other receiver keeps flowing while the stall lasts.
	for round := range 3 {
		produce(t, addrs, "flowing", 1000)
		want := 1000 * (round + 1)
		wait(t, guard, "flowing receiver delivers", func() bool { return other.Distinct("flowing") == want })
	}
	accepted := fastOnStalled.Distinct("stalled")
	if bound := buffer + workers; accepted > bound {
		t.Fatalf("stalled receiver accepted %d records, bound buffer+workers = %d", accepted, bound)
	}
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	// The backlog is 100k records (~2.5 MB of values) in Kafka; the process
	// holds at most one poll and the buffers. Heap must not grow with it.
	const heapBound = 64 << 20
	if during.HeapInuse > heapBound {
		t.Fatalf("heap in use %d MiB while %d records wait in Kafka (bound %d MiB)", during.HeapInuse>>20, backlog, heapBound>>20)
	}
	t.Logf("heap in use: %d MiB before, %d MiB during the stall", before.HeapInuse>>20, during.HeapInuse>>20)
	for _, p := range run.c.Stats().Partitions {
		if p.Topic == "flowing" && p.Paused {
			t.Fatalf("flowing partition %d paused", p.Partition)
		}
	}
	release()
	wait(t, 2*guard, "stalled receiver drains", func() bool { return stuck.Distinct("stalled") == backlog })
	waitCommittedAtEnd(t, addrs, "g4", "stalled")
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
}

// With one receiver whose only route stalls, the poll loop's wait for room
// is bounded: the partitions still get paused, so metrics and alerts show
// the congestion.
func TestConsumer_singleStalledReceiverPauses(t *testing.T) {
	c := newCluster(t, 2, "alone")
	addrs := c.ListenAddrs()
	produce(t, addrs, "alone", 5000)
	stuck, release := stalledSink("stuck")
	defer release()
	run := start(t, testConfig(addrs, "alone-g"), fanout.ReceiverConfig{Topic: "alone",
		Routes: []fanout.RouteConfig{{Route: stuck, Workers: 2, Buffer: 1500}}}) // one poll (1000) leaves it saturated, not full
	wait(t, guard, "both partitions paused", func() bool {
		n := 0
		for _, p := range run.c.Stats().Partitions {
			if p.Paused {
				n++
			}
		}
		return n == 2
	})
}

// Commits carry the leader epoch of the last committed record, so a member
// that takes the partition over can detect log truncation (KIP-320).
func TestConsumer_commitsCarryTheLeaderEpoch(t *testing.T) {
	c := newCluster(t, 2, "epochs")
	addrs := c.ListenAddrs()
	produce(t, addrs, "epochs", 200)
	s := newSink("r")
	run := start(t, testConfig(addrs, "epoch-g"), fanout.ReceiverConfig{Topic: "epochs", Routes: routesOf(s)})
	waitCommittedAtEnd(t, addrs, "epoch-g", "epochs")
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	info := c.GroupInfo("epoch-g")
	if info == nil || len(info.Commits["epochs"]) != 2 {
		t.Fatalf("group info %+v", info)
	}
	for p, gc := range info.Commits["epochs"] {
		if gc.LeaderEpoch < 0 {
			t.Errorf("partition %d committed at %d without a leader epoch (%d)", p, gc.Offset, gc.LeaderEpoch)
		}
	}
}
