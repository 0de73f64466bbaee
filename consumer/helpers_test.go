package consumer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/fanout/fanouttest"
	"github.com/receiver-fanout/fanout/internal/testkit"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	goleak.VerifyTestMain(m)
}

const guard = 60 * time.Second

var wait = testkit.Wait

func newCluster(tb testing.TB, partitions int32, topics ...string) *kfake.Cluster {
	tb.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// produce writes n records to topic, spread over its partitions by key, and
// returns them keyed by "partition/offset".
func produce(tb testing.TB, addrs []string, topic string, n int) map[string]*kgo.Record {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	out := make(map[string]*kgo.Record, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	for i := range n {
		rec := &kgo.Record{
			Topic:   topic,
			Key:     []byte("key-" + strconv.Itoa(i%37)),
			Value:   []byte(fmt.Sprintf("%s-value-%d", topic, i)),
			Headers: []kgo.RecordHeader{{Key: "seq", Value: []byte(strconv.Itoa(i))}},
		}
		wg.Add(1)
		cl.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			out[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = r
		})
	}
	wg.Wait()
	if firstErr != nil {
		tb.Fatal(firstErr)
	}
	return out
}

// sink is the shared recording route; stalledSink one whose deliveries
// block until released.
type sink = fanouttest.Recorder

var (
	newSink     = fanouttest.NewRecorder
	stalledSink = fanouttest.Stalled
)

// testConfig is a consumer config tuned for fast group tests on kfake.
func testConfig(addrs []string, group string) Config {
	nop := zerolog.Nop()
	return Config{
		Brokers:         addrs,
		Group:           group,
		CommitInterval:  50 * time.Millisecond,
		RevokeTimeout:   5 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		FetchMaxWait:    50 * time.Millisecond,
		Logger:          &nop,
		ExtraOpts:       []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)},
	}
}

// build makes an engine for receivers and a consumer around it, as the
// wiring does; the consumer's Run closes the engine.
func build(cfg Config, opts fanout.Options, receivers ...fanout.ReceiverConfig) (*Consumer, error) {
	eng, err := fanout.New(receivers, opts)
	if err != nil {
		return nil, err
	}
	c, err := New(cfg, eng)
	if err != nil {
		_ = eng.Close(context.Background())
		return nil, err
	}
	return c, nil
}

type running struct {
	c      *Consumer
	cancel context.CancelFunc
	done   chan error
}

func start(tb testing.TB, cfg Config, receivers ...fanout.ReceiverConfig) *running {
	tb.Helper()
	c, err := build(cfg, fanout.Options{}, receivers...)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	tb.Cleanup(func() { r.stop(tb) })
	return r
}

// stop shuts down gracefully (idempotent) and returns Run's error.
func (r *running) stop(tb testing.TB) error {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(guard):
		tb.Fatal("consumer did not stop")
		return nil
	}
}

// groupOffsets reads the group's committed offsets from the broker.
func groupOffsets(tb testing.TB, addrs []string, group string) map[string]map[int32]int64 {
	tb.Helper()
	out, err := fetchGroupOffsets(addrs, group)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// fetchGroupOffsets reads the group's committed offsets; a group that does
// not exist yet has none. Wait predicates use it: they must not fail the
// test for what is only "not yet".
func fetchGroupOffsets(addrs []string, group string) (map[string]map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	out := map[string]map[int32]int64{}
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	offs.Each(func(o kadm.OffsetResponse) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.At
	})
	return out, nil
}

func endOffsets(tb testing.TB, addrs []string, topics ...string) map[string]map[int32]int64 {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topics...)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	return out
}

// waitCommittedAtEnd waits until the group's committed offsets equal the
// end offsets of every partition of topics.
func waitCommittedAtEnd(tb testing.TB, addrs []string, group string, topics ...string) {
	tb.Helper()
	wait(tb, guard, "commits reach the end offsets", func() bool {
		ends := endOffsets(tb, addrs, topics...)
		got, err := fetchGroupOffsets(addrs, group)
		if err != nil {
			tb.Logf("fetch offsets: %v", err)
			return false
		}
		for topic, parts := range ends {
			for p, end := range parts {
				if got[topic][p] != end {
					return false
				}
			}
		}
		return true
	})
}
