package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// failing fails the first n attempts of every record with err.
func failing(name string, n int, err error) *recorder {
	return &recorder{name: name, fn: func(ctx context.Context, m Message) error {
		if m.Attempt <= n {
			return err
		}
		return nil
	}}
}

type dlqRecorder struct {
	mu       sync.Mutex
	msgs     []Message
	causes   []error
	attempts []int
	failN    int // fail this many publishes first
	calls    int
}

func (d *dlqRecorder) publish(ctx context.Context, m Message, cause error, attempts int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.calls <= d.failN {
		return errors.New("dlq broker down")
	}
	d.msgs = append(d.msgs, m)
	d.causes = append(d.causes, cause)
	d.attempts = append(d.attempts, attempts)
	return nil
}

func (d *dlqRecorder) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.msgs)
}

type outcomeCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomeCounter) Route(topic, route string) RouteObserver {
	return routeCounter{o: o, route: route}
}
func (o *outcomeCounter) PartitionPaused(string, int32, string) {}
func (o *outcomeCounter) PartitionResumed(string, int32)        {}
func (o *outcomeCounter) get(route string, out Outcome) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[route+"/"+string(out)]
}

type routeCounter struct {
	o     *outcomeCounter
	route string
}

func (r routeCounter) Delivered(out Outcome, _ time.Duration) {
	r.o.mu.Lock()
	if r.o.n == nil {
		r.o.n = map[string]int{}
	}
	r.o.n[r.route+"/"+string(out)]++
	r.o.mu.Unlock()
}
func (routeCounter) QueueWait(time.Duration) {}
func (r routeCounter) DeadLetterFailed() {
	r.o.mu.Lock()
	if r.o.n == nil {
		r.o.n = map[string]int{}
	}
	r.o.n[r.route+"/dead_letter_failed"]++
	r.o.mu.Unlock()
}

func TestRetry_succeedsAfterFailures(t *testing.T) {
	kinds(t, func(t *testing.T) {
		clock := &fakeClock{}
		obs := &outcomeCounter{}
		route := failing("r", 3, errors.New("503"))
		e := newEngine(t, Options{Clock: clock, Observer: obs}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
			{Route: route, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""))
		wait(t, guard, "commit", func() bool { return committed(r, 0) == 1 })
		if got := route.messages(); len(got) != 1 || got[0].Attempt != 4 {
			t.Fatalf("delivered %+v, want one delivery on attempt 4", got)
		}
		if obs.get("r", OutcomeRetry) != 3 || obs.get("r", OutcomeSuccess) != 1 {
			t.Fatalf("outcomes %v", obs.n)
		}
		d := clock.recorded()
		if len(d) != 3 {
			t.Fatalf("waits %v, want 3", d)
		}
		// Exponential with ±50% jitter: 100ms, 200ms, 400ms nominal.
		for i, nominal := range []time.Duration{100, 200, 400} {
			nominal *= time.Millisecond
			if d[i] < nominal/2 || d[i] > nominal*3/2 {
				t.Fatalf("wait %d = %s, want within ±50%% of %s", i, d[i], nominal)
			}
		}
	})
}

func TestRetry_honoursRetryAfter(t *testing.T) {
	kinds(t, func(t *testing.T) {
		clock := &fakeClock{}
		route := failing("r", 1, RetryAfter(errors.New("429"), 7*time.Second))
		e := newEngine(t, Options{Clock: clock}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
			{Route: route, InitialBackoff: 10 * time.Millisecond},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""))
		wait(t, guard, "commit", func() bool { return committed(r, 0) == 1 })
		if d := clock.recorded(); len(d) != 1 || d[0] != 7*time.Second {
			t.Fatalf("waits %v, want [7s]", d)
		}
	})
}

func TestRetry_deadLetterAfterMaxAttempts(t *testing.T) {
	kinds(t, func(t *testing.T) {
		obs := &outcomeCounter{}
		dlq := &dlqRecorder{failN: 2} // the dead-letter publish itself fails twice first
		route := failing("r", 1000, errors.New("boom"))
		e := newEngine(t, Options{Clock: &fakeClock{}, Observer: obs}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
			{Route: route, MaxAttempts: 3, DeadLetter: dlq.publish},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 5, "k"))
		wait(t, guard, "commit", func() bool { return committed(r, 0) == 6 })
		if dlq.count() != 1 || dlq.attempts[0] != 3 || dlq.msgs[0].Offset != 5 || dlq.causes[0].Error() != "boom" {
			t.Fatalf("dead letters: %+v attempts %v causes %v", dlq.msgs, dlq.attempts, dlq.causes)
		}
		if obs.get("r", OutcomeRetry) != 2 || obs.get("r", OutcomeDeadLetter) != 1 || obs.get("r", OutcomeSuccess) != 0 {
			t.Fatalf("outcomes %v", obs.n)
		}
	})
}

func TestRetry_permanentErrorGoesStraightToDeadLetter(t *testing.T) {
	kinds(t, func(t *testing.T) {
		dlq := &dlqRecorder{}
		var attempts atomic.Int32
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error {
			attempts.Add(1)
			return Permanent(fmt.Errorf("400 bad request"))
		}}
		e := newEngine(t, Options{Clock: &fakeClock{}}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
			{Route: route, MaxAttempts: 5, DeadLetter: dlq.publish},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""))
		wait(t, guard, "commit", func() bool { return committed(r, 0) == 1 })
		if attempts.Load() != 1 || dlq.count() != 1 || !errors.Is(dlq.causes[0], ErrPermanent) {
			t.Fatalf("attempts %d dead letters %d", attempts.Load(), dlq.count())
		}
	})
}

// Without a dead-letter function nothing is dropped: even permanent errors
// and MaxAttempts do not stop the retries.
func TestRetry_foreverWithoutDeadLetter(t *testing.T) {
	kinds(t, func(t *testing.T) {
		clock := &fakeClock{}
		route := failing("r", 50, Permanent(errors.New("400")))
		e := newEngine(t, Options{Clock: clock}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
			{Route: route, MaxAttempts: 3},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""))
		wait(t, guard, "commit", func() bool { return committed(r, 0) == 1 })
		if got := route.messages(); len(got) != 1 || got[0].Attempt != 51 {
			t.Fatalf("delivered %+v, want attempt 51", got)
		}
		if n := len(clock.recorded()); n != 50 {
			t.Fatalf("%d waits, want 50", n)
		}
	})
}

func TestRetry_panicIsAnErrorForThatRecord(t *testing.T) {
	kinds(t, func(t *testing.T) {
		dlq := &dlqRecorder{}
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error {
			if m.Offset == 1 {
				panic("poison")
			}
			if m.Offset == 2 && m.Attempt == 1 {
				panic(nil) // even panic(nil) must not pass as success
			}
			return nil
		}}
		e := newEngine(t, Options{Clock: &fakeClock{}}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
			{Route: route, Workers: 1, MaxAttempts: 2, DeadLetter: dlq.publish},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""), msg("t", 0, 1, ""), msg("t", 0, 2, ""), msg("t", 0, 3, ""))
		wait(t, guard, "commit", func() bool { return committed(r, 0) == 4 })
		var pe *PanicError
		if dlq.count() != 1 || dlq.msgs[0].Offset != 1 || !errors.As(dlq.causes[0], &pe) || pe.Value != "poison" {
			t.Fatalf("dead letters %+v causes %v", dlq.msgs, dlq.causes)
		}
		if route.count() != 3 {
			t.Fatalf("delivered %d, want 3 (offsets 0, 2, 3)", route.count())
		}
	})
}

// Revoke drops queued records, waits for running ones, returns the final
// committable offset, and a late acknowledgement changes nothing.
func TestRevoke_dropsQueuedWaitsForRunning(t *testing.T) {
	kinds(t, func(t *testing.T) {
		started := make(chan int64, 10)
		release := newGate()
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error {
			if m.Offset >= 2 {
				started <- m.Offset
				return release.wait(context.Background()) // ignores ctx on purpose
			}
			return nil
		}}
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 1, Buffer: 100}}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""), msg("t", 0, 1, ""))
		wait(t, guard, "first two", func() bool { return committed(r, 0) == 2 })
		for off := int64(2); off < 10; off++ {
			offerAll(t, r, msg("t", 0, off, ""))
		}
		if off := <-started; off != 2 {
			t.Fatalf("started %d", off)
		}
		type result struct {
			c   Commit
			ok  bool
			err error
		}
		done := make(chan result)
		go func() {
			c, ok, err := r.Revoke(context.Background(), 0)
			done <- result{c, ok, err}
		}()
		select {
		case res := <-done:
			t.Fatalf("revoke returned %+v while a delivery runs", res)
		case <-time.After(20 * time.Millisecond):
		}
		release.open()
		res := <-done
		// The running record completed before revoke returned, so it counts.
		if res.err != nil || !res.ok || res.c.Offset != 3 {
			t.Fatalf("revoke = %+v, want offset 3", res)
		}
		if route.count() != 3 {
			t.Fatalf("delivered %d: queued records were not dropped", route.count())
		}
		if _, ok := r.Committable(0); ok {
			t.Fatal("revoked partition still committable")
		}
		if err := r.Offer(msg("t", 0, 10, "")); !errors.Is(err, ErrNotAssigned) {
			t.Fatalf("offer after revoke: %v", err)
		}
		if st := e.Stats()[0].Routes[0]; st.Depth != 0 {
			t.Fatalf("queue depth %d after revoke", st.Depth)
		}
	})
}

func TestRevoke_boundedByContextAndAbandonsRetries(t *testing.T) {
	kinds(t, func(t *testing.T) {
		var attempts atomic.Int32
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error {
			attempts.Add(1)
			return errors.New("down")
		}}
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 1, InitialBackoff: time.Hour}}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""))
		wait(t, guard, "first attempt", func() bool { return attempts.Load() == 1 })
		// The worker sleeps an hour of backoff; revoke must not wait for it.
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		_, ok, err := r.Revoke(ctx, 0)
		if err != nil || ok {
			t.Fatalf("revoke: ok %v err %v", ok, err)
		}
		if attempts.Load() != 1 {
			t.Fatalf("%d attempts after revoke", attempts.Load())
		}
	})
}

func TestRevoke_timesOutOnStuckDelivery(t *testing.T) {
	kinds(t, func(t *testing.T) {
		stuck := newGate()
		defer stuck.open()
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error { return stuck.wait(ctx) }}
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 1}}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""))
		wait(t, guard, "running", func() bool { return e.Stats()[0].Routes[0].Busy == 1 })
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := r.Revoke(ctx, 0); !errors.Is(err, context.Canceled) {
			t.Fatalf("revoke err %v, want context.Canceled", err)
		}
		// Revoke cancelled the delivery's context, so the worker is free again.
		wait(t, guard, "worker freed", func() bool { return e.Stats()[0].Routes[0].Busy == 0 })
	})
}

func TestLose_cancelsAtOnce(t *testing.T) {
	kinds(t, func(t *testing.T) {
		var lost atomic.Bool
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error {
			if lost.Load() {
				return nil
			}
			<-ctx.Done()
			return ctx.Err()
		}}
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 1}}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""), msg("t", 0, 1, ""))
		wait(t, guard, "running", func() bool { return e.Stats()[0].Routes[0].Busy == 1 })
		r.Lose(0)
		wait(t, guard, "worker freed", func() bool { st := e.Stats()[0].Routes[0]; return st.Busy == 0 && st.Depth == 0 })
		if route.count() != 0 {
			t.Fatal("lost partition's record was acknowledged")
		}
		lost.Store(true)
		r.Assign(0) // assigned again: a fresh window
		offerAll(t, r, msg("t", 0, 0, ""))
		wait(t, guard, "redelivered after reassign", func() bool { return committed(r, 0) == 1 })
	})
}

func TestClose_drainsQueuedWork(t *testing.T) {
	kinds(t, func(t *testing.T) {
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error { time.Sleep(100 * time.Microsecond); return nil }}
		e, err := newFor(t, []ReceiverConfig{{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 2, Buffer: 500}}}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := e.Receiver("t")
		r.Assign(0)
		for off := range int64(500) {
			offerAll(t, r, msg("t", 0, off, "k"+itoa(off%10)))
		}
		if err := e.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if route.count() != 500 || committed(r, 0) != 500 {
			t.Fatalf("after drain: delivered %d committable %d", route.count(), committed(r, 0))
		}
	})
}

func TestClose_deadlineCancelsStuckWork(t *testing.T) {
	kinds(t, func(t *testing.T) {
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error { <-ctx.Done(); return ctx.Err() }}
		e, err := newFor(t, []ReceiverConfig{{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 1}}}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""), msg("t", 0, 1, ""), msg("t", 0, 2, ""))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := e.Close(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("close: %v", err)
		}
		if got := committed(r, 0); got != -1 {
			t.Fatalf("committable %d after abandoning everything", got)
		}
	})
}

func TestStats_oldestPendingNamesTheRouteHoldingCommits(t *testing.T) {
	kinds(t, func(t *testing.T) {
		stall := newGate()
		defer stall.open()
		slow := &recorder{name: "slow", fn: func(ctx context.Context, m Message) error { return stall.wait(ctx) }}
		fast := &recorder{name: "fast"}
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: slow}, {Route: fast}}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""))
		wait(t, guard, "fast delivered", func() bool { return fast.count() == 1 })
		time.Sleep(2 * time.Millisecond)
		st := e.Stats()[0]
		if st.Routes[0].OldestPending <= 0 || st.Routes[1].OldestPending != 0 {
			t.Fatalf("oldest pending: slow %s fast %s", st.Routes[0].OldestPending, st.Routes[1].OldestPending)
		}
		if p := st.Partitions[0]; p.Inflight != 1 || p.OldestTimestamp.IsZero() || p.Committable != -1 {
			t.Fatalf("partition stats %+v", p)
		}
	})
}

// A dead-letter publish that fails permanently is counted once for the
// record, not once per retry, and the record is still not dropped: the
// route retries it until the publish succeeds.
func TestRetry_permanentDeadLetterFailureCountedOnceAndRetried(t *testing.T) {
	kinds(t, func(t *testing.T) {
		clock := &fakeClock{}
		obs := &outcomeCounter{}
		var calls atomic.Int32
		dlq := func(ctx context.Context, m Message, cause error, attempts int) error {
			if calls.Add(1) <= 5 {
				return Permanent(errors.New("TOPIC_AUTHORIZATION_FAILED"))
			}
			return nil
		}
		route := failing("r", 100, Permanent(errors.New("400")))
		e := newEngine(t, Options{Clock: clock, Observer: obs}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
			{Route: route, Workers: 1, MaxAttempts: 1, DeadLetter: dlq},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""))
		wait(t, guard, "dead-lettered after the publish recovered", func() bool { return committed(r, 0) == 1 })
		if got := obs.get("r", "dead_letter_failed"); got != 1 {
			t.Fatalf("permanent dead-letter failures counted %d times, want once for the record", got)
		}
		if calls.Load() != 6 {
			t.Fatalf("dead-letter publish called %d times, want 6", calls.Load())
		}
	})
}
