package routes

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter headers, added to the original record's headers.
const (
	DLQHeaderTopic     = "fanout-topic"
	DLQHeaderPartition = "fanout-partition"
	DLQHeaderOffset    = "fanout-offset"
	// DLQHeaderTimestamp is the original's timestamp, Unix milliseconds;
	// absent when it had none. The dead letter's own timestamp is when it
	// was written (see DeadLetter).
	DLQHeaderTimestamp    = "fanout-timestamp"
	DLQHeaderRoute        = "fanout-route"
	DLQHeaderError        = "fanout-error"
	DLQHeaderAttempts     = "fanout-attempts"
	DLQHeaderValueOmitted = "fanout-value-omitted"
)

// maxDLQError bounds the error text carried in the fanout-error header.
const maxDLQError = 1024

// DeadLetter returns a fanout.DeadLetterFunc that publishes a failed record
// to topic through cl: the original key, value and headers, plus the
// fanout-* headers naming where it came from, the route, the last error and
// the number of attempts. It returns once the broker acknowledged. A record
// too large for the topic is published without its value, with
// fanout-value-omitted giving the value's size: the original stays in the
// receiver's topic at the offset the headers name. A publish that cannot
// succeed by retrying is returned as a fanout.Permanent error.
func DeadLetter(cl *kgo.Client, topic, route string) fanout.DeadLetterFunc {
	return func(ctx context.Context, m fanout.Message, cause error, attempts int) error {
		msg := ""
		if cause != nil {
			msg = cause.Error()
			if len(msg) > maxDLQError {
				msg = msg[:maxDLQError]
			}
		}
		hs := appendOrigin(kafkaHeaders(m.Headers, 8), m)
		hs = append(hs,
			kgo.RecordHeader{Key: DLQHeaderRoute, Value: []byte(route)},
			kgo.RecordHeader{Key: DLQHeaderError, Value: []byte(msg)},
			kgo.RecordHeader{Key: DLQHeaderAttempts, Value: []byte(strconv.Itoa(attempts))},
		)
		// No Timestamp: franz-go measures RecordDeliveryTimeout from a
		// record's timestamp, so an old record's would time out before it
		// was sent, for ever. The broker stamps the dead letter; the
		// original's time is in fanout-timestamp.
		rec := &kgo.Record{Topic: topic, Key: m.Key, Value: m.Value, Headers: hs}
		err := cl.ProduceSync(ctx, rec).FirstErr()
		if errors.Is(err, kerr.MessageTooLarge) && len(m.Value) > 0 {
			rec = &kgo.Record{Topic: topic, Key: m.Key,
				Headers: append(hs, kgo.RecordHeader{Key: DLQHeaderValueOmitted, Value: []byte(strconv.Itoa(len(m.Value)))})}
			err = cl.ProduceSync(ctx, rec).FirstErr()
		}
		if err != nil {
			return classifyProduce(fmt.Errorf("dead-letter %s for route %q: %w", topic, route, err))
		}
		return nil
	}
}

// appendOrigin appends the headers naming where m came from: its topic,
// partition, offset and, when it has one, its timestamp (the dead letter
// and the parked record each get a timestamp of their own).
func appendOrigin(hs []kgo.RecordHeader, m fanout.Message) []kgo.RecordHeader {
	hs = append(hs,
		kgo.RecordHeader{Key: DLQHeaderTopic, Value: []byte(m.Topic)},
		kgo.RecordHeader{Key: DLQHeaderPartition, Value: []byte(strconv.Itoa(int(m.Partition)))},
		kgo.RecordHeader{Key: DLQHeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)
	if !m.Timestamp.IsZero() {
		hs = append(hs, kgo.RecordHeader{Key: DLQHeaderTimestamp, Value: []byte(strconv.FormatInt(m.Timestamp.UnixMilli(), 10))})
	}
	return hs
}
