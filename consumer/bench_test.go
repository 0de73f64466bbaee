package consumer

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kadm"
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

// DeliverAsync acknowledges inline, as routes.DiscardRoute does.
func (d discard) DeliverAsync(_ context.Context, _ fanout.Message, done fanout.Completion) {
	d.n.Add(1)
	done.Done(nil)
}

// BenchmarkThroughput measures records per second through the consumer and
// engine with three discard routes against a bare franz-go group consumer
// reading the same records in the same run: the practical limit. The
// ratio is reported as fanout/bare.
//
//	go test -run='^$' -bench=Throughput -benchtime=1x ./consumer/
//
// With BENCH_KAFKA_BROKERS=host:port it runs against that broker instead of
// kfake (scripts/kafka-local.sh starts one).
//
// Two configurations: the defaults (buffer 1024, max_inflight 10000), where
// the routes fall behind kgo and partitions pause and resume, and buffers
// large enough that nothing ever pauses, which isolates the cost of the
// pause/resume cycles.
func BenchmarkThroughput(b *testing.B) {
	const partitions, records = 8, 200_000
	topic := "bench"
	var addrs []string
	if brokers := os.Getenv("BENCH_KAFKA_BROKERS"); brokers != "" {
		// A real broker: a fresh topic per run.
		addrs = strings.Split(brokers, ",")
		topic = fmt.Sprintf("bench-%d", time.Now().UnixNano())
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
		if err != nil {
			b.Fatal(err)
		}
		_, err = kadm.NewClient(cl).CreateTopic(context.Background(), partitions, 1, nil, topic)
		cl.Close()
		if err != nil {
			b.Fatal(err)
		}
	} else {
		addrs = newCluster(b, partitions, topic).ListenAddrs()
	}
	produceFast(b, addrs, topic, records)
	for _, bc := range []struct {
		name                string
		buffer, maxInflight int
	}{
		{"defaults", 0, 0},
		{"no-pauses", 2 * records, records},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var bare, ours time.Duration
			var pauses int64
			for range b.N {
				// Every run needs a fresh group: testing may call this
				// function more than once with the same i.
				run := benchRuns.Add(1)
				bare += bareConsume(b, addrs, topic, fmt.Sprintf("bare-%d", run), records)
				d, p := fanoutConsume(b, addrs, topic, fmt.Sprintf("fanout-%d", run), records, bc.buffer, bc.maxInflight)
				ours += d
				pauses += p
			}
			bareRate := float64(records*b.N) / bare.Seconds()
			ourRate := float64(records*b.N) / ours.Seconds()
			b.ReportMetric(bareRate, "bare-rec/s")
			b.ReportMetric(ourRate, "fanout-rec/s")
			b.ReportMetric(ourRate/bareRate, "ratio")
			b.ReportMetric(float64(pauses)/float64(b.N), "pauses/run")
		})
	}
}

var benchRuns atomic.Int64

// pauseCounter counts partition pauses.
type pauseCounter struct{ n atomic.Int64 }

func (p *pauseCounter) Route(string, string) fanout.RouteObserver { return nopRouteObserver{} }
func (p *pauseCounter) PartitionPaused(string, int32, string)     { p.n.Add(1) }
func (p *pauseCounter) PartitionResumed(string, int32)            {}

type nopRouteObserver struct{}

func (nopRouteObserver) Delivered(fanout.Outcome, time.Duration) {}
func (nopRouteObserver) QueueWait(time.Duration)                 {}
func (nopRouteObserver) DeadLetterFailed()                       {}

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
func bareConsume(tb testing.TB, addrs []string, topic, group string, n int) time.Duration {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
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
func fanoutConsume(tb testing.TB, addrs []string, topic, group string, n, buffer, maxInflight int) (time.Duration, int64) {
	var delivered atomic.Int64
	rc := fanout.ReceiverConfig{Topic: topic, MaxInflight: maxInflight, Routes: []fanout.RouteConfig{
		{Route: discard{"a", &delivered}, Ordering: fanout.OrderNone, Buffer: buffer},
		{Route: discard{"b", &delivered}, Ordering: fanout.OrderNone, Buffer: buffer},
		{Route: discard{"c", &delivered}, Ordering: fanout.OrderNone, Buffer: buffer},
	}}
	cfg := testConfig(addrs, group)
	cfg.CommitInterval = 20 * time.Millisecond
	pauses := &pauseCounter{}
	start := time.Now()
	run := startUnmanaged(tb, cfg, rc, pauses)
	for delivered.Load() < int64(3*n) {
		time.Sleep(time.Millisecond)
	}
	d := time.Since(start)
	if err := run.stop(tb); err != nil {
		tb.Fatal(err)
	}
	return d, pauses.n.Load()
}

// startUnmanaged is start without a test cleanup, for benchmarks.
func startUnmanaged(tb testing.TB, cfg Config, rc fanout.ReceiverConfig, obs fanout.Observer) *running {
	c, err := build(cfg, fanout.Options{Observer: obs}, rc)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	return r
}
