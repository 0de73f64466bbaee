package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/alerting"
	"github.com/receiver-fanout/fanout/internal/testkit"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

// produceOrders writes n records (one of them "poison") and returns them by
// idempotency key.
func produceOrders(t *testing.T, addrs []string, n int) map[string]*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[string]*kgo.Record{}
	for i := range n {
		v := fmt.Sprintf("order-%d", i)
		if i == n/2 {
			v = "poison"
		}
		rec := &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprintf("customer-%d", i%7)), Value: []byte(v),
			Headers: []kgo.RecordHeader{{Key: "seq", Value: []byte(strconv.Itoa(i))}}}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("orders/%d/%d", rec.Partition, rec.Offset)] = rec
	}
	return out
}

func consumeAll(t *testing.T, addrs []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %s", len(out), n, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func newAdmin(t *testing.T, addrs []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// checkMetricsEndpoint scrapes a running worker: /healthz and /readyz
// answer 200, and every metric the shipped rules and dashboard use is
// exported, so rules and code cannot drift apart.
func checkMetricsEndpoint(t *testing.T, base string) {
	t.Helper()
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	exported := map[string]bool{}
	var samples []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE ") {
			exported[strings.Fields(line)[2]] = true
		} else if !strings.HasPrefix(line, "#") {
			samples = append(samples, line)
		}
	}
	// franz-go's client metrics (kprom): a series appears with its first
	// event, and a healthy run has these only if a connection failed or
	// closed (alerting/kafka_test.go provokes both).
	for _, name := range []string{"fanout_kafka_connect_errors_total", "fanout_kafka_disconnects_total"} {
		exported[name] = true
	}
	for _, want := range []struct{ name, labels string }{
		{"fanout_kafka_connects_total", `client="consumer"`},
		{"fanout_kafka_connects_total", `client="producer"`},
		{"fanout_kafka_request_duration_e2e_seconds_bucket", `client="consumer"`},
		{"fanout_kafka_request_duration_e2e_seconds_bucket", `client="producer"`},
		{"fanout_kafka_fetch_bytes_total", `client="consumer"`},
		{"fanout_kafka_produce_bytes_total", `client="producer"`},
	} {
		found := false
		for _, s := range samples {
			found = found || (strings.HasPrefix(s, want.name+"{") && strings.Contains(s, want.labels))
		}
		if !found {
			t.Errorf("no %s{%s} series: the Kafka clients' metrics are not exported", want.name, want.labels)
		}
	}
	want, err := alerting.MetricNames("alerting/rules.yml", "alerting/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range want {
		if !exported[name] {
			t.Errorf("metric %s used by the rules or dashboard is not exported by the worker", name)
		}
	}
	if len(want) < 10 {
		t.Fatalf("only %d metric names found in the rules: %v", len(want), want)
	}
}

var freeAddr = testkit.FreeAddr

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
