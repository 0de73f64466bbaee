package routes

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A parked record read back through Unspill is the original: its topic,
// partition, offset, key, value, headers and timestamp (which the wire's
// X-Fanout-Timestamp shows), in spill partition original mod the spill
// topic's partitions. An hour-old record parks too: the parked record does
// not carry the old timestamp as its own, from which franz-go would
// measure its delivery timeout.
func TestSpillRoute_unspillGivesTheOriginalBack(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "parking"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := NewProducers([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, 2*time.Second)
	defer p.Close()
	cl, err := p.Spill("parking", "spill.topic")
	if err != nil {
		t.Fatal(err)
	}
	orig := fanout.Message{Topic: "orders", Partition: 3, Offset: 41, Key: []byte("k"), Value: []byte("v"),
		Timestamp: time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli()),
		Headers:   []fanout.Header{{Key: "type", Value: []byte("order.created")}, {Key: "type", Value: []byte("again")}}}
	if err := NewSpill("slow", "parking", cl, func() int32 { return 2 }).Deliver(context.Background(), orig); err != nil {
		t.Fatal(err)
	}
	rec := consume(t, c.ListenAddrs(), "parking", 1)[0]
	if rec.Partition != 1 {
		t.Errorf("parked in partition %d, want 3 mod 2 = 1", rec.Partition)
	}
	if time.Since(rec.Timestamp) > time.Minute {
		t.Errorf("the parked record carries the original's timestamp %s as its own", rec.Timestamp)
	}
	m := fanout.Message{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp}
	for _, h := range rec.Headers {
		m.Headers = append(m.Headers, fanout.Header{Key: h.Key, Value: h.Value})
	}
	got, ok := Unspill(m)
	if !ok {
		t.Fatalf("Unspill refused the parked record %+v", m)
	}
	if got.Topic != orig.Topic || got.Partition != orig.Partition || got.Offset != orig.Offset ||
		!bytes.Equal(got.Key, orig.Key) || !bytes.Equal(got.Value, orig.Value) || !got.Timestamp.Equal(orig.Timestamp) ||
		!slices.EqualFunc(got.Headers, orig.Headers, func(a, b fanout.Header) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
		t.Errorf("Unspill gave\n  %+v\nwant the original\n  %+v", got, orig)
	}

	// A record without a timestamp parks without fanout-timestamp, and
	// keeps the parked record's.
	m.Headers = slices.DeleteFunc(slices.Clone(m.Headers), func(h fanout.Header) bool { return h.Key == SpillHeaderTimestamp })
	if got, ok := Unspill(m); !ok || !got.Timestamp.Equal(rec.Timestamp) {
		t.Errorf("without fanout-timestamp: Unspill = %v, timestamp %s, want the parked record's %s", ok, got.Timestamp, rec.Timestamp)
	}
	bad := append(slices.Clone(m.Headers), fanout.Header{Key: SpillHeaderTimestamp, Value: []byte("yesterday")})
	if _, ok := Unspill(fanout.Message{Headers: bad}); ok {
		t.Error("Unspill accepted a bad fanout-timestamp")
	}
}
