package routes

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/routes/routetest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	cl, err := p.Get(nil, "audit", "")
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
	cl, err := p.Get(nil, "audit", "")
	if err != nil {
		t.Fatal(err)
	}
	routetest.Run(t, func(t *testing.T) fanout.Route { return NewKafka("audit", "audit", cl) })
}

func TestKafkaRoute_missingTopicIsRetryable(t *testing.T) {
	p, _ := newKafka(t, "audit")
	cl, err := p.Get(nil, "no-such-topic", "")
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
	cl, err := p.Get(nil, "orders.dlq", "dead_letter_topic")
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
	a, _ := p.Get(nil, "a", "")
	b, _ := p.Get(nil, "b", "")
	c, _ := p.Get(addrs, "a", "")
	d, _ := p.Get(addrs, "b", "")
	if a != b || c != d || a == c {
		t.Fatal("producers not shared per cluster")
	}
}

// createTopic creates topic with max.message.bytes set to maxBytes.
func createTopic(t *testing.T, addrs []string, topic string, maxBytes int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v := strconv.Itoa(maxBytes)
	resp, err := kadm.NewClient(cl).CreateTopic(context.Background(), 1, 1, map[string]*string{"max.message.bytes": &v}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, resp.Err)
	}
}

// franz-go's own record limit (1,000,012 bytes) is below what a topic may
// take; Check sizes the producer from the topic's max.message.bytes, so a
// record the topic accepts is forwarded, and one it does not is a
// permanent error (straight to the dead-letter topic).
func TestKafkaRoute_recordsUpToTheTopicsLimit(t *testing.T) {
	p, addrs := newKafka(t)
	createTopic(t, addrs, "big", 3<<20)
	cl, err := p.Get(nil, "big", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := NewKafka("big", "big", cl)
	if err := r.Deliver(context.Background(), fanout.Message{Value: make([]byte, 2<<20)}); err != nil {
		t.Fatalf("2 MiB record to a topic taking 3 MiB: %v", err)
	}
	err = r.Deliver(context.Background(), fanout.Message{Value: make([]byte, 4<<20)})
	if !errors.Is(err, fanout.ErrPermanent) {
		t.Fatalf("4 MiB record: %v, want a permanent error", err)
	}
}

// A record too large for the dead-letter topic is dead-lettered without
// its value, with its size in fanout-value-omitted, instead of blocking
// the route for ever.
func TestDeadLetter_tooLargeRecordLosesOnlyItsValue(t *testing.T) {
	p, addrs := newKafka(t)
	createTopic(t, addrs, "small.dlq", 4096)
	cl, err := p.Get(nil, "small.dlq", "dead_letter_topic")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := fanout.Message{Topic: "orders", Partition: 1, Offset: 7, Key: []byte("k"), Value: make([]byte, 10000)}
	if err := DeadLetter(cl, "small.dlq", "billing")(context.Background(), m, errors.New("413"), 1); err != nil {
		t.Fatal(err)
	}
	got := consume(t, addrs, "small.dlq", 1)[0]
	omitted := ""
	for _, h := range got.Headers {
		if h.Key == DLQHeaderValueOmitted {
			omitted = string(h.Value)
		}
	}
	if len(got.Value) != 0 || omitted != "10000" || string(got.Key) != "k" {
		t.Fatalf("dead letter: key %q, %d value bytes, %s=%q", got.Key, len(got.Value), DLQHeaderValueOmitted, omitted)
	}
}

// Check refuses a missing dead-letter topic, naming it and the field.
func TestProducers_checkNamesMissingRequiredTopics(t *testing.T) {
	p, _ := newKafka(t, "present")
	if _, err := p.Get(nil, "present", "receivers[0].routes[0].dead_letter_topic"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(nil, "orders.dlq", "receivers[0].routes[1].dead_letter_topic"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(nil, "optional-destination", ""); err != nil {
		t.Fatal(err)
	}
	p.newTopicGrace = 0
	err := p.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), `receivers[0].routes[1].dead_letter_topic: topic "orders.dlq"`) ||
		strings.Contains(err.Error(), "present") || strings.Contains(err.Error(), "optional") {
		t.Fatalf("Check = %v", err)
	}
}

// A required topic created while Check runs (a deploy that creates topics
// and starts the worker at once) is found: Check asks again while the
// broker does not know it yet.
func TestProducers_checkWaitsForANewTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	described := make(chan struct{}, 16)
	c.ControlKey(int16(kmsg.DescribeConfigs), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case described <- struct{}{}:
		default:
		}
		return nil, nil, false
	})
	p := NewProducers([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, 2*time.Second)
	defer p.Close()
	if _, err := p.Get(nil, "late.dlq", "receivers[0].routes[0].dead_letter_topic"); err != nil {
		t.Fatal(err)
	}
	checked := make(chan error, 1)
	go func() { checked <- p.Check(context.Background()) }()
	// kfake handles requests one at a time: the topic is created after
	// the first DescribeConfigs was answered without it.
	<-described
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(context.Background(), 1, 1, nil, "late.dlq"); err != nil {
		t.Fatal(err)
	}
	if err := <-checked; err != nil {
		t.Fatalf("Check = %v, want the topic created meanwhile found", err)
	}
	if len(described) == 0 {
		t.Fatal("Check described the topics once: it never saw the topic missing")
	}
}

// A record older than the producer's delivery timeout is dead-lettered
// (franz-go measures that timeout from a record's timestamp, so the dead
// letter must not carry the original's, or it times out before it is sent).
func TestDeadLetter_oldRecord(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "old.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := NewProducers([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, 2*time.Second)
	defer p.Close()
	cl, err := p.Get(nil, "old.dlq", "dead_letter_topic")
	if err != nil {
		t.Fatal(err)
	}
	m := fanout.Message{Topic: "orders", Offset: 1, Value: []byte("v"), Timestamp: time.Now().Add(-time.Hour).Truncate(time.Millisecond)}
	if err := DeadLetter(cl, "old.dlq", "r")(context.Background(), m, errors.New("400"), 1); err != nil {
		t.Fatalf("dead-lettering an hour-old record: %v", err)
	}
	// The original's timestamp travels in fanout-timestamp.
	rd, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("old.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fs := rd.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 {
		t.Fatalf("got %d dead letters, want 1", len(recs))
	}
	want := strconv.FormatInt(m.Timestamp.UnixMilli(), 10)
	for _, h := range recs[0].Headers {
		if h.Key == DLQHeaderTimestamp {
			if string(h.Value) != want {
				t.Fatalf("%s = %s, want %s", DLQHeaderTimestamp, h.Value, want)
			}
			return
		}
	}
	t.Fatalf("dead letter has no %s header: %v", DLQHeaderTimestamp, recs[0].Headers)
}
