package routes

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// defaultBatchMaxBytes is franz-go's own record batch limit, used for a
// topic whose max.message.bytes is not known.
const defaultBatchMaxBytes = 1_000_012

// ProducerBufferBytes bounds the records each producer client buffers
// (franz-go's default is unbounded); a produce waits while it is full.
const ProducerBufferBytes = 32 << 20

// Producers hands out one shared producer client per cluster, for kafka
// routes and dead-letter topics, and closes them all. Clients are
// idempotent (franz-go's default) with acks=all, and give up on a record
// after RecordTimeout so that the engine's retry and backoff take over.
// Each client sizes its record limit per topic from the topic's
// max.message.bytes, read by Check before the first record is produced.
type Producers struct {
	base          []kgo.Opt // connection options: brokers, TLS, SASL, logger
	recordTimeout time.Duration
	// newTopicGrace is how long Check waits for a required topic the
	// broker does not know yet (topicGrace; tests shorten it).
	newTopicGrace time.Duration

	mu      sync.Mutex // protects clients and topics
	clients map[string]*kgo.Client
	topics  map[string]map[string]string // cluster → topic → field path (empty: optional)

	// limitsMu protects limits and parts. It is separate from mu because
	// franz-go asks for a limit while Get builds a client under mu.
	limitsMu sync.RWMutex
	limits   map[string]map[string]int32 // cluster → topic → max.message.bytes
	parts    map[string]map[string]int32 // cluster → topic → partitions
}

// NewProducers returns a set whose default cluster is reached with base
// (which must include the seed brokers).
func NewProducers(base []kgo.Opt, recordTimeout time.Duration) *Producers {
	if recordTimeout <= 0 {
		recordTimeout = 30 * time.Second
	}
	return &Producers{base: base, recordTimeout: recordTimeout, newTopicGrace: topicGrace, clients: map[string]*kgo.Client{},
		topics: map[string]map[string]string{}, limits: map[string]map[string]int32{}, parts: map[string]map[string]int32{}}
}

// topicGrace is how long Check gives a required topic to appear: a topic
// created a moment before the worker starts may not be known to every
// broker yet (UNKNOWN_TOPIC_OR_PARTITION for a while).
const topicGrace = 5 * time.Second

func clusterKey(brokers []string) string {
	if len(brokers) == 0 {
		return ""
	}
	b := slices.Clone(brokers)
	slices.Sort(b)
	return strings.Join(b, ",")
}

// Get returns the client for brokers, or for the default cluster when
// brokers is empty, and registers topic as one it produces to. A topic
// with a field path (say receivers[0].routes[1].dead_letter_topic) must
// exist: Check fails naming it when it does not. Another cluster shares
// the default's TLS and SASL settings.
func (p *Producers) Get(brokers []string, topic, requiredBy string) (*kgo.Client, error) {
	return p.get(brokers, topic, requiredBy, false)
}

// Spill returns the client spill routes produce through on the default
// cluster: one of its own, whose records go to the partition they name
// (see SpillRoute), and registers topic as required by requiredBy.
func (p *Producers) Spill(topic, requiredBy string) (*kgo.Client, error) {
	return p.get(nil, topic, requiredBy, true)
}

// Partitions reports the partitions of topic on the default cluster, as
// Check read them; 0 before.
func (p *Producers) Partitions(topic string) int32 {
	p.limitsMu.RLock()
	defer p.limitsMu.RUnlock()
	return p.parts[""][topic]
}

func (p *Producers) get(brokers []string, topic, requiredBy string, manual bool) (*kgo.Client, error) {
	key := clusterKey(brokers)
	clientKey := key
	if manual {
		clientKey = "spill|" + key
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.topics[key] == nil {
		p.topics[key] = map[string]string{}
	}
	if prev, ok := p.topics[key][topic]; !ok || prev == "" {
		p.topics[key][topic] = requiredBy
	}
	if cl := p.clients[clientKey]; cl != nil {
		return cl, nil
	}
	opts := slices.Clone(p.base)
	if len(brokers) > 0 {
		opts = append(opts, kgo.SeedBrokers(brokers...))
	}
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(p.recordTimeout),
		kgo.ProducerLinger(time.Millisecond),
		kgo.MaxBufferedBytes(ProducerBufferBytes),
		kgo.ProducerBatchMaxBytesFn(func(topic string) int32 { return p.limit(key, topic) }),
	)
	if manual {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	p.clients[clientKey] = cl
	return cl, nil
}

// limit is the record batch limit for topic on cluster key.
func (p *Producers) limit(key, topic string) int32 {
	p.limitsMu.RLock()
	defer p.limitsMu.RUnlock()
	if n, ok := p.limits[key][topic]; ok {
		return n
	}
	return defaultBatchMaxBytes
}

// describe reads names' configurations, asking again for up to
// newTopicGrace while a required topic is unknown to the broker.
func (p *Producers) describe(ctx context.Context, cl *kgo.Client, names []string, required map[string]string) (kadm.ResourceConfigs, error) {
	deadline := time.Now().Add(p.newTopicGrace)
	for {
		configs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, names...)
		if err != nil {
			return nil, err
		}
		unknown := slices.ContainsFunc(configs, func(rc kadm.ResourceConfig) bool {
			return required[rc.Name] != "" && errors.Is(rc.Err, kerr.UnknownTopicOrPartition)
		})
		if !unknown || time.Now().After(deadline) {
			return configs, nil
		}
		select {
		case <-ctx.Done():
			return configs, nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Check reads every registered topic's max.message.bytes, so that records
// as large as the topic takes are produced (franz-go's own limit is
// smaller than Kafka's default), and fails naming each required topic
// that does not exist (after topicGrace: a topic created a moment ago may
// not be known yet). Call it once before the first record is produced.
func (p *Producers) Check(ctx context.Context) error {
	p.mu.Lock()
	type work struct {
		key    string
		cl     *kgo.Client
		topics map[string]string
	}
	var todo []work
	for key, topics := range p.topics {
		cl := p.clients[key]
		if cl == nil {
			cl = p.clients["spill|"+key]
		}
		todo = append(todo, work{key, cl, maps.Clone(topics)})
	}
	p.mu.Unlock()
	sort.Slice(todo, func(i, j int) bool { return todo[i].key < todo[j].key })
	var errs []error
	for _, w := range todo {
		names := make([]string, 0, len(w.topics))
		for t := range w.topics {
			names = append(names, t)
		}
		sort.Strings(names)
		configs, err := p.describe(ctx, w.cl, names, w.topics)
		if err != nil {
			errs = append(errs, fmt.Errorf("kafka: describe topics %v: %w", names, err))
			continue
		}
		limits := map[string]int32{}
		for _, rc := range configs {
			if rc.Err != nil {
				if path := w.topics[rc.Name]; path != "" {
					errs = append(errs, fmt.Errorf("%s: topic %q: %w", path, rc.Name, rc.Err))
				}
				continue
			}
			for _, c := range rc.Configs {
				if c.Key == "max.message.bytes" && c.Value != nil {
					if n, err := strconv.ParseInt(*c.Value, 10, 32); err == nil && n >= 512 {
						limits[rc.Name] = int32(n)
					}
				}
			}
		}
		parts := map[string]int32{}
		if details, err := kadm.NewClient(w.cl).ListTopics(ctx, names...); err == nil {
			for _, d := range details {
				if d.Err == nil {
					parts[d.Topic] = int32(len(d.Partitions))
				}
			}
		}
		p.limitsMu.Lock()
		p.limits[w.key] = limits
		p.parts[w.key] = parts
		p.limitsMu.Unlock()
	}
	return errors.Join(errs...)
}

// Close flushes nothing (every produce is synchronous) and closes every
// client.
func (p *Producers) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, cl := range p.clients {
		cl.Close()
		delete(p.clients, k)
	}
}
