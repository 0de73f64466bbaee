// Package routetest is the contract every fanout.Route must meet, as a
// reusable test:
//
//	func TestDiscardContract(t *testing.T) {
//		routetest.Run(t, func(t *testing.T) fanout.Route {
//			return routes.NewDiscard("sink")
//		})
//	}
//
// newRoute must return a route ready to acknowledge records (an HTTP route
// pointed at a server that answers 200, say) and register its own cleanup.
// It is called once per subtest, so subtests never share a route. Run the
// suite with -race: one subtest delivers concurrently.
//
// A route that is a fanout.AsyncRoute is driven through DeliverAsync, as
// the engine drives it, and must also report every outcome exactly once
// with many deliveries in flight at once.
package routetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
)

// hang is how long a Deliver may take before the suite calls it stuck. It
// only bounds failures; passing runs never wait for it.
const hang = 10 * time.Second

// Run runs the contract subtests against routes made by newRoute.
func Run(t *testing.T, newRoute func(t *testing.T) fanout.Route) {
	t.Helper()

	t.Run("name", func(t *testing.T) {
		r := newRoute(t)
		name := r.Name()
		if name == "" {
			t.Fatal("Name() is empty")
		}
		if again := r.Name(); again != name {
			t.Fatalf("Name() changed from %q to %q", name, again)
		}
	})

	t.Run("delivers assorted records", func(t *testing.T) {
		r := newRoute(t)
		for i, m := range Messages() {
			if err := deliver(t, r, context.Background(), m); err != nil {
				t.Errorf("message %d: Deliver: %v", i, err)
			}
		}
	})

	t.Run("leaves the message unchanged", func(t *testing.T) {
		r := newRoute(t)
		for i, m := range Messages() {
			before := clone(m)
			if err := deliver(t, r, context.Background(), m); err != nil {
				t.Fatalf("message %d: Deliver: %v", i, err)
			}
			if !equal(m, before) {
				t.Fatalf("message %d: Deliver modified the message:\n got %+v\nwant %+v", i, m, before)
			}
		}
	})

	t.Run("concurrent deliveries", func(t *testing.T) {
		r := newRoute(t)
		const goroutines, each = 8, 16
		msgs := Messages()
		// One shared message across goroutines, as the engine shares
		// records across routes: a route that writes to it races.
		shared := msgs[len(msgs)-1]
		var wg sync.WaitGroup
		errs := make(chan error, goroutines*each)
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					m := shared
					m.Offset = int64(g*each + i)
					// t.Fatal may not run off the test goroutine.
					if err := deliverWithin(context.Background(), r, m); err != nil {
						errs <- fmt.Errorf("goroutine %d, message %d: %w", g, i, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("cancelled context returns promptly", func(t *testing.T) {
		r := newRoute(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		// Either outcome is fine: the record was delivered (nil) or not
		// (an error). Declaring it permanent is not: the engine would
		// dead-letter a record only because it was shutting down.
		err := deliver(t, r, ctx, Messages()[0])
		if errors.Is(err, fanout.ErrPermanent) {
			t.Fatalf("Deliver with a cancelled ctx returned a permanent error: %v", err)
		}
	})

	if _, ok := newRoute(t).(fanout.AsyncRoute); ok {
		t.Run("asynchronous: many in flight, each outcome once", func(t *testing.T) {
			r := newRoute(t).(fanout.AsyncRoute)
			const n = 256
			calls := make([]atomic.Int32, n)
			done := make(chan int, 2*n)
			m := Messages()[0]
			for i := range n {
				m.Offset = int64(i)
				r.DeliverAsync(context.Background(), m, fanout.CompletionFunc(func(err error) {
					if err != nil {
						t.Errorf("delivery %d: %v", i, err)
					}
					calls[i].Add(1)
					done <- i
				}))
			}
			timer := time.NewTimer(hang)
			defer timer.Stop()
			for range n {
				select {
				case <-done:
				case <-timer.C:
					t.Fatalf("not every outcome within %s", hang)
				}
			}
			// One more delivery after all: a late second call of an
			// earlier done would be seen by now.
			if err := deliver(t, r, context.Background(), Messages()[0]); err != nil {
				t.Fatal(err)
			}
			for i := range calls {
				if c := calls[i].Load(); c != 1 {
					t.Errorf("delivery %d: done called %d times", i, c)
				}
			}
		})
	}

	t.Run("close is idempotent", func(t *testing.T) {
		r := newRoute(t)
		c, ok := r.(io.Closer)
		if !ok {
			t.Skip("route has no Close")
		}
		if err := deliver(t, r, context.Background(), Messages()[0]); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		for i := range 2 {
			if err := c.Close(); err != nil {
				t.Fatalf("Close #%d: %v", i+1, err)
			}
		}
	})
}

// Messages returns the records the suite delivers: typical, empty, null
// and binary fields, repeated and odd headers. Each call returns fresh
// copies.
func Messages() []fanout.Message {
	ts := time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC)
	return []fanout.Message{
		{
			Topic: "orders", Partition: 0, Offset: 0, Attempt: 1, Timestamp: ts,
			Key: []byte("order-1"), Value: []byte(`{"id":1}`),
			Headers: []fanout.Header{{Key: "content-type", Value: []byte("application/json")}},
		},
		{Topic: "orders", Partition: 1, Offset: 1, Attempt: 1}, // null key and value, no timestamp
		{Topic: "orders", Partition: 2, Offset: 2, Attempt: 3, Key: []byte{}, Value: []byte{}},
		{
			Topic: "orders", Partition: 3, Offset: 1 << 40, Attempt: 2, Timestamp: ts,
			Key:   []byte{0x00, 0xff, 0x10, ' '},
			Value: []byte{0x00, 0x01, 0xfe, 0xff, '\n'},
			Headers: []fanout.Header{
				{Key: "trace", Value: []byte("abc")},
				{Key: "trace", Value: []byte("def")},
				{Key: "bin", Value: []byte{0x00, 0xff}},
				{Key: "with space:colon", Value: []byte(" padded ")},
				{Key: "", Value: nil},
				{Key: "ünï", Value: []byte("ünï")},
			},
		},
	}
}

// deliver calls Deliver and fails the test if it does not return within
// hang.
func deliver(t *testing.T, r fanout.Route, ctx context.Context, m fanout.Message) error {
	t.Helper()
	err := deliverWithin(ctx, r, m)
	if errors.Is(err, errHung) {
		t.Fatal(err)
	}
	return err
}

var errHung = fmt.Errorf("route: Deliver did not return within %s", hang)

// deliverWithin calls Deliver (DeliverAsync for an asynchronous route,
// waiting for its outcome), giving up after hang with errHung. The Deliver
// goroutine is left behind only on that failure.
func deliverWithin(ctx context.Context, r fanout.Route, m fanout.Message) error {
	done := make(chan error, 2)
	if a, ok := r.(fanout.AsyncRoute); ok {
		a.DeliverAsync(ctx, m, fanout.CompletionFunc(func(err error) { done <- err }))
	} else {
		go func() { done <- r.Deliver(ctx, m) }()
	}
	timer := time.NewTimer(hang)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		return errHung
	}
}

func clone(m fanout.Message) fanout.Message {
	c := m
	c.Key = bytes.Clone(m.Key)
	c.Value = bytes.Clone(m.Value)
	if m.Headers != nil {
		c.Headers = make([]fanout.Header, len(m.Headers))
		for i, h := range m.Headers {
			c.Headers[i] = fanout.Header{Key: h.Key, Value: bytes.Clone(h.Value)}
		}
	}
	return c
}

func equal(a, b fanout.Message) bool {
	if a.Topic != b.Topic || a.Partition != b.Partition || a.Offset != b.Offset ||
		a.Attempt != b.Attempt || !a.Timestamp.Equal(b.Timestamp) ||
		!bytes.Equal(a.Key, b.Key) || !bytes.Equal(a.Value, b.Value) ||
		len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !bytes.Equal(a.Headers[i].Value, b.Headers[i].Value) {
			return false
		}
	}
	return true
}
