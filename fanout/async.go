package fanout

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// AsyncRoute is a Route that accepts a delivery and reports its outcome
// later, so that many deliveries are in flight at once without a goroutine
// each: a Kafka producer that batches records, say. The engine finds it by
// type assertion and then calls DeliverAsync instead of Deliver.
//
// DeliverAsync starts delivering m and returns without waiting for the
// outcome; it may block briefly (a full client buffer) and must then honour
// ctx. It must call done.Done exactly once, from any goroutine (even before
// it returns), with nil to acknowledge or an error classified as Deliver's
// would be: retried with backoff unless it wraps ErrPermanent, RetryAfter
// honoured. A second call is ignored. A panic inside DeliverAsync is the
// attempt's error.
//
// At most RouteConfig.Workers deliveries of the route are in flight at
// once, retries and dead-lettering included; everything that holds for a
// Route holds for an AsyncRoute (ordering, the acknowledgement watermark,
// revoke, lose, drain). DeliverAsync is called from engine goroutines,
// possibly concurrently, and done may run on the route's own goroutines,
// so it does little: an acknowledgement, or handing a retry to a goroutine
// of the engine's.
type AsyncRoute interface {
	Route
	DeliverAsync(ctx context.Context, m Message, done Completion)
}

// Completion reports the outcome of one DeliverAsync call. It is a small
// value, passed and copied freely; the engine allocates nothing for it.
type Completion struct {
	d       *delivery
	attempt int32
}

// Done reports the outcome: nil acknowledges. Only the first call of an
// attempt counts; later ones (and calls on a zero Completion) are ignored.
func (c Completion) Done(err error) {
	if c.d == nil {
		return
	}
	if c.d.report != nil {
		c.d.report(err)
		return
	}
	if c.d.fired.CompareAndSwap(c.attempt-1, c.attempt) {
		c.d.outcome(err)
	}
}

// CompletionFunc returns a Completion that calls f, for code that drives an
// AsyncRoute itself: a synchronous Deliver built on DeliverAsync, or a test.
// f is called on every Done, a second one included, so a test can see a
// route that reports twice.
func CompletionFunc(f func(error)) Completion {
	return Completion{d: &delivery{report: f}, attempt: 1}
}

// dispatchBatch is the most jobs the dispatcher takes from its queue at
// once: one lock and one wake-up for a run of ready jobs.
const dispatchBatch = 64

// dispatch is an asynchronous route's one dispatcher goroutine: it starts
// a delivery for each of the route's jobs as soon as one of its Workers
// in-flight places is free. Engine-owned; it returns once the queue is
// closed and drained and its deliveries have ended.
func (rr *routeRunner) dispatch() {
	defer rr.r.e.wg.Done()
	rr.dispatchLoop(takeRoute, int64(rr.cfg.Workers), &rr.inflight, rr.freed, func(j job, now time.Time) {
		d := deliveries.Get().(*delivery)
		d.rr, d.job, d.attempt, d.start = rr, j, 1, now
		d.slots, d.freed = &rr.inflight, rr.freed
		d.issue()
	})
}

// dispatchLoop is the loop of a dispatcher (the route's, or its spill
// runner's): it takes the jobs that takers of class c may take, as many at
// once as slots has free places under limit (up to dispatchBatch), counts
// them in slots and starts each, on this goroutine. A job stays in the
// queue (counted in its depth, droppable by revoke) until it can start, so
// the buffer bound and revoke's purge stay exact. A finished delivery frees
// its place in slots and wakes freed. Once the queue is closed and drained
// it waits for the deliveries in flight to end, so the engine's WaitGroup
// covers them.
func (rr *routeRunner) dispatchLoop(c takerClass, limit int64, slots *atomic.Int64, freed <-chan struct{}, start func(j job, now time.Time)) {
	clock := rr.r.e.clock
	batch := make([]job, 0, min(dispatchBatch, limit))
	for {
		free := limit - slots.Load()
		if free <= 0 {
			<-freed
			continue
		}
		var t taken
		var ok bool
		batch, t, ok = rr.q.takeBatch(c, batch[:0], int(min(free, dispatchBatch)))
		if !ok {
			for slots.Load() > 0 {
				<-freed
			}
			return
		}
		if t.resume {
			rr.r.kickResume()
		}
		if t.low {
			rr.r.e.signalRoom()
		}
		now := clock.Now()
		slots.Add(int64(len(batch)))
		for i := range batch {
			rr.obs.QueueWait(time.Duration(max(0, now.UnixNano()-batch[i].enq)))
			start(batch[i], now)
			batch[i] = job{}
		}
	}
}

// delivery is one record on its way through an asynchronous route, across
// its attempts. Deliveries are pooled: a finished one is reused, and its
// generation keeps a late Completion of the old record from counting for
// the new one.
type delivery struct {
	rr *routeRunner
	job
	attempt int
	start   time.Time
	b       *backoff.ExponentialBackOff // made at the first failure
	// fired is the last attempt whose outcome arrived, in the high bits
	// the delivery's generation: Completion's exactly-once guard.
	fired atomic.Int32
	// report, when set, is a CompletionFunc's function: the delivery is
	// not the engine's.
	report func(error)
	// slots counts the in-flight deliveries this one is one of (its
	// route's, or its spill runner's), freed wakes their dispatcher.
	slots *atomic.Int64
	freed chan struct{}
	// spill, when set, sends the record to the route's spill topic instead
	// of the route: the route detached.
	spill *spillRunner
	// cancel and timer end the current attempt at RouteConfig.Timeout;
	// mu guards them, as the timer's goroutine may report the outcome.
	mu     sync.Mutex
	cancel context.CancelFunc
	timer  *time.Timer
	// release ends the attempt's watch on its route's detaching (a route
	// with spill; see spillRunner.attempt); guarded by mu too.
	release func()
}

var deliveries = sync.Pool{New: func() any { return new(delivery) }}

// issue starts the current attempt.
func (d *delivery) issue() {
	p := d.p
	if p.revoked.Load() || p.ctx.Err() != nil {
		d.finish(false)
		return
	}
	m := d.s.msg // a copy: the slot's data is released once every route acknowledged
	m.Attempt = d.attempt
	c := Completion{d: d, attempt: d.fired.Load() + 1}
	ctx := p.ctx
	// Everything the attempt needs is read from d before anything that
	// can report its outcome is armed: once the outcome is reported, d
	// may be finished and reused on another goroutine.
	rr := d.rr
	if d.spill == nil && rr.spill != nil && rr.spill.spilling() {
		// The route detached while this record waited or retried.
		d.spill = rr.spill
	}
	target := rr.async
	watch := d.spill == nil && rr.spill != nil
	if d.spill != nil {
		target = d.spill.cfg.Route
	} else if timeout := rr.cfg.Timeout; timeout > 0 {
		// The attempt's own deadline, enforced by the engine too: an
		// attempt the route has not reported by then fails, and the
		// route's late report finds the attempt gone.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		d.mu.Lock()
		d.cancel = cancel
		d.timer = time.AfterFunc(timeout, func() { c.Done(&TimeoutError{After: timeout}) })
		d.mu.Unlock()
	}
	if watch {
		// Detaching ends the attempt: its record goes to the spill topic
		// and the route's late report finds the attempt gone.
		// Under mu: an outcome reported at once waits for release.
		d.mu.Lock()
		ctx, d.release = rr.spill.attempt(ctx, func() { c.Done(errDetached) })
		d.mu.Unlock()
	}
	if err := rr.safe(func() error { target.DeliverAsync(ctx, m, c); return nil }); err != nil {
		c.Done(err)
	}
}

// outcome handles an attempt's result, on whatever goroutine reported it:
// it acknowledges, or hands the retry or the dead letter to a goroutine of
// the engine's, so a route's callback goroutine is never held.
func (d *delivery) outcome(err error) {
	rr, p := d.rr, d.p
	if d.spill != nil {
		d.spilled(err)
		return
	}
	if rr.spill != nil {
		// Only a route with spill watches its attempts (see issue).
		d.mu.Lock()
		release := d.release
		d.release = nil
		d.mu.Unlock()
		if release != nil {
			release()
		}
	}
	if rr.cfg.Timeout > 0 {
		d.mu.Lock()
		cancel, timer := d.cancel, d.timer
		d.cancel, d.timer = nil, nil
		d.mu.Unlock()
		timer.Stop()
		cancel()
		var te *TimeoutError
		if err != nil && !errors.As(err, &te) && p.ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = &TimeoutError{After: rr.cfg.Timeout, Err: err}
		}
	}
	clock := rr.r.e.clock
	took := since(clock, d.start)
	if err == nil {
		rr.obs.Delivered(OutcomeSuccess, took)
		d.finish(true)
		return
	}
	if p.ctx.Err() != nil || p.revoked.Load() {
		d.finish(false)
		return
	}
	if rr.spill != nil && rr.spill.spilling() {
		d.handOver()
		return
	}
	if d.b == nil {
		d.b = rr.newBackoff()
	}
	if rr.deadLetters(err, d.attempt) {
		go func() {
			m := d.s.msg
			m.Attempt = d.attempt
			if !rr.deadLetter(p.ctx, p, m, err, d.attempt, d.b) {
				d.finish(false)
				return
			}
			rr.obs.Delivered(OutcomeDeadLetter, took)
			d.finish(true)
		}()
		return
	}
	m := Message{Topic: d.s.msg.Topic, Partition: d.s.msg.Partition, Offset: d.s.msg.Offset, Attempt: d.attempt}
	rr.retrying(&m, err, took)
	delay := nextDelay(d.b, err)
	go func() {
		if !rr.wait(p.ctx, p, delay) {
			d.finish(false)
			return
		}
		d.attempt++
		d.start = clock.Now()
		d.issue()
	}()
}

// handOver sends a record whose attempt failed, or was ended, because its
// route detached to the spill topic. From here it counts among the spill
// produces in flight, not the route's deliveries: re-attaching waits for
// it. It runs on an engine goroutine, not the route's callback.
func (d *delivery) handOver() {
	s := d.rr.spill
	s.inflight.Add(1)
	slots, freed := d.slots, d.freed
	d.spill, d.slots, d.freed = s, &s.inflight, s.freed
	d.attempt = 1
	d.start = d.rr.r.e.clock.Now()
	slots.Add(-1)
	select {
	case freed <- struct{}{}:
	default:
	}
	go d.issue()
}

// spilled handles the outcome of a produce to the spill topic: its
// acknowledgement is the route's; a failure is retried with backoff, never
// acknowledged early and never dead-lettered (the record is still in the
// receiver's topic, uncommitted).
func (d *delivery) spilled(err error) {
	rr, p := d.rr, d.p
	if err == nil {
		d.spill.spilled.Add(1)
		d.finish(true)
		return
	}
	if p.ctx.Err() != nil || p.revoked.Load() {
		d.finish(false)
		return
	}
	if d.b == nil {
		d.b = rr.newBackoff()
	}
	rr.r.e.log.Warn().Err(err).Str("topic", d.s.msg.Topic).Int32("partition", d.s.msg.Partition).
		Int64("offset", d.s.msg.Offset).Str("route", rr.name).Msg("spill produce failed, retrying")
	delay := nextDelay(d.b, err)
	go func() {
		if !rr.wait(p.ctx, p, delay) {
			d.finish(false)
			return
		}
		d.attempt++
		d.issue()
	}()
}

// finish ends the delivery: acknowledged (delivered or dead-lettered) or
// given up (revoked, lost, closed hard).
func (d *delivery) finish(acked bool) {
	rr, p := d.rr, d.p
	if acked {
		p.ack(d.s, d.seq, rr.bit)
	}
	rr.q.finish(d.job)
	p.doneRunning()
	// Recycle: the next use starts a generation past every Completion of
	// this one, so a late duplicate Done finds its attempt gone.
	// Only fired is read by a late Done, and only atomically.
	gen := (d.fired.Load() + 1<<16) &^ (1<<16 - 1)
	slots, freed := d.slots, d.freed
	d.rr, d.job, d.attempt, d.start, d.b, d.spill, d.slots, d.freed = nil, job{}, 0, time.Time{}, nil, nil, nil, nil
	d.fired.Store(gen)
	deliveries.Put(d)
	slots.Add(-1)
	select {
	case freed <- struct{}{}:
	default: // a wake-up is already pending
	}
}
