package routes

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Producers hands out one shared producer client per cluster, for kafka
// routes and dead-letter topics, and closes them all. Clients are
// idempotent (franz-go's default) with acks=all, and give up on a record
// after RecordTimeout so that the engine's retry and backoff take over.
type Producers struct {
	base          []kgo.Opt // connection options: brokers, TLS, SASL, logger
	recordTimeout time.Duration

	mu      sync.Mutex // protects clients
	clients map[string]*kgo.Client
}

// NewProducers returns a set whose default cluster is reached with base
// (which must include the seed brokers).
func NewProducers(base []kgo.Opt, recordTimeout time.Duration) *Producers {
	if recordTimeout <= 0 {
		recordTimeout = 30 * time.Second
	}
	return &Producers{base: base, recordTimeout: recordTimeout, clients: map[string]*kgo.Client{}}
}

// Get returns the client for brokers, or for the default cluster when
// brokers is empty. Another cluster shares the default's TLS and SASL
// settings.
func (p *Producers) Get(brokers []string) (*kgo.Client, error) {
	key := ""
	if len(brokers) > 0 {
		b := slices.Clone(brokers)
		slices.Sort(b)
		key = strings.Join(b, ",")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if cl := p.clients[key]; cl != nil {
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
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	p.clients[key] = cl
	return cl, nil
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
