package routes

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/receiver-fanout/fanout/fanout"
)

// LogRoute writes one JSON object per record, one per line, to a writer:
//
//	{"route":"trace","topic":"orders","partition":3,"offset":42,
//	 "timestamp":"2026-01-02T15:04:05.123456789Z","attempt":1,
//	 "key":"k-1","value":"{\"id\":1}",
//	 "headers":[{"key":"content-type","value":"application/json"}]}
//
// key and value are strings when valid UTF-8; otherwise they are standard
// base64 and key_encoding / value_encoding say "base64" (each header has its
// own value_encoding). A null key or value is omitted; a zero timestamp is
// omitted. Headers keep their order and repeats.
//
// It is safe for concurrent use: each line is written with a single Write
// under a mutex, so lines never interleave.
type LogRoute struct {
	name string

	mu sync.Mutex // serialises writes to w
	w  io.Writer
}

var _ fanout.Route = (*LogRoute)(nil)

// NewLog returns a log route writing to w; nil w means os.Stdout.
func NewLog(name string, w io.Writer) *LogRoute {
	if w == nil {
		w = os.Stdout
	}
	return &LogRoute{name: name, w: w}
}

// Name returns the route name.
func (r *LogRoute) Name() string { return r.name }

type logHeader struct {
	Key           string `json:"key"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding,omitempty"`
}

type logLine struct {
	Route         string      `json:"route"`
	Topic         string      `json:"topic"`
	Partition     int32       `json:"partition"`
	Offset        int64       `json:"offset"`
	Timestamp     string      `json:"timestamp,omitempty"`
	Attempt       int         `json:"attempt,omitempty"`
	Key           *string     `json:"key,omitempty"`
	KeyEncoding   string      `json:"key_encoding,omitempty"`
	Value         *string     `json:"value,omitempty"`
	ValueEncoding string      `json:"value_encoding,omitempty"`
	Headers       []logHeader `json:"headers,omitempty"`
}

// Deliver writes m as one line. A write error is returned, so it is retried.
// A ctx that has already ended is honoured before writing; the write itself
// cannot be interrupted.
func (r *LogRoute) Deliver(ctx context.Context, m fanout.Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("log route %q: %w", r.name, err)
	}
	l := logLine{
		Route:     r.name,
		Topic:     m.Topic,
		Partition: m.Partition,
		Offset:    m.Offset,
		Attempt:   m.Attempt,
	}
	if !m.Timestamp.IsZero() {
		l.Timestamp = m.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	if m.Key != nil {
		s, enc := textOrBase64(m.Key)
		l.Key, l.KeyEncoding = &s, enc
	}
	if m.Value != nil {
		s, enc := textOrBase64(m.Value)
		l.Value, l.ValueEncoding = &s, enc
	}
	if len(m.Headers) > 0 {
		l.Headers = make([]logHeader, len(m.Headers))
		for i, h := range m.Headers {
			// A header key is a Go string, not bytes; encoding/json
			// replaces invalid UTF-8 in it with U+FFFD.
			v, enc := textOrBase64(h.Value)
			l.Headers[i] = logHeader{Key: h.Key, Value: v, ValueEncoding: enc}
		}
	}

	// Encode outside the lock; hold it only for the single Write.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&l); err != nil { // Encode appends the newline
		return fanout.Permanent(fmt.Errorf("log route %q: encode: %w", r.name, err))
	}
	r.mu.Lock()
	_, err := r.w.Write(buf.Bytes())
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("log route %q: write: %w", r.name, err)
	}
	return nil
}

// textOrBase64 returns b as a string when it is valid UTF-8, else as
// standard base64 with the encoding name.
func textOrBase64(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}
