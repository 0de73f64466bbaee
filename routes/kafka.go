package routes

import (
	"context"
	"errors"
	"fmt"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaRoute forwards each record's key, value and headers to a topic. The
// producer is shared and not owned by the route (see Producers): it is
// idempotent with acks=all, and Deliver returns only once the broker
// acknowledged the record, so an acknowledgement to the engine means the
// copy is durable.
type KafkaRoute struct {
	name  string
	topic string
	cl    *kgo.Client
}

var _ fanout.Route = (*KafkaRoute)(nil)

// NewKafka returns a route named name producing to topic through cl.
func NewKafka(name, topic string, cl *kgo.Client) *KafkaRoute {
	return &KafkaRoute{name: name, topic: topic, cl: cl}
}

// Name returns the route name.
func (r *KafkaRoute) Name() string { return r.name }

// Deliver produces the record and waits for the broker's acknowledgement.
func (r *KafkaRoute) Deliver(ctx context.Context, m fanout.Message) error {
	rec := &kgo.Record{Topic: r.topic, Key: m.Key, Value: m.Value, Headers: kafkaHeaders(m.Headers, 0)}
	if err := r.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return classifyProduce(fmt.Errorf("kafka route %q: produce to %s: %w", r.name, r.topic, err))
	}
	return nil
}

func kafkaHeaders(hs []fanout.Header, extra int) []kgo.RecordHeader {
	if len(hs)+extra == 0 {
		return nil
	}
	out := make([]kgo.RecordHeader, len(hs), len(hs)+extra)
	for i, h := range hs {
		out[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
	}
	return out
}

// classifyProduce marks broker errors that retrying cannot fix (record too
// large, invalid or unauthorized topic) as permanent; everything else,
// timeouts and connection errors included, is retried.
func classifyProduce(err error) error {
	var ke *kerr.Error
	if errors.As(err, &ke) && !ke.Retriable {
		return fanout.Permanent(err)
	}
	return err
}
