package consumer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kgo"
)

// memberLog records one member's successful commits and revokes, in order.
type memberLog struct {
	mu     sync.Mutex
	events []string
}

func (l *memberLog) add(e string) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *memberLog) Consumed(string, int) {}
func (l *memberLog) Ready(bool)           {}
func (l *memberLog) Rebalanced(topic, event string, n int) {
	l.add(fmt.Sprintf("%s %s %d", event, topic, n))
}
func (l *memberLog) Committed(topic string, p int32, off int64, err error) {
	if err == nil {
		l.add(fmt.Sprintf("commit %s/%d=%d", topic, p, off))
	}
}

func (l *memberLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func produceTo(tb testing.TB, addrs []string, topic string, partition int32, n int) {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	for i := range n {
		rec := &kgo.Record{Topic: topic, Partition: partition, Value: []byte(fmt.Sprint(i))}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			tb.Fatal(err)
		}
	}
}

func committedOffset(tb testing.TB, addrs []string, group, topic string, p int32) int64 {
	return groupOffsets(tb, addrs, group)[topic][p]
}

// A delivery that finishes after its partition was revoked (the revoke
// gave up waiting for it) must never commit for that partition: by then
// another member owns it and has committed further.
func TestConsumer_lateAckAfterRevokeNeverCommits(t *testing.T) {
	c := newCluster(t, 2, "late")
	addrs := c.ListenAddrs()
	produceTo(t, addrs, "late", 0, 10)
	produceTo(t, addrs, "late", 1, 10)

	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	first := newSink("r")
	first.Fn = func(ctx context.Context, m fanout.Message) error {
		if m.Offset == 5 {
			<-release // ignores ctx: a stuck destination
		}
		return nil
	}
	log1 := &memberLog{}
	cfg1 := testConfig(addrs, "late-g")
	cfg1.RevokeTimeout = 200 * time.Millisecond
	cfg1.ShutdownTimeout = time.Second
	cfg1.Observer = log1
	m1 := start(t, cfg1, fanout.ReceiverConfig{Topic: "late", Routes: []fanout.RouteConfig{{Route: first, Workers: 4, Ordering: fanout.OrderNone}}})
	wait(t, guard, "member 1 delivered all but the stuck records", func() bool { return first.Distinct("late") == 18 })
	wait(t, guard, "member 1 committed up to the stuck records", func() bool {
		return committedOffset(t, addrs, "late-g", "late", 0) == 5 && committedOffset(t, addrs, "late-g", "late", 1) == 5
	})

	second := newSink("r")
	m2 := start(t, testConfig(addrs, "late-g"), fanout.ReceiverConfig{Topic: "late", Routes: routesOf(second)})
	var moved int32 = -1
	wait(t, guard, "a partition moved to member 2", func() bool {
		for _, p := range m2.c.Stats().Partitions {
			moved = p.Partition
			return true
		}
		return false
	})
	// Member 2 redelivers from the committed offset and goes further.
	produceTo(t, addrs, "late", moved, 10)
	wait(t, guard, "member 2 committed past member 1", func() bool {
		return committedOffset(t, addrs, "late-g", "late", moved) == 20
	})
	revokedAt := len(log1.snapshot())

	// Now the stuck delivery on member 1 finishes: a late acknowledgement.
	releaseOnce.Do(func() { close(release) })
	time.Sleep(10 * cfg1.CommitInterval) // several commit rounds of member 1
	if got := committedOffset(t, addrs, "late-g", "late", moved); got != 20 {
		t.Fatalf("partition %d committed %d after the late ack, want member 2's 20", moved, got)
	}
	for _, e := range log1.snapshot()[revokedAt:] {
		if strings.HasPrefix(e, fmt.Sprintf("commit late/%d=", moved)) {
			t.Fatalf("member 1 committed a partition it gave up: %s (events %v)", e, log1.snapshot())
		}
	}
	if err := m2.stop(t); err != nil {
		t.Fatal(err)
	}
	if err := m1.stop(t); err != nil {
		t.Logf("member 1 stop: %v", err)
	}
}

// franz-go keeps a partition paused across rebalances: a partition paused
// on member 1, moved to member 2 and moved back must flow again on member 1.
func TestConsumer_pauseIsLiftedWhenPartitionsMove(t *testing.T) {
	c := newCluster(t, 2, "moving")
	addrs := c.ListenAddrs()
	produceTo(t, addrs, "moving", 0, 300)
	produceTo(t, addrs, "moving", 1, 300)

	first, release := stalledSink("r")
	defer release()
	cfg1 := testConfig(addrs, "moving-g")
	cfg1.RevokeTimeout = 200 * time.Millisecond
	m1 := start(t, cfg1, fanout.ReceiverConfig{Topic: "moving", MaxInflight: 50,
		Routes: []fanout.RouteConfig{{Route: first, Workers: 2, Buffer: 20}}})
	wait(t, guard, "both partitions paused on member 1", func() bool {
		paused := 0
		for _, p := range m1.c.Stats().Partitions {
			if p.Paused {
				paused++
			}
		}
		return paused == 2
	})
	second := newSink("r")
	m2 := start(t, testConfig(addrs, "moving-g"), fanout.ReceiverConfig{Topic: "moving", Routes: routesOf(second)})
	wait(t, guard, "member 2 owns a partition", func() bool { return len(m2.c.Stats().Partitions) == 1 })
	if err := m2.stop(t); err != nil {
		t.Fatal(err)
	}
	wait(t, guard, "member 1 owns both again", func() bool { return len(m1.c.Stats().Partitions) == 2 })
	release()
	produceTo(t, addrs, "moving", 0, 100)
	produceTo(t, addrs, "moving", 1, 100)
	wait(t, guard, "every record delivered", func() bool {
		union := map[string]bool{}
		for k := range first.Seen() {
			union[k] = true
		}
		for k := range second.Seen() {
			union[k] = true
		}
		return len(union) == 800
	})
	waitCommittedAtEnd(t, addrs, "moving-g", "moving")
	if err := m1.stop(t); err != nil {
		t.Fatal(err)
	}
}
