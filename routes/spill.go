package routes

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Spill headers: where a parked record came from (the same coordinates as
// a dead letter's) and when it was made.
const (
	SpillHeaderTopic     = DLQHeaderTopic
	SpillHeaderPartition = DLQHeaderPartition
	SpillHeaderOffset    = DLQHeaderOffset
	// SpillHeaderTimestamp is the original's timestamp, Unix milliseconds;
	// absent when it had none. The parked record itself carries none of
	// its own (franz-go measures the delivery timeout from a record's
	// timestamp, as for dead letters), so the broker stamps it when it
	// is parked.
	SpillHeaderTimestamp = DLQHeaderTimestamp
)

// SpillRoute parks a detached route's records in its spill topic: the
// original key, value and headers plus fanout-topic, fanout-partition,
// fanout-offset and fanout-timestamp. A record goes to spill partition (original partition mod
// the spill topic's partitions), so records of one original partition, and
// so of one key, stay in order. It is the fanout.AsyncRoute of a
// fanout.SpillConfig: the broker's acknowledgement is the route's.
type SpillRoute struct {
	name, topic string
	cl          *kgo.Client // with the manual partitioner (Producers.Spill)
	partitions  func() int32
}

var _ fanout.AsyncRoute = (*SpillRoute)(nil)

// NewSpill returns the spill route of route name, producing to topic
// through cl (see Producers.Spill); partitions reports the spill topic's
// partition count.
func NewSpill(name, topic string, cl *kgo.Client, partitions func() int32) *SpillRoute {
	return &SpillRoute{name: name, topic: topic, cl: cl, partitions: partitions}
}

// Name returns the route's name.
func (r *SpillRoute) Name() string { return r.name }

// Deliver parks m and waits for the broker.
func (r *SpillRoute) Deliver(ctx context.Context, m fanout.Message) error {
	done := make(chan error, 1)
	r.DeliverAsync(ctx, m, fanout.CompletionFunc(func(err error) { done <- err }))
	return <-done
}

// DeliverAsync parks m and reports the broker's acknowledgement.
func (r *SpillRoute) DeliverAsync(ctx context.Context, m fanout.Message, done fanout.Completion) {
	hs := appendOrigin(kafkaHeaders(m.Headers, 4), m)
	n := max(1, r.partitions())
	rec := &kgo.Record{Topic: r.topic, Partition: m.Partition % n, Key: m.Key, Value: m.Value, Headers: hs}
	r.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			err = classifyProduce(fmt.Errorf("spill %s for route %q: %w", r.topic, r.name, err))
		}
		done.Done(err)
	})
}

// Unspill is the record a route sees from a spill topic: the original's
// topic, partition, offset and timestamp from the fanout-* headers (which
// it drops), so the wire carries the original coordinates,
// Idempotency-Key and X-Fanout-Timestamp. The second result is false when
// the coordinate headers are missing or a header is bad: not a parked
// record. (Without fanout-timestamp the parked record's own timestamp
// stays.)
func Unspill(m fanout.Message) (fanout.Message, bool) {
	out := m
	out.Headers = make([]fanout.Header, 0, len(m.Headers))
	var topic, part, off bool
	for _, h := range m.Headers {
		switch h.Key {
		case SpillHeaderTopic:
			out.Topic, topic = string(h.Value), true
		case SpillHeaderPartition:
			p, err := strconv.ParseInt(string(h.Value), 10, 32)
			if err != nil {
				return m, false
			}
			out.Partition, part = int32(p), true
		case SpillHeaderOffset:
			o, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil {
				return m, false
			}
			out.Offset, off = o, true
		case SpillHeaderTimestamp:
			ms, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil {
				return m, false
			}
			out.Timestamp = time.UnixMilli(ms)
		default:
			out.Headers = append(out.Headers, h)
		}
	}
	if !topic || !part || !off {
		return m, false
	}
	if len(out.Headers) == 0 {
		out.Headers = nil
	}
	return out, true
}

// Unspilled wraps a route for a spill topic: every record reaches it as
// Unspill makes it. A record without spill headers is refused permanently
// (straight to the dead-letter topic, if any).
func Unspilled(r fanout.Route) fanout.Route {
	u := unspilled{r: r}
	if a, ok := r.(fanout.AsyncRoute); ok {
		return unspilledAsync{unspilled: u, a: a}
	}
	return u
}

type unspilled struct{ r fanout.Route }

func (u unspilled) Name() string { return u.r.Name() }

func (u unspilled) Deliver(ctx context.Context, m fanout.Message) error {
	om, ok := Unspill(m)
	if !ok {
		return fanout.Permanent(fmt.Errorf("route %q: record %s/%d/%d has no spill headers", u.r.Name(), m.Topic, m.Partition, m.Offset))
	}
	return u.r.Deliver(ctx, om)
}

type unspilledAsync struct {
	unspilled
	a fanout.AsyncRoute
}

func (u unspilledAsync) DeliverAsync(ctx context.Context, m fanout.Message, done fanout.Completion) {
	om, ok := Unspill(m)
	if !ok {
		done.Done(fanout.Permanent(fmt.Errorf("route %q: record %s/%d/%d has no spill headers", u.r.Name(), m.Topic, m.Partition, m.Offset)))
		return
	}
	u.a.DeliverAsync(ctx, om, done)
}

// UnspilledDeadLetter wraps a dead-letter function for a spill topic: the
// dead letter names the original record.
func UnspilledDeadLetter(f fanout.DeadLetterFunc) fanout.DeadLetterFunc {
	if f == nil {
		return nil
	}
	return func(ctx context.Context, m fanout.Message, cause error, attempts int) error {
		if om, ok := Unspill(m); ok {
			m = om
		}
		return f(ctx, m, cause, attempts)
	}
}
