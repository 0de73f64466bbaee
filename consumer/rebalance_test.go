package consumer

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kgo"
)

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
	wait(t, guard, "records offered and delivered", func() bool { return s.Distinct("stale") == 2 })
}

func TestConsumer_revokeDuringReofferKeepsFlowing(t *testing.T) {
	c := newCluster(t, 2, "reoffer")
	addrs := c.ListenAddrs()
	produceTo(t, addrs, "reoffer", 0, 2000)
	produceTo(t, addrs, "reoffer", 1, 2000)
	var slow atomic.Bool
	slow.Store(true)
	first := newSink("r")
	first.Fn = func(ctx context.Context, m fanout.Message) error {
		if slow.Load() {
			time.Sleep(2 * time.Millisecond) // drains a little at a time: re-offers are refused again and again
		}
		return nil
	}
	cfg := testConfig(addrs, "reoffer-g")
	cfg.RevokeTimeout = 100 * time.Millisecond
	m1 := start(t, cfg, fanout.ReceiverConfig{Topic: "reoffer", MaxInflight: 40,
		Routes: []fanout.RouteConfig{{Route: first, Workers: 1, Buffer: 8}}})
	wait(t, guard, "member 1 consuming", func() bool { return first.Distinct("reoffer") > 50 })
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
		for k := range s.Seen() {
			union[k] = true
		}
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

func TestConsumer_revokeCommitsAfterItsWaitExpired(t *testing.T) {
	c := newCluster(t, 2, "budget")
	addrs := c.ListenAddrs()
	produceTo(t, addrs, "budget", 0, 10)
	produceTo(t, addrs, "budget", 1, 10)
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	first := newSink("r")
	first.Fn = func(ctx context.Context, m fanout.Message) error {
		if m.Offset == 5 {
			<-release // ignores ctx
		}
		return nil
	}
	cfg := testConfig(addrs, "budget-g")
	cfg.CommitInterval = time.Hour // only the revoke commits
	cfg.RevokeTimeout = 300 * time.Millisecond
	start(t, cfg, fanout.ReceiverConfig{Topic: "budget", Routes: []fanout.RouteConfig{{Route: first, Workers: 2, Buffer: 16, Ordering: fanout.OrderPartition}}})
	wait(t, guard, "0-4 of both partitions delivered", func() bool { return first.Distinct("budget") == 10 })
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
