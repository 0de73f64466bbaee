package fanout

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// manualClock is a clock whose Now the test sets; waits are real.
type manualClock struct{ now atomic.Int64 }

func newManualClock() *manualClock {
	c := &manualClock{}
	c.now.Store(time.Unix(1_800_000_000, 0).UnixNano())
	return c
}

func (c *manualClock) Now() time.Time                         { return time.Unix(0, c.now.Load()) }
func (c *manualClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (c *manualClock) advance(d time.Duration)                { c.now.Add(int64(d)) }

// spillSink records what the spill route produced, per key in order, and
// can be told to fail.
type spillSink struct {
	mu     sync.Mutex
	got    []Message
	fail   atomic.Int32 // fail this many produces first
	tries  atomic.Int32
	backlg atomic.Int64 // what Backlog reports
}

func (s *spillSink) route() AsyncRoute {
	return asyncFunc{"spill", func(_ context.Context, m Message, done Completion) {
		s.tries.Add(1)
		if s.fail.Load() > 0 {
			s.fail.Add(-1)
			done.Done(errors.New("spill topic unavailable"))
			return
		}
		s.mu.Lock()
		s.got = append(s.got, m)
		s.mu.Unlock()
		done.Done(nil)
	}}
}

func (s *spillSink) backlog(context.Context) (int64, error) { return s.backlg.Load(), nil }

func (s *spillSink) offsets() map[int64]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64]int{}
	for _, m := range s.got {
		out[m.Offset]++
	}
	return out
}

func (s *spillSink) config(after time.Duration) *SpillConfig {
	return &SpillConfig{Route: s.route(), After: after, Backlog: s.backlog}
}

func detachedNow(e *Engine) bool {
	st := e.Stats()[0].Routes[0].Spill
	return st != nil && st.Detached
}

// A route stalled past After detaches, never before; every record it had
// not acknowledged then, and every later one, goes to the spill topic, so
// the commit reaches the end; the boundary loses nothing and duplicates at
// most the deliveries that were in flight.
func TestSpill_detachAfterCongestionLosesNothing(t *testing.T) {
	kinds(t, func(t *testing.T) {
		clock := newManualClock()
		spill := &spillSink{} // backlog 0 at assign: attached
		stall := newGate()
		defer stall.open()
		var direct sync.Map
		route := &recorder{name: "slow", fn: func(ctx context.Context, m Message) error {
			if err := stall.wait(ctx); err != nil {
				return err
			}
			direct.Store(m.Offset, true)
			return nil
		}}
		const workers, buffer = 2, 10
		e := newEngine(t, Options{Clock: clock}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
			{Route: route, Workers: workers, Buffer: buffer, Ordering: OrderNone, Timeout: 30 * time.Millisecond,
				InitialBackoff: time.Millisecond, Spill: spill.config(time.Minute)},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		next := fillUntilRefused(r)
		// Congested now. Short of After, it stays attached.
		clock.advance(time.Minute - time.Millisecond)
		time.Sleep(3 * watchTick)
		if detachedNow(e) {
			t.Fatal("detached before After")
		}
		spill.backlg.Store(1) // from now something is parked: stay detached
		clock.advance(time.Millisecond)
		wait(t, guard, "detached", func() bool { return detachedNow(e) })
		// New records flow again and go to the spill topic.
		for r.Paused(0) {
			<-e.Room()
		}
		offerWithRoom(t, e, r, next, next+100, "the spilling route holds the receiver back")
		next += 100
		wait(t, guard, "commit reaches the end", func() bool { return committed(r, 0) == next })
		got := spill.offsets()
		dups := 0
		for off := range next {
			_, viaRoute := direct.Load(off)
			switch {
			case got[off] == 0 && !viaRoute:
				t.Fatalf("record %d reached neither the route nor the spill topic", off)
			case got[off] > 1:
				t.Fatalf("record %d spilled %d times", off, got[off])
			case got[off] == 1 && viaRoute:
				dups++
			}
		}
		if dups > workers {
			t.Fatalf("%d records went both ways, more than the %d in flight", dups, workers)
		}
		if st := e.Stats()[0].Routes[0].Spill; st.Spilled != int64(len(got)) {
			t.Fatalf("stats say %d spilled, the spill topic got %d", st.Spilled, len(got))
		}
	})
}

// The route re-attaches only once the backlog is 0 and its last spill was
// acknowledged; per key, nothing goes direct while an earlier record may
// still be parked, and records go direct again afterwards.
func TestSpill_reattachAtEmptyBacklogKeepsKeyOrder(t *testing.T) {
	kinds(t, func(t *testing.T) {
		clock := newManualClock()
		spill := &spillSink{}
		var stalled atomic.Bool
		stalled.Store(true)
		stall := make(chan struct{})
		var mu sync.Mutex
		var directOrder []Message
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error {
			if stalled.Load() {
				select {
				case <-stall:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			mu.Lock()
			directOrder = append(directOrder, m)
			mu.Unlock()
			return nil
		}}
		defer func() {
			if stalled.Swap(false) {
				close(stall)
			}
		}()
		e := newEngine(t, Options{Clock: clock}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
			{Route: route, Workers: 2, Buffer: 8, Timeout: 30 * time.Millisecond, InitialBackoff: time.Millisecond,
				Spill: spill.config(time.Second)},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		keys := []string{"a", "b", "c"}
		next := int64(0)
		offer := func(n int) {
			for end := next + int64(n); next < end; next++ {
				for r.Offer(msg("t", 0, next, keys[next%3])) != nil {
					<-e.Room()
				}
			}
		}
		for r.Offer(msg("t", 0, next, keys[next%3])) == nil {
			next++
		}
		spill.backlg.Store(1000)
		clock.advance(time.Second)
		wait(t, guard, "detached", func() bool { return detachedNow(e) })
		offer(60)
		wait(t, guard, "spilled up to the end", func() bool { return committed(r, 0) == next })
		// The destination recovers, but the spill topic is not drained:
		// the route stays detached.
		if stalled.Swap(false) {
			close(stall)
		}
		spill.backlg.Store(3)
		time.Sleep(3 * watchTick)
		if !detachedNow(e) {
			t.Fatal("re-attached with records still parked")
		}
		reattachAt := next
		spill.backlg.Store(0)
		wait(t, guard, "re-attached", func() bool { return !detachedNow(e) })
		offer(30)
		wait(t, guard, "delivered direct", func() bool { return committed(r, 0) == next })
		spilledMax := map[string]int64{}
		spill.mu.Lock()
		for _, m := range spill.got {
			if k := string(m.Key); m.Offset > spilledMax[k] {
				spilledMax[k] = m.Offset
			}
		}
		spill.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		afterReattach := 0
		for _, m := range directOrder {
			if m.Offset >= reattachAt {
				afterReattach++
				if m.Offset < spilledMax[string(m.Key)] {
					t.Fatalf("record %d of key %s went direct before spilled record %d", m.Offset, m.Key, spilledMax[string(m.Key)])
				}
			}
		}
		if afterReattach == 0 {
			t.Fatal("nothing went direct after re-attaching")
		}
	})
}

// A spill produce that fails is retried and acknowledges nothing until it
// succeeds.
func TestSpill_failedProduceIsRetriedNeverAcknowledgedEarly(t *testing.T) {
	clock := newManualClock()
	spill := &spillSink{}
	stall := newGate()
	defer stall.open()
	route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error { return stall.wait(ctx) }}
	e := newEngine(t, Options{Clock: clock}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
		{Route: route, Workers: 1, Buffer: 4, Timeout: 30 * time.Millisecond, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
			Spill: spill.config(time.Second)},
	}})
	r := e.Receiver("t")
	r.Assign(0)
	next := fillUntilRefused(r)
	spill.fail.Store(20)
	spill.backlg.Store(1)
	clock.advance(time.Second)
	wait(t, guard, "detached", func() bool { return detachedNow(e) })
	wait(t, guard, "produces failing", func() bool { return spill.tries.Load() >= 5 })
	if c := committed(r, 0); c > 0 && spill.fail.Load() > 0 {
		t.Fatalf("committed %d while every spill produce failed", c)
	}
	wait(t, guard, "spilled after the failures", func() bool { return committed(r, 0) == next })
	if spill.fail.Load() != 0 {
		t.Fatal("committed before the failures ran out")
	}
}

// A partition assigned while the spill topic holds undelivered records
// starts detached: a new owner keeps spilling.
func TestSpill_assignWithABacklogDetaches(t *testing.T) {
	spill := &spillSink{}
	spill.backlg.Store(5)
	route := &recorder{name: "r"}
	e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
		{Route: route, Spill: spill.config(time.Second)},
	}})
	r := e.Receiver("t")
	r.Assign(0)
	if !detachedNow(e) {
		t.Fatal("attached although the spill topic holds records")
	}
	offerAll(t, r, msg("t", 0, 0, "k"))
	wait(t, guard, "spilled", func() bool { return committed(r, 0) == 1 })
	if route.count() != 0 || len(spill.offsets()) != 1 {
		t.Fatalf("route got %d, spill %d", route.count(), len(spill.offsets()))
	}
}

// Revoke waits for spill produces in flight; Close drains a detached route
// through its spill topic.
func TestSpill_revokeAndDrainWhileDetached(t *testing.T) {
	spill := &spillSink{}
	spill.backlg.Store(5)
	hold := make(chan Completion, 100)
	slowSpill := asyncFunc{"spill", func(_ context.Context, m Message, done Completion) { hold <- done }}
	route := &recorder{name: "r"}
	e, err := newFor(t, []ReceiverConfig{{Topic: "t", Routes: []RouteConfig{
		{Route: route, Spill: &SpillConfig{Route: slowSpill, After: time.Second, Backlog: spill.backlog}},
	}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := e.Receiver("t")
	r.Assign(0)
	r.Assign(1)
	offerAll(t, r, msg("t", 0, 0, ""), msg("t", 0, 1, ""))
	offerAll(t, r, msg("t", 1, 0, ""))
	first := <-hold
	second := <-hold
	third := <-hold
	revoked := make(chan Commit, 1)
	go func() {
		c, _, _ := r.Revoke(context.Background(), 0)
		revoked <- c
	}()
	select {
	case <-revoked:
		t.Fatal("revoke returned with spill produces in flight")
	case <-time.After(50 * time.Millisecond):
	}
	first.Done(nil)
	second.Done(nil)
	if c := <-revoked; c.Offset != 2 {
		t.Fatalf("revoke's final position %d, want 2", c.Offset)
	}
	closed := make(chan error, 1)
	go func() { closed <- e.Close(context.Background()) }()
	third.Done(nil)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if c := committed(r, 1); c != 1 {
		t.Fatalf("partition 1 committable %d after the drain, want 1", c)
	}
}

// A route stalled inside its attempts (no Timeout, the endpoint never
// answers) must not hold its partition's commit once it detached: the
// attempts in flight end, and their records go to the spill topic too.
func TestSpill_detachEndsAttemptsInFlight(t *testing.T) {
	kinds(t, func(t *testing.T) {
		clock := newManualClock()
		spill := &spillSink{}
		stall := newGate()
		defer stall.open()
		var direct atomic.Int64
		route := &recorder{name: "stuck", fn: func(ctx context.Context, m Message) error {
			if err := stall.wait(ctx); err != nil {
				return err
			}
			direct.Add(1)
			return nil
		}}
		const workers = 3
		e := newEngine(t, Options{Clock: clock}, ReceiverConfig{Topic: "t", MaxInflight: 16, Routes: []RouteConfig{
			{Route: route, Workers: workers, Buffer: 8, Ordering: OrderNone, InitialBackoff: time.Millisecond, Spill: spill.config(time.Second)},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		next := fillUntilRefused(r)
		spill.backlg.Store(1)
		clock.advance(time.Second)
		wait(t, guard, "detached", func() bool { return detachedNow(e) })
		// The route holds 11 records (3 in attempts, 8 queued; more than
		// half the buffer stays queued, so it stays congested) and the
		// window 16: 100 more flow only if no attempt keeps holding its
		// record.
		offerWithRoom(t, e, r, next, next+100, "an attempt still holds the window")
		next += 100
		wait(t, guard, "commit reaches the end with the route still stalled", func() bool { return committed(r, 0) == next })
		got := spill.offsets()
		for off := range next {
			if got[off] != 1 {
				t.Fatalf("record %d spilled %d times, want once (the route delivered none: %d)", off, got[off], direct.Load())
			}
		}
	})
}

// Right after a detach the backlog may read low (the spills have not all
// landed yet, or the buffer held few records): the route stays detached,
// spilling, while it is stalled, instead of re-attaching at once and
// holding its receiver back again. With nothing parked it re-attaches
// once it has been detached for After.
func TestSpill_lowBacklogRightAfterDetachKeepsSpilling(t *testing.T) {
	kinds(t, func(t *testing.T) {
		clock := newManualClock()
		spill := &spillSink{}
		stall := newGate()
		defer stall.open()
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error { return stall.wait(ctx) }}
		e := newEngine(t, Options{Clock: clock}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
			{Route: route, Workers: 2, Buffer: 8, Timeout: 30 * time.Millisecond, InitialBackoff: time.Millisecond,
				Spill: spill.config(time.Second)},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		next := fillUntilRefused(r)
		// The backlog reads 0 (as a spill topic whose produces have not
		// landed would), within the route's buffer.
		clock.advance(time.Second)
		wait(t, guard, "detached", func() bool { return detachedNow(e) })
		time.Sleep(3 * watchTick)
		offerWithRoom(t, e, r, next, next+40, "the receiver is held back")
		next += 40
		wait(t, guard, "spilled up to the end", func() bool { return committed(r, 0) == next })
		if !detachedNow(e) || route.count() != 0 {
			t.Fatalf("detached %v, %d direct deliveries; want every record spilled", detachedNow(e), route.count())
		}
		// Nothing parked and detached for After: it re-attaches.
		stall.open()
		clock.advance(time.Second)
		wait(t, guard, "re-attached", func() bool { return !detachedNow(e) })
		offerAll(t, r, msg("t", 0, next, ""))
		next++
		wait(t, guard, "delivered direct", func() bool { return committed(r, 0) == next })
		if route.count() == 0 {
			t.Fatal("nothing went direct after re-attaching")
		}
	})
}
