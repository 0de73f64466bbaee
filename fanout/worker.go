package fanout

import (
	"context"
	"errors"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// routeRunner is one route of one receiver: its queue, its workers and its
// retry policy.
type routeRunner struct {
	r    *Receiver
	idx  int
	bit  uint64
	name string
	cfg  RouteConfig
	q    *queue
	obs  RouteObserver
	// async is the route as an AsyncRoute, when it is one: then one
	// dispatcher goroutine starts deliveries, at most cfg.Workers in
	// flight (inflight counts them; freed wakes the dispatcher when one
	// ends).
	async AsyncRoute
	freed chan struct{}
	// spill detaches the route when it stays congested; nil without a
	// SpillConfig.
	spill *spillRunner

	// inflight is written at every delivery's start and end; the pads keep
	// it off the lines of the fields above, which every delivery reads.
	_        cacheLinePad
	inflight atomic.Int64
	_        cacheLinePad
}

func newRouteRunner(r *Receiver, idx int, cfg RouteConfig, obs RouteObserver) *routeRunner {
	rr := &routeRunner{
		r:    r,
		idx:  idx,
		bit:  1 << uint(idx),
		name: cfg.Route.Name(),
		cfg:  cfg,
		q:    newQueue(cfg.Buffer),
		obs:  obs,
	}
	if a, ok := cfg.Route.(AsyncRoute); ok {
		rr.async = a
		rr.freed = make(chan struct{}, 1)
	}
	if cfg.Spill != nil {
		rr.spill = newSpillRunner(rr, *cfg.Spill)
	}
	return rr
}

// start launches the route's goroutines: Workers workers, or one
// dispatcher for an asynchronous route.
func (rr *routeRunner) start() {
	e := rr.r.e
	if rr.spill != nil {
		e.wg.Add(1)
		go rr.spill.dispatch()
	}
	if rr.async != nil {
		e.wg.Add(1)
		go rr.dispatch()
		return
	}
	for range rr.cfg.Workers {
		e.wg.Add(1)
		go rr.work()
	}
}

// work is one worker goroutine. It owns a backoff state, so a retrying
// record costs its worker's time and no extra memory.
func (rr *routeRunner) work() {
	defer rr.r.e.wg.Done()
	b := rr.newBackoff()
	clock := rr.r.e.clock
	// now is the time the worker last read the clock. Reading it costs
	// tens of nanoseconds on some machines, so a busy worker reuses the end
	// of its previous delivery as the start of the next.
	now := clock.Now()
	for {
		t, ok := rr.q.take(takeRoute)
		if !ok {
			return
		}
		if t.resume {
			rr.r.kickResume()
		}
		if t.low {
			rr.r.e.signalRoom()
		}
		if t.waited {
			now = clock.Now()
		}
		rr.obs.QueueWait(time.Duration(max(0, now.UnixNano()-t.enq)))
		var v verdict
		v, now = rr.deliver(t.job, b, now)
		if v == handedOff {
			continue // the spill delivery finishes the job
		}
		if v == acked {
			t.p.ack(t.s, t.seq, rr.bit)
		}
		rr.q.finish(t.job)
		t.p.doneRunning()
	}
}

// verdict is how a synchronous delivery ended.
type verdict int

const (
	// notAcked: the partition was revoked or lost, or the engine closed
	// hard; the next owner redelivers the record.
	notAcked verdict = iota
	// acked: delivered or dead-lettered.
	acked
	// handedOff: the route detached, and the record went to its spill
	// topic, whose delivery finishes the job.
	handedOff
)

// deliver runs one record through the route until it is acknowledged or
// dead-lettered, its partition is revoked or lost or the engine is shut
// down hard (not acknowledged: the next owner redelivers), or the route
// detaches (the record is handed to the spill topic).
// start is the current time; deliver returns the time it finished.
func (rr *routeRunner) deliver(j job, b *backoff.ExponentialBackOff, start time.Time) (verdict, time.Time) {
	p := j.p
	m := j.s.msg // a copy: the slot's data is released once every route acknowledged
	ctx := p.ctx
	clock := rr.r.e.clock
	for attempt := 1; ; attempt++ {
		if p.revoked.Load() || ctx.Err() != nil {
			return notAcked, start
		}
		if attempt > 1 {
			start = clock.Now()
		}
		if rr.spill != nil && rr.spill.spilling() {
			rr.spill.adopt(j, 1, start)
			return handedOff, start
		}
		m.Attempt = attempt
		actx, release := ctx, func() {}
		if rr.spill != nil {
			actx, release = rr.spill.attempt(ctx, nil)
		}
		err := rr.call(actx, m)
		release()
		end := clock.Now()
		d := end.Sub(start)
		if err == nil {
			rr.obs.Delivered(OutcomeSuccess, d)
			return acked, end
		}
		if attempt == 1 {
			b.Reset()
		}
		if ctx.Err() != nil {
			return notAcked, end
		}
		if rr.spill != nil && rr.spill.spilling() {
			continue // detached meanwhile: the record goes to the spill topic
		}
		if rr.deadLetters(err, attempt) {
			if !rr.deadLetter(ctx, p, m, err, attempt, b) {
				return notAcked, clock.Now()
			}
			rr.obs.Delivered(OutcomeDeadLetter, d)
			return acked, clock.Now()
		}
		rr.retrying(&m, err, d)
		if !rr.wait(ctx, p, nextDelay(b, err)) {
			return notAcked, clock.Now()
		}
	}
}

// deadLetters reports whether a record whose attempt failed with err goes
// to the dead-letter function now rather than being retried: with a
// dead-letter function, after a permanent error or the last attempt.
func (rr *routeRunner) deadLetters(err error, attempt int) bool {
	return rr.cfg.DeadLetter != nil && (errors.Is(err, ErrPermanent) || (rr.cfg.MaxAttempts > 0 && attempt >= rr.cfg.MaxAttempts))
}

// retrying reports a failed attempt that will be retried.
func (rr *routeRunner) retrying(m *Message, err error, d time.Duration) {
	rr.obs.Delivered(OutcomeRetry, d)
	rr.r.e.log.Warn().Err(err).Str("topic", m.Topic).Int32("partition", m.Partition).
		Int64("offset", m.Offset).Str("route", rr.name).Int("attempt", m.Attempt).Msg("delivery failed, retrying")
}

// newBackoff is a route's retry schedule.
func (rr *routeRunner) newBackoff() *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     rr.cfg.InitialBackoff,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         rr.cfg.MaxBackoff,
	}
	b.Reset()
	return b
}

// deadLetter publishes m to the route's dead-letter function, retrying with
// backoff while that fails: nothing is dropped. A record's first failure
// is logged as an error, and a permanent one counted once; the retries
// after it are logged at debug level only.
func (rr *routeRunner) deadLetter(ctx context.Context, p *partition, m Message, cause error, attempts int, b *backoff.ExponentialBackOff) bool {
	b.Reset()
	counted := false
	for try := 1; ; try++ {
		err := rr.safe(func() error { return rr.cfg.DeadLetter(ctx, m, cause, attempts) })
		if err == nil {
			rr.r.e.log.Warn().Err(cause).Str("topic", m.Topic).Int32("partition", m.Partition).
				Int64("offset", m.Offset).Str("route", rr.name).Int("attempts", attempts).Msg("record dead-lettered")
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		permanent := errors.Is(err, ErrPermanent)
		firstPermanent := permanent && !counted
		if firstPermanent {
			counted = true
			rr.obs.DeadLetterFailed()
		}
		ev := rr.r.e.log.Debug()
		if try == 1 || firstPermanent {
			ev = rr.r.e.log.Error()
		}
		ev.Err(err).Str("topic", m.Topic).Int32("partition", m.Partition).Int64("offset", m.Offset).
			Str("route", rr.name).Bool("permanent", permanent).Int("try", try).
			Msg("dead-letter publish failed; the route holds the record and retries")
		if !rr.wait(ctx, p, nextDelay(b, err)) {
			return false
		}
	}
}

// nextDelay is the backoff's next interval, or the route's retry-after hint
// when that asks for longer.
func nextDelay(b *backoff.ExponentialBackOff, err error) time.Duration {
	d := b.NextBackOff()
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > d {
		d = ra.After
	}
	return d
}

// wait sleeps d unless the partition is revoked or ctx ends first. A
// route that detaches meanwhile cuts the wait short (true): the record goes
// to the spill topic at once.
func (rr *routeRunner) wait(ctx context.Context, p *partition, d time.Duration) bool {
	var detach <-chan struct{}
	if rr.spill != nil && !rr.spill.spilling() {
		detach = rr.spill.changed()
	}
	select {
	case <-rr.r.e.clock.After(d):
		return !p.revoked.Load()
	case <-detach:
		return !p.revoked.Load()
	case <-ctx.Done():
		return false
	case <-p.gone:
		return false
	}
}

// call runs one synchronous attempt, within RouteConfig.Timeout.
func (rr *routeRunner) call(ctx context.Context, m Message) error {
	if rr.cfg.Timeout <= 0 {
		return rr.safe(func() error { return rr.cfg.Route.Deliver(ctx, m) })
	}
	actx, cancel := context.WithTimeout(ctx, rr.cfg.Timeout)
	defer cancel()
	err := rr.safe(func() error { return rr.cfg.Route.Deliver(actx, m) })
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		return &TimeoutError{After: rr.cfg.Timeout, Err: err}
	}
	return err
}

// safe runs fn, turning a panic (even panic(nil)) into a *PanicError.
func (rr *routeRunner) safe(fn func() error) (err error) {
	panicked := true
	defer func() {
		if r := recover(); r != nil || panicked {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	err = fn()
	panicked = false
	return err
}
