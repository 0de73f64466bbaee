package alerting

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaDashboardMetrics are the kprom metrics the dashboard's "Kafka
// clients" row uses. They are metrics the worker exports (through
// NewKafkaMetrics), so they join knownMetrics; TestKafkaMetrics and
// TestExportsEveryRuleMetric check that each of them really is exported.
var kafkaDashboardMetrics = []string{
	"fanout_kafka_connects_total",
	"fanout_kafka_connect_errors_total",
	"fanout_kafka_disconnects_total",
	"fanout_kafka_request_duration_e2e_seconds",
	"fanout_kafka_fetch_bytes_total",
	"fanout_kafka_produce_bytes_total",
}

func init() { knownMetrics = append(knownMetrics, kafkaDashboardMetrics...) }

// isKafkaClientMetric tells the kprom metrics (named by franz-go's plugin,
// checked by TestKafkaMetrics) from the worker's own.
func isKafkaClientMetric(name string) bool { return strings.HasPrefix(name, "fanout_kafka_") }

// kafkaClients is a consumer and three producer clients of kfake, with
// NewKafkaMetrics hooks on one registry, after every event the dashboard
// shows has happened: connections, a failed connection, a closed client's
// disconnects, produces, fetches.
type kafkaClients struct {
	consumer, p1, p3              *kgo.Client
	closeProducers, closeConsumer func()
}

func driveKafkaClients(t *testing.T, reg *prometheus.Registry) *kafkaClients {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	addrs := cluster.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard, not a measure
	defer cancel()

	consumerHook, producerHook := NewKafkaMetrics(reg, "consumer"), NewKafkaMetrics(reg, "producer")
	newClient := func(hook kgo.Hook, opts ...kgo.Opt) *kgo.Client {
		t.Helper()
		cl, err := kgo.NewClient(append(opts, kgo.WithHooks(hook))...)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	k := &kafkaClients{}
	// Two producers share one hook, as the worker's do.
	k.p1 = newClient(producerHook, kgo.SeedBrokers(addrs...))
	p2 := newClient(producerHook, kgo.SeedBrokers(addrs...))
	// A producer whose broker refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	k.p3 = newClient(producerHook, kgo.SeedBrokers(dead))
	k.consumer = newClient(consumerHook, kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var po, co sync.Once
	k.closeProducers = func() { po.Do(func() { k.p1.Close(); k.p3.Close() }) }
	k.closeConsumer = func() { co.Do(k.consumer.Close) }
	t.Cleanup(func() { k.closeProducers(); k.closeConsumer(); cluster.Close() })

	for _, p := range []*kgo.Client{k.p1, p2} {
		if err := p.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for n := 0; n < 2; {
		fs := k.consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 2 records", n)
		}
		n += len(fs.Records())
	}
	pingCtx, pingCancel := context.WithTimeout(ctx, 2*time.Second)
	defer pingCancel()
	if err := k.p3.Ping(pingCtx); err == nil {
		t.Fatalf("ping of %s succeeded", dead)
	}
	p2.Close() // its connections end: a disconnect each
	return k
}

// kafkaSeries returns, for each fanout_kafka_* family gathered from reg,
// the values of the client label its series carry.
func kafkaSeries(t *testing.T, reg *prometheus.Registry) map[string][]string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string][]string{}
	for _, f := range fams {
		if !isKafkaClientMetric(f.GetName()) {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == KafkaClientLabel && !slices.Contains(out[f.GetName()], l.GetValue()) {
					out[f.GetName()] = append(out[f.GetName()], l.GetValue())
				}
			}
		}
	}
	return out
}

// TestKafkaMetrics: the producers share one hook without a registration
// panic, every metric the dashboard uses appears with its client label
// once its event happened, and the series go when the last client of
// their kind closed.
func TestKafkaMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	k := driveKafkaClients(t, reg)

	got := kafkaSeries(t, reg)
	want := map[string][]string{
		"fanout_kafka_connects_total":               {"consumer", "producer"},
		"fanout_kafka_connect_errors_total":         {"producer"},
		"fanout_kafka_disconnects_total":            {"producer"},
		"fanout_kafka_request_duration_e2e_seconds": {"consumer", "producer"},
		"fanout_kafka_fetch_bytes_total":            {"consumer"},
		"fanout_kafka_produce_bytes_total":          {"producer"},
		"fanout_kafka_write_bytes_total":            {"consumer", "producer"},
		"fanout_kafka_read_bytes_total":             {"consumer", "producer"},
	}
	for _, name := range kafkaDashboardMetrics {
		if _, ok := want[name]; !ok {
			t.Errorf("the dashboard uses %s, which this test does not check", name)
		}
	}
	for name, clients := range want {
		for _, cl := range clients {
			if !slices.Contains(got[name], cl) {
				t.Errorf("%s{client=%q} not exported; got %v", name, cl, got)
			}
		}
	}

	k.closeProducers()
	got = kafkaSeries(t, reg)
	for name, clients := range got {
		if slices.Contains(clients, "producer") {
			t.Errorf("%s{client=\"producer\"} still registered after every producer closed", name)
		}
	}
	if !slices.Contains(got["fanout_kafka_connects_total"], "consumer") {
		t.Errorf("the consumer's series went with the producers: %v", got)
	}
	k.closeConsumer()
	if got := kafkaSeries(t, reg); len(got) != 0 {
		t.Errorf("series left after every client closed: %v", got)
	}
}
