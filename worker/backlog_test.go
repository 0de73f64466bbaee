package worker

import (
	"context"
	"testing"

	"github.com/receiver-fanout/fanout/consumer"
	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/routes"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A backlog reading is not reused once a spill to its topic was
// acknowledged after the reading began, however fresh it is: the engine
// re-attaches a route on a reading of 0 taken after its last spill was
// acknowledged, so that reading must count that spill.
func TestBacklog_countsEverySpillAcknowledgedBeforeIt(t *testing.T) {
	const topic = "orders.spill.hook"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	bl := newBacklogs(kadm.NewClient(cl), SpillGroup("fanout"))
	backlog := bl.of(topic)
	spill := bl.counting(topic, routes.NewSpill("hook", topic, cl, func() int32 { return 2 }))
	ctx := context.Background()
	read := func(want int64) {
		t.Helper()
		if n, err := backlog(ctx); err != nil || n != want {
			t.Fatalf("backlog %d (%v), want %d", n, err, want)
		}
	}
	read(0)
	m := fanout.Message{Topic: "orders", Partition: 1, Offset: 7, Key: []byte("k"), Value: []byte("v")}
	if err := spill.Deliver(ctx, m); err != nil {
		t.Fatal(err)
	}
	read(1) // at once: the reading of 0 is fresh, but older than the spill
	done := make(chan error, 1)
	m.Offset++
	spill.DeliverAsync(ctx, m, fanout.CompletionFunc(func(err error) { done <- err }))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	read(2)
	if spill.Name() != "hook" {
		t.Errorf("the counting spill route is named %q", spill.Name())
	}
}

// The spill consumer is a group of its own that reports nothing through
// the main consumer's observer: its rebalances would clear fanout_ready
// and its paced feed would trip the receivers' alerts.
func TestSpillConsumerConfig(t *testing.T) {
	main := consumer.Config{Group: "g", InstanceID: "w-1", StartOffset: "latest", Observer: struct{ consumer.Observer }{}}
	c := spillConsumerConfig(main)
	if c.Group != "g.spill" || c.InstanceID != "w-1-spill" || c.StartOffset != "earliest" {
		t.Fatalf("group %q, instance %q, start %q", c.Group, c.InstanceID, c.StartOffset)
	}
	if c.Observer != nil {
		t.Fatalf("the spill consumer reports to the main consumer's observer %T", c.Observer)
	}
	if c.FetchMaxBytes != spillFetchMaxBytes || c.MaxConcurrentFetches != spillFetches {
		t.Fatalf("fetches %d × %d bytes", c.MaxConcurrentFetches, c.FetchMaxBytes)
	}
}
