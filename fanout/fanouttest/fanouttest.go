// Package fanouttest holds the routes the tests of several packages share:
// a recording route, a stalled one and a failing one. It is imported by
// tests only. (The fanout package's own tests cannot import it, as it
// imports fanout; they keep a few lines of their own.)
package fanouttest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/receiver-fanout/fanout/fanout"
)

// Recorder is a route that records every record it acknowledged, keyed
// "topic/partition/offset", with the last message seen for each. Fn, when
// set, runs first: its error is the delivery's, and nothing is recorded.
type Recorder struct {
	name string
	Fn   func(ctx context.Context, m fanout.Message) error

	mu   sync.Mutex // protects seen and last
	seen map[string]int
	last map[string]fanout.Message
}

var _ fanout.Route = (*Recorder)(nil)

// NewRecorder returns a recorder named name.
func NewRecorder(name string) *Recorder {
	return &Recorder{name: name, seen: map[string]int{}, last: map[string]fanout.Message{}}
}

// Name returns the route name.
func (r *Recorder) Name() string { return r.name }

// Deliver runs Fn, then records m.
func (r *Recorder) Deliver(ctx context.Context, m fanout.Message) error {
	if r.Fn != nil {
		if err := r.Fn(ctx, m); err != nil {
			return err
		}
	}
	k := Key(m.Topic, m.Partition, m.Offset)
	r.mu.Lock()
	r.seen[k]++
	r.last[k] = m
	r.mu.Unlock()
	return nil
}

// Key is how a Recorder keys a record: "topic/partition/offset".
func Key(topic string, partition int32, offset int64) string {
	return fmt.Sprintf("%s/%d/%d", topic, partition, offset)
}

// Distinct is how many different records of topic were recorded.
func (r *Recorder) Distinct(topic string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k := range r.seen {
		if strings.HasPrefix(k, topic+"/") {
			n++
		}
	}
	return n
}

// Duplicates is how many deliveries repeated a record already recorded.
func (r *Recorder) Duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := 0
	for _, n := range r.seen {
		d += n - 1
	}
	return d
}

// Seen returns a copy of the deliveries recorded per key.
func (r *Recorder) Seen() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.seen))
	for k, n := range r.seen {
		out[k] = n
	}
	return out
}

// Last returns the last message recorded for key, and whether there was
// one.
func (r *Recorder) Last(key string) (fanout.Message, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.last[key]
	return m, ok
}

// Stalled returns a recorder whose deliveries block until release is called
// or their context ends: a destination that stopped answering. release is
// idempotent; call it (deferred) before the consumer stops, or its drain
// waits for the stalled deliveries.
func Stalled(name string) (r *Recorder, release func()) {
	ch := make(chan struct{})
	var once sync.Once
	r = NewRecorder(name)
	r.Fn = func(ctx context.Context, _ fanout.Message) error {
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return r, func() { once.Do(func() { close(ch) }) }
}

// Failing returns a recorder whose first n deliveries fail with err.
func Failing(name string, n int, err error) *Recorder {
	r := NewRecorder(name)
	var mu sync.Mutex
	left := n
	r.Fn = func(context.Context, fanout.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if left > 0 {
			left--
			return err
		}
		return nil
	}
	return r
}
