package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// topicSpec is a topic of the embedded cluster.
type topicSpec struct {
	name       string
	partitions int32
}

// cluster is the embedded Kafka: one kfake broker on a random loopback
// port. Its addresses are read once at start, because a kfake method
// called after Close blocks forever.
type cluster struct {
	c     *kfake.Cluster
	addrs []string
	once  sync.Once
}

func startCluster(topics []topicSpec) (*cluster, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	for _, t := range topics {
		opts = append(opts, kfake.SeedTopics(t.partitions, t.name))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, err
	}
	return &cluster{c: c, addrs: c.ListenAddrs()}, nil
}

func (c *cluster) close() { c.once.Do(c.c.Close) }

// generator produces events to every receiver topic at a steady rate with
// its own franz-go client, as the systems upstream of the worker would.
type generator struct {
	cl     *kgo.Client
	rate   int
	topics []string
	// produced counts the events the broker acknowledged, per topic, as
	// demo_events_produced_total on the demo's own registry.
	produced *prometheus.CounterVec
	ctx      context.Context // ends when the generator stops
	cancel   context.CancelFunc
	done     chan struct{}
	once     sync.Once
}

// eventKinds are the content of the generated events, per topic: the key
// prefix, how many distinct keys, and the event type header.
var eventKinds = map[string]struct {
	keyPrefix string
	keys      int
	event     string
}{
	"orders":   {"customer-", 1000, "order.created"},
	"payments": {"account-", 500, "payment.captured"},
}

func startGenerator(brokers, topics []string, rate int, reg prometheus.Registerer) (*generator, error) {
	produced := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "demo_events_produced_total",
		Help: "Events the demo's generator produced and the broker acknowledged.",
	}, []string{"topic"})
	if err := reg.Register(produced); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("fanout-demo-generator"),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	if err != nil {
		return nil, err
	}
	g := &generator{
		cl:       cl,
		rate:     rate,
		topics:   topics,
		produced: produced,
		done:     make(chan struct{}),
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	for _, t := range topics {
		produced.WithLabelValues(t) // 0 from the start, so that rate() sees the first events
	}
	go g.run()
	return g, nil
}

// run produces rate events a second to each topic: every tick it produces
// what is due since the start, so a late tick catches up instead of
// lowering the rate.
func (g *generator) run() {
	defer close(g.done)
	start := time.Now()
	sent := make([]int64, len(g.topics))
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case now := <-tick.C:
			due := int64(now.Sub(start).Seconds() * float64(g.rate))
			for i, topic := range g.topics {
				for ; sent[i] < due; sent[i]++ {
					g.produce(topic, sent[i])
				}
			}
		}
	}
}

func (g *generator) produce(topic string, seq int64) {
	k := eventKinds[topic]
	key := k.keyPrefix + strconv.Itoa(rand.IntN(k.keys))
	value := fmt.Appendf(nil, `{"seq":%d,"%s":%q,"amount_cents":%d,"at":%q}`,
		seq, k.keyPrefix[:len(k.keyPrefix)-1], key, 100+rand.IntN(99900), time.Now().UTC().Format(time.RFC3339Nano))
	rec := &kgo.Record{
		Topic: topic,
		Key:   []byte(key),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: "content-type", Value: []byte("application/json")},
			{Key: "event-type", Value: []byte(k.event)},
		},
	}
	// A full produce buffer blocks here (until stop); the ticker then
	// catches up.
	g.cl.Produce(g.ctx, rec, func(r *kgo.Record, err error) {
		if err == nil {
			g.produced.WithLabelValues(r.Topic).Inc()
		}
	})
}

// stop stops generating, gives buffered events a moment to reach the
// broker and closes the client. It is idempotent.
func (g *generator) stop() {
	g.once.Do(func() {
		g.cancel()
		<-g.done
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = g.cl.Flush(ctx)
		g.cl.Close()
	})
}
