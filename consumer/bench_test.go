package consumer

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kgo"
)

type discard struct {
	name string
	n    *atomic.Int64
}

func (d discard) Name() string { return d.name }
func (d discard) Deliver(context.Context, fanout.Message) error {
	d.n.Add(1)
	return nil
}

// BenchmarkThroughput measures records per second through the consumer and
// engine with three discard routes against a bare franz-go group consumer
// reading the same records in the same run: the practical limit. The
// ratio is reported as fanout/bare.
//
//	go test -run='^$' -bench=Throughput -benchtime=1x ./consumer/
func BenchmarkThroughput(b *testing.B) {
	const partitions, records = 8, 200_000
	c := newCluster(b, partitions, "bench")
	addrs := c.ListenAddrs()
	produceFast(b, addrs, "bench", records)
	var bare, ours time.Duration
	for i := range b.N {
		bare += bareConsume(b, addrs, fmt.Sprintf("bare-%d", i), records)
		ours += fanoutConsume(b, addrs, fmt.Sprintf("fanout-%d", i), records)
	}
	bareRate := float64(records*b.N) / bare.Seconds()
	ourRate := float64(records*b.N) / ours.Seconds()
	b.ReportMetric(bareRate, "bare-rec/s")
	b.ReportMetric(ourRate, "fanout-rec/s")
	b.ReportMetric(ourRate/bareRate, "ratio")
}

func produceFast(tb testing.TB, addrs []string, topic string, n int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerLinger(10*time.Millisecond), kgo.DefaultProduceTopic(topic))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	value := make([]byte, 100)
	done := make(chan error, 1)
	var left atomic.Int64
	left.Store(int64(n))
	for i := range n {
		cl.Produce(context.Background(), &kgo.Record{Key: []byte(fmt.Sprint(i % 1000)), Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case done <- err:
				default:
				}
			}
			if left.Add(-1) == 0 {
				select {
				case done <- nil:
				default:
				}
			}
		})
	}
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
}

// bareConsume is the limit: a group consumer that only counts records.
func bareConsume(tb testing.TB, addrs []string, group string, n int) time.Duration {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumerGroup(group), kgo.ConsumeTopics("bench"),
		kgo.DisableAutoCommit(), kgo.FetchMaxWait(50*time.Millisecond),
		kgo.FetchMaxBytes(16<<20), kgo.MaxConcurrentFetches(2))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	start := time.Now()
	got := 0
	for got < n {
		fs := cl.PollRecords(context.Background(), 1000)
		fs.EachRecord(func(*kgo.Record) { got++ })
	}
	if err := cl.CommitUncommittedOffsets(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// fanoutConsume runs the real consumer and engine with three discard
// routes until every record reached every route and was committed.
func fanoutConsume(tb testing.TB, addrs []string, group string, n int) time.Duration {
	var delivered atomic.Int64
	rc := fanout.ReceiverConfig{Topic: "bench", Routes: []fanout.RouteConfig{
		{Route: discard{"a", &delivered}, Ordering: fanout.OrderNone},
		{Route: discard{"b", &delivered}, Ordering: fanout.OrderNone},
		{Route: discard{"c", &delivered}, Ordering: fanout.OrderNone},
	}}
	cfg := testConfig(addrs, group)
	cfg.CommitInterval = 20 * time.Millisecond
	start := time.Now()
	run := start2(tb, cfg, rc)
	for delivered.Load() < int64(3*n) {
		time.Sleep(time.Millisecond)
	}
	d := time.Since(start)
	if err := run.stop(tb); err != nil {
		tb.Fatal(err)
	}
	return d
}

func start2(tb testing.TB, cfg Config, rc fanout.ReceiverConfig) *running {
	c, err := New(cfg, []fanout.ReceiverConfig{rc}, fanout.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	return r
}
