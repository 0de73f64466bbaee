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
// idempotent with acks=all, and a record is acknowledged to the engine only
// once the broker acknowledged it, so an acknowledgement means the copy is
// durable. It is a fanout.AsyncRoute: the engine keeps many records in
// flight through the one client, which batches them, so forwarding runs at
// the client's speed rather than one broker round trip per worker.
type KafkaRoute struct {
	name  string
	topic string
	cl    *kgo.Client
	// promise is r.finished, made once: a closure per record would be
	// an allocation per record.
	promise func(*kgo.Record, error)
}

var _ fanout.AsyncRoute = (*KafkaRoute)(nil)

// NewKafka returns a route named name producing to topic through cl.
func NewKafka(name, topic string, cl *kgo.Client) *KafkaRoute {
	r := &KafkaRoute{name: name, topic: topic, cl: cl}
	r.promise = r.finished
	return r
}

// Name returns the route name.
func (r *KafkaRoute) Name() string { return r.name }

// Deliver produces the record and waits for the broker's acknowledgement.
func (r *KafkaRoute) Deliver(ctx context.Context, m fanout.Message) error {
	done := make(chan error, 1)
	r.DeliverAsync(ctx, m, fanout.CompletionFunc(func(err error) { done <- err }))
	return <-done
}

// DeliverAsync produces the record and reports the broker's
// acknowledgement, or the produce's error, to done.
func (r *KafkaRoute) DeliverAsync(ctx context.Context, m fanout.Message, done fanout.Completion) {
	p := &produced{Context: ctx, done: done}
	p.rec = kgo.Record{Topic: r.topic, Key: m.Key, Value: m.Value, Headers: kafkaHeaders(m.Headers, 0), Context: p}
	r.cl.Produce(ctx, &p.rec, r.promise)
}

// produced is one record on its way through the producer: the record and
// its completion in one allocation. It is the record's Context (the
// delivery's context, which it embeds), so the route's one promise finds
// the completion from the record.
type produced struct {
	context.Context
	rec  kgo.Record
	done fanout.Completion
}

// finished is the route's promise: it reports a record's produce outcome.
func (r *KafkaRoute) finished(rec *kgo.Record, err error) {
	p := rec.Context.(*produced)
	if err != nil {
		err = classifyProduce(fmt.Errorf("kafka route %q: produce to %s: %w", r.name, r.topic, err))
	}
	p.done.Done(err)
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
