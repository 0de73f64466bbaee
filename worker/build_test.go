package worker

import (
	"bytes"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/config"
	"github.com/receiver-fanout/fanout/fanout"
	"github.com/receiver-fanout/fanout/routes"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// newProducers is a producer set on an in-process cluster with topics.
func newProducers(t *testing.T, topics ...string) *routes.Producers {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p := routes.NewProducers([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, 2*time.Second)
	t.Cleanup(p.Close)
	return p
}

func TestBuild_mapsEveryRouteType(t *testing.T) {
	p := newProducers(t, "audit", "orders.dlq")
	f := &config.File{Receivers: []config.Receiver{{
		Topic: "orders", MaxInflight: 50,
		Routes: []config.Route{
			{Name: "hook", Type: config.RouteHTTP, Workers: 2, Buffer: 10, Ordering: config.OrderingPartition,
				HTTP:            &config.HTTP{URL: "http://127.0.0.1:1/x", Timeout: time.Second},
				Retry:           config.Retry{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Second},
				DeadLetterTopic: "orders.dlq",
				Filter:          &config.Filter{Headers: map[string]string{"type": "a", "v": "1"}}},
			{Name: "audit", Type: config.RouteKafka, Workers: 1, Buffer: 1, Kafka: &config.Kafka{Topic: "audit"}},
			{Name: "trace", Type: config.RouteLog, Workers: 1, Buffer: 1, Ordering: config.OrderingNone},
			{Name: "sink", Type: config.RouteDiscard, Workers: 1, Buffer: 1},
		},
	}}}
	var logs bytes.Buffer
	b, err := build(f, p, &logs)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	r := b.receivers[0]
	if r.Topic != "orders" || r.MaxInflight != 50 || len(r.Routes) != 4 {
		t.Fatalf("receiver %+v", r)
	}
	hook := r.Routes[0]
	if _, ok := hook.Route.(*routes.HTTPRoute); !ok || hook.Workers != 2 || hook.Buffer != 10 || hook.Ordering != fanout.OrderPartition ||
		hook.MaxAttempts != 3 || hook.DeadLetter == nil || hook.Filter == nil || hook.Timeout != time.Second {
		t.Fatalf("http route %+v", hook)
	}
	match := &fanout.Message{Headers: []fanout.Header{{Key: "type", Value: []byte("a")}, {Key: "v", Value: []byte("1")}}}
	partial := &fanout.Message{Headers: []fanout.Header{{Key: "type", Value: []byte("a")}}}
	if !hook.Filter(match) || hook.Filter(partial) || hook.Filter(&fanout.Message{}) {
		t.Fatal("filter must require every configured header")
	}
	if _, ok := r.Routes[1].Route.(*routes.KafkaRoute); !ok || r.Routes[1].DeadLetter != nil {
		t.Fatalf("kafka route %+v", r.Routes[1])
	}
	if _, ok := r.Routes[2].Route.(*routes.LogRoute); !ok || r.Routes[2].Ordering != fanout.OrderNone {
		t.Fatalf("log route %+v", r.Routes[2])
	}
	if _, ok := r.Routes[3].Route.(*routes.DiscardRoute); !ok || r.Routes[3].Ordering != fanout.OrderKey {
		t.Fatalf("discard route %+v", r.Routes[3])
	}
}

func TestBuild_badHTTPOptionNamesTheRoute(t *testing.T) {
	p := newProducers(t, "x")
	f := &config.File{Receivers: []config.Receiver{{Topic: "orders", Routes: []config.Route{
		{Name: "hook", Type: config.RouteHTTP, Workers: 1, Buffer: 1,
			HTTP: &config.HTTP{URL: "http://h/x", Timeout: time.Second, TLS: &config.TLS{CAFile: "/nonexistent/ca.pem"}}},
	}}}}
	_, err := build(f, p, nil)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("receivers[0].routes[0]")) {
		t.Fatalf("err = %v", err)
	}
}
