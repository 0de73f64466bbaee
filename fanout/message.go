package fanout

import "time"

// Header is one record header. Kafka allows repeated keys, so headers are a
// slice, not a map.
type Header struct {
	Key   string
	Value []byte
}

// Message is the record as the engine and routes see it. It is deliberately
// not a kgo.Record: routes never import a Kafka client.
//
// A route must treat a Message as read-only: the same Key, Value and Headers
// backing arrays are shared by every route of the receiver.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
	// Epoch is opaque to the engine and routes: Receiver.Committable
	// returns the Epoch of the last record of the acknowledged prefix, so a
	// Kafka consumer can commit with its leader epoch.
	Epoch int32

	// Attempt is the 1-based delivery attempt for this route, set by the
	// engine before every call to Route.Deliver.
	Attempt int

	// Skip marks a record that holds its place in offset order but reaches
	// no route (a Kafka transaction marker, say): it completes as soon as
	// it is accepted, so the committable offset moves past it.
	Skip bool
}

// Header returns the value of the first header named key, and whether there
// was one.
func (m *Message) Header(key string) ([]byte, bool) {
	for i := range m.Headers {
		if m.Headers[i].Key == key {
			return m.Headers[i].Value, true
		}
	}
	return nil, false
}
