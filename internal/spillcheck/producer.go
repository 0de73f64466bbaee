package spillcheck

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// keys is how many distinct record keys the producer uses: few enough that
// every key has many records, so per-key order means something.
const keys = 50

// coord is where a record is in the receiver's topic.
type coord struct {
	partition int32
	offset    int64
}

// produced is one record the broker acknowledged.
type produced struct {
	seq        int64
	key, value string
	timestamp  time.Time // the record's timestamp, as the client set it
	ackAt      time.Time // when the broker's acknowledgement arrived
	final      bool      // of the batch produced after re-attaching
}

// producer produces the receiver's records and keeps a ledger of every
// acknowledged one by its coordinates.
type producer struct {
	cl    *kgo.Client
	topic string
	seq   atomic.Int64

	mu       sync.Mutex // protects the fields below
	ledger   map[coord]produced
	failed   int
	firstErr error
}

func newProducer(brokers []string, topic string) (*producer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(2*time.Millisecond),
		kgo.RecordDeliveryTimeout(30*time.Second))
	if err != nil {
		return nil, err
	}
	return &producer{cl: cl, topic: topic, ledger: map[coord]produced{}}, nil
}

// produce produces one record without waiting for it.
func (p *producer) produce(ctx context.Context, final bool) {
	n := p.seq.Add(1)
	seq := strconv.FormatInt(n, 10)
	rec := &kgo.Record{
		Topic:   p.topic,
		Key:     []byte(fmt.Sprintf("k%02d", n%keys)),
		Value:   []byte(fmt.Sprintf("value-%s-%x", seq, uint64(n)*0x9e3779b97f4a7c15)),
		Headers: []kgo.RecordHeader{{Key: "seq", Value: []byte(seq)}},
	}
	p.cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
		now := time.Now()
		p.mu.Lock()
		defer p.mu.Unlock()
		if err != nil {
			p.failed++
			if p.firstErr == nil {
				p.firstErr = err
			}
			return
		}
		p.ledger[coord{r.Partition, r.Offset}] = produced{seq: n, key: string(r.Key), value: string(r.Value),
			timestamp: r.Timestamp, ackAt: now, final: final}
	})
}

// steadily produces rate records a second until ctx ends, then waits for
// the acknowledgements of what it produced.
func (p *producer) steadily(ctx context.Context, rate int) {
	const tick = 10 * time.Millisecond
	per := float64(rate) * tick.Seconds()
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	sent := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			// catch up on ticks a busy machine skipped, without bursts
			due := int(now.Sub(start).Seconds()*float64(rate)) - sent
			for range min(due, int(4*per)+1) {
				p.produce(context.WithoutCancel(ctx), false)
				sent++
			}
		}
	}
}

// batch produces n records spread over d and waits for them all.
func (p *producer) batch(ctx context.Context, n int, d time.Duration) error {
	every := d / time.Duration(n)
	for i := range n {
		p.produce(ctx, true)
		if i < n-1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(every):
			}
		}
	}
	return p.flush(ctx)
}

// flush waits for every record produced so far, and reports a produce that
// failed.
func (p *producer) flush(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.cl.Flush(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed > 0 {
		return fmt.Errorf("%d produces failed, the first: %w", p.failed, p.firstErr)
	}
	return nil
}

// records returns the ledger, sorted by partition and offset.
func (p *producer) records() ([]coord, map[coord]produced) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[coord]produced, len(p.ledger))
	cs := make([]coord, 0, len(p.ledger))
	for c, r := range p.ledger {
		out[c] = r
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].partition != cs[j].partition {
			return cs[i].partition < cs[j].partition
		}
		return cs[i].offset < cs[j].offset
	})
	return cs, out
}

func (p *producer) close() { p.cl.Close() }
