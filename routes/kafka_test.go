package routes

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/routes/routetest"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newKafka(t *testing.T, topics ...string) (*Producers, []string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := NewProducers([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, 2*time.Second)
	t.Cleanup(p.Close)
	return p, c.ListenAddrs()
}

// consume reads n records of topic from the start.
func consume(t *testing.T, addrs []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d from %s: %v", len(out), n, topic, err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func TestKafkaRoute_forwardsKeyValueHeaders(t *testing.T) {
	p, addrs := newKafka(t, "audit")
	cl, err := p.Get(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := NewKafka("audit", "audit", cl)
	m := fanout.Message{Topic: "orders", Partition: 3, Offset: 9, Key: []byte{0, 1, 2}, Value: []byte("v"),
		Headers: []fanout.Header{{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}}}
	if err := r.Deliver(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := consume(t, addrs, "audit", 1)[0]
	if !bytes.Equal(got.Key, m.Key) || string(got.Value) != "v" || len(got.Headers) != 2 ||
		got.Headers[0].Key != "a" || string(got.Headers[1].Value) != "2" {
		t.Fatalf("forwarded %+v", got)
	}
}

func TestKafkaRoute_contract(t *testing.T) {
	p, _ := newKafka(t, "audit")
	cl, err := p.Get(nil)
	if err != nil {
		t.Fatal(err)
	}
	routetest.Run(t, func(t *testing.T) fanout.Route { return NewKafka("audit", "audit", cl) })
}

func TestKafkaRoute_missingTopicIsRetryable(t *testing.T) {
	p, _ := newKafka(t, "audit")
	cl, err := p.Get(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err = NewKafka("gone", "no-such-topic", cl).Deliver(ctx, fanout.Message{Value: []byte("x")})
	if err == nil || errors.Is(err, fanout.ErrPermanent) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
}

func TestDeadLetter_addsProvenanceHeaders(t *testing.T) {
	p, addrs := newKafka(t, "orders.dlq")
	cl, err := p.Get(nil)
	if err != nil {
		t.Fatal(err)
	}
	dlq := DeadLetter(cl, "orders.dlq", "billing")
	m := fanout.Message{Topic: "orders", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte("poison"),
		Headers: []fanout.Header{{Key: "type", Value: []byte("order.created")}}}
	if err := dlq(context.Background(), m, errors.New(`http route "billing": 400 Bad Request`), 5); err != nil {
		t.Fatal(err)
	}
	got := consume(t, addrs, "orders.dlq", 1)[0]
	want := map[string]string{
		"type":             "order.created",
		DLQHeaderTopic:     "orders",
		DLQHeaderPartition: "2",
		DLQHeaderOffset:    "41",
		DLQHeaderRoute:     "billing",
		DLQHeaderError:     `http route "billing": 400 Bad Request`,
		DLQHeaderAttempts:  "5",
	}
	if string(got.Key) != "k" || string(got.Value) != "poison" || len(got.Headers) != len(want) {
		t.Fatalf("dead letter %+v", got)
	}
	for _, h := range got.Headers {
		if want[h.Key] != string(h.Value) {
			t.Errorf("header %s = %q, want %q", h.Key, h.Value, want[h.Key])
		}
	}
}

func TestProducers_sharePerCluster(t *testing.T) {
	p, addrs := newKafka(t, "a")
	a, _ := p.Get(nil)
	b, _ := p.Get(nil)
	c, _ := p.Get(addrs)
	d, _ := p.Get(addrs)
	if a != b || c != d || a == c {
		t.Fatal("producers not shared per cluster")
	}
}
