package fanout

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// asyncFunc is an AsyncRoute from a function.
type asyncFunc struct {
	name string
	fn   func(ctx context.Context, m Message, done Completion)
}

func (a asyncFunc) Name() string { return a.name }
func (a asyncFunc) Deliver(ctx context.Context, m Message) error {
	ch := make(chan error, 1)
	a.fn(ctx, m, CompletionFunc(func(err error) { ch <- err }))
	return <-ch
}
func (a asyncFunc) DeliverAsync(ctx context.Context, m Message, done Completion) { a.fn(ctx, m, done) }

// A route that reports outcomes before DeliverAsync returns (as discard
// does) runs record after record on the dispatcher alone.
func TestAsync_inlineCompletion(t *testing.T) {
	var n atomic.Int64
	route := asyncFunc{"inline", func(_ context.Context, _ Message, done Completion) { n.Add(1); done.Done(nil) }}
	e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 2}}})
	r := e.Receiver("t")
	r.Assign(0)
	for off := range int64(5000) {
		for r.Offer(msg("t", 0, off, "k")) != nil {
			<-e.Room()
		}
	}
	wait(t, guard, "all acknowledged", func() bool { return committed(r, 0) == 5000 })
	if n.Load() != 5000 {
		t.Fatalf("delivered %d, want 5000", n.Load())
	}
}

// At most Workers deliveries are in flight: with outcomes held back, the
// route starts that many, the buffer fills behind them and the partition
// pauses; releasing them completes everything accepted.
func TestAsync_inflightBound(t *testing.T) {
	var mu sync.Mutex
	var pending []Completion
	route := asyncFunc{"held", func(_ context.Context, _ Message, done Completion) {
		mu.Lock()
		pending = append(pending, done)
		mu.Unlock()
	}}
	const workers, buffer = 8, 20
	e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: workers, Buffer: buffer, Ordering: OrderNone}}})
	r := e.Receiver("t")
	r.Assign(0)
	started := func() int { mu.Lock(); defer mu.Unlock(); return len(pending) }
	// The first Workers records start, one by one, as slots are free.
	for off := range int64(workers) {
		offerAll(t, r, msg("t", 0, off, ""))
		wait(t, guard, "started", func() bool { return started() == int(off)+1 })
	}
	// The next Buffer wait in the queue: no slot is free.
	for off := int64(workers); off < workers+buffer; off++ {
		offerAll(t, r, msg("t", 0, off, ""))
	}
	if err := r.Offer(msg("t", 0, workers+buffer, "")); !errors.Is(err, ErrCongested) {
		t.Fatalf("offer past workers+buffer: %v, want ErrCongested", err)
	}
	if st := e.Stats()[0].Routes[0]; st.Busy != workers || st.Depth != buffer || started() != workers {
		t.Fatalf("busy %d, queued %d, started %d: want %d in flight and %d queued", st.Busy, st.Depth, started(), workers, buffer)
	}
	accepted := int64(workers + buffer)
	for {
		mu.Lock()
		batch := pending
		pending = nil
		mu.Unlock()
		for _, done := range batch {
			done.Done(nil)
		}
		if committed(r, 0) == accepted {
			break
		}
		wait(t, guard, "more started", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(pending) > 0 || committed(r, 0) == accepted
		})
	}
}

// A panic inside DeliverAsync is an error for that record (retried, then
// delivered), and a done called twice counts once.
func TestAsync_panicAndDoubleDone(t *testing.T) {
	var calls atomic.Int32
	route := asyncFunc{"rough", func(_ context.Context, m Message, done Completion) {
		calls.Add(1)
		if m.Offset == 1 && m.Attempt == 1 {
			panic("boom")
		}
		done.Done(nil)
		done.Done(errors.New("a second outcome, ignored"))
	}}
	e := newEngine(t, Options{Clock: &fakeClock{}}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 1, Ordering: OrderPartition}}})
	r := e.Receiver("t")
	r.Assign(0)
	offerAll(t, r, msg("t", 0, 0, ""), msg("t", 0, 1, ""), msg("t", 0, 2, ""))
	wait(t, guard, "committed", func() bool { return committed(r, 0) == 3 })
	if calls.Load() != 4 { // 0, 1 (panics), 1 again, 2
		t.Fatalf("DeliverAsync called %d times, want 4", calls.Load())
	}
}

// RouteConfig.Timeout bounds every attempt: a synchronous route that
// honours its context returns at the deadline, and an asynchronous one
// that ignores it entirely is failed by the engine at the deadline, its
// late report ignored. Both attempts are retried as timeouts.
func TestTimeout_boundsEveryAttempt(t *testing.T) {
	var syncCalls atomic.Int32
	honours := RouteFunc{RouteName: "honours", Fn: func(ctx context.Context, m Message) error {
		if syncCalls.Add(1) == 1 {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}}
	var asyncCalls atomic.Int32
	late := make(chan Completion, 1)
	ignores := asyncFunc{"ignores", func(_ context.Context, m Message, done Completion) {
		if asyncCalls.Add(1) == 1 {
			late <- done // reported only after the engine gave up
			return
		}
		done.Done(nil)
	}}
	obs := &outcomeCounter{}
	e := newEngine(t, Options{Observer: obs}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
		{Route: honours, Timeout: 20 * time.Millisecond, InitialBackoff: time.Millisecond},
		{Route: ignores, Timeout: 20 * time.Millisecond, InitialBackoff: time.Millisecond},
	}})
	r := e.Receiver("t")
	r.Assign(0)
	offerAll(t, r, msg("t", 0, 0, ""))
	wait(t, guard, "both delivered on the second attempt", func() bool { return committed(r, 0) == 1 })
	(<-late).Done(errors.New("a report after the deadline, ignored"))
	if syncCalls.Load() != 2 || asyncCalls.Load() != 2 {
		t.Fatalf("attempts: sync %d, async %d; want 2 each", syncCalls.Load(), asyncCalls.Load())
	}
	if obs.get("honours", OutcomeRetry) != 1 || obs.get("ignores", OutcomeRetry) != 1 {
		t.Fatalf("retries: %v", obs.n)
	}
}
