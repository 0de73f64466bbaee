package fanout

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// A route with a SpillConfig is in one of three modes.
const (
	// attached: records go to the route.
	attached int32 = iota
	// detached: records go to the spill topic; the route is fed from it
	// by someone else.
	detached
	// reattaching: new records wait in the queue while the last spills
	// are acknowledged and the spill topic drains; then attached.
	reattaching
)

// watchTick is how often the engine's watchdog looks at its spill routes.
const watchTick = 100 * time.Millisecond

// spillRunner detaches and re-attaches one route (see SpillConfig).
type spillRunner struct {
	rr  *routeRunner
	cfg SpillConfig

	mode     atomic.Int32
	inflight atomic.Int64  // spill produces in flight
	freed    chan struct{} // wakes the spill dispatcher when one ends
	spilled  atomic.Int64  // records acknowledged through the spill topic
	backlog  atomic.Int64  // the last backlog Backlog reported
	// reattachSince is when the current re-attach began (unix
	// nanoseconds).
	reattachSince atomic.Int64
	// detachedAt is when the route last detached (unix nanoseconds), and
	// peak the largest backlog read since.
	detachedAt, peak atomic.Int64
	// change is closed, and replaced, at every change of mode: a retry
	// waiting out its backoff hands its record over at once on detach.
	change atomic.Pointer[chan struct{}]

	// attached is cancelled when the route detaches: the route's attempts
	// in flight end, and their records go to the spill topic, so no record
	// holds its partition's commit while the route stays stalled. A new
	// one is made at each re-attach. mu serialises changes of mode (the
	// watchdog and a partition's assignment both make them).
	mu       sync.Mutex
	attached atomic.Pointer[attachment]
}

// attachment is one attached period of a route.
type attachment struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newAttachment() *attachment {
	ctx, cancel := context.WithCancel(context.Background())
	return &attachment{ctx: ctx, cancel: cancel}
}

// errDetached ends an attempt in flight when its route detaches.
var errDetached = errors.New("the route detached: the record goes to its spill topic")

// attempt returns ctx for one attempt at the route, ended as well when
// the route detaches, and the function that releases it (call it once the
// attempt ended). onDetach, if not nil, runs when the route detaches
// first.
func (s *spillRunner) attempt(ctx context.Context, onDetach func()) (context.Context, func()) {
	a := s.attached.Load()
	actx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(a.ctx, func() {
		cancel()
		if onDetach != nil {
			onDetach()
		}
	})
	return actx, func() {
		stop()
		cancel()
	}
}

func newSpillRunner(rr *routeRunner, cfg SpillConfig) *spillRunner {
	s := &spillRunner{rr: rr, cfg: cfg, freed: make(chan struct{}, 1)}
	s.backlog.Store(-1)
	s.attached.Store(newAttachment())
	ch := make(chan struct{})
	s.change.Store(&ch)
	return s
}

// changed is closed at the next change of mode.
func (s *spillRunner) changed() <-chan struct{} { return *s.change.Load() }

// setMode changes the mode and tells whoever waits for a change.
func (s *spillRunner) setMode(m int32) int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.mode.Swap(m)
	if old == m {
		return old
	}
	switch {
	case old == attached:
		s.attached.Load().cancel()
	case m == attached:
		s.attached.Store(newAttachment())
	}
	ch := make(chan struct{})
	close(*s.change.Swap(&ch))
	return old
}

// spilling reports whether records of the route go to the spill topic: it
// is detached, or re-attaching (the spill topic may still hold earlier
// records of a key).
func (s *spillRunner) spilling() bool { return s.mode.Load() != attached }

// dispatch is the spill dispatcher goroutine: while the route is detached
// it takes the route's jobs and produces them to the spill topic, at most
// InFlight at once. Engine-owned; it returns once the queue is closed and
// drained and its produces have ended.
func (s *spillRunner) dispatch() {
	defer s.rr.r.e.wg.Done()
	s.rr.dispatchLoop(takeSpill, int64(s.cfg.InFlight), &s.inflight, s.freed, func(j job, now time.Time) {
		s.produce(j, 1, now)
	})
}

// adopt produces a job to the spill topic that a route worker gave back
// because the route detached. The delivery finishes the job (acknowledged
// once the spill topic has it).
func (s *spillRunner) adopt(j job, attempt int, now time.Time) {
	s.inflight.Add(1)
	s.produce(j, attempt, now)
}

// produce starts the produce of a job already counted in s.inflight.
func (s *spillRunner) produce(j job, attempt int, now time.Time) {
	d := deliveries.Get().(*delivery)
	d.rr, d.job, d.attempt, d.start = s.rr, j, attempt, now
	d.spill, d.slots, d.freed = s, &s.inflight, s.freed
	d.issue()
}

// watch is the engine's watchdog goroutine: it moves each spill route
// between its modes. Engine-owned; it returns when the engine closes.
func (e *Engine) watch(runners []*spillRunner) {
	defer e.wg.Done()
	t := time.NewTicker(watchTick)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.closing:
			return
		case <-t.C:
		}
		now := e.clock.Now().UnixNano()
		for _, s := range runners {
			s.step(e.ctx, now)
		}
	}
}

// step advances the route's mode:
//   - attached, congested for After: detach;
//   - detached, backlog down to the route's buffer: stop spilling new
//     records (re-attaching). Down: below the largest backlog read since
//     the route detached, or detached for After. (Right after a detach
//     the backlog is about what the buffer held and still rising as the
//     spills land: a reading then says nothing of the route's pace, and
//     re-attaching at once would hold the receiver back again.)
//   - re-attaching: once no spill is in flight and the backlog is 0,
//     attach; if the route stays congested for After meanwhile, detach
//     again.
func (s *spillRunner) step(ctx context.Context, now int64) {
	q := s.rr.q
	after := s.cfg.After.Nanoseconds()
	congested := func() bool {
		since := q.congestedSince.Load()
		return since != 0 && now-since >= after
	}
	switch s.mode.Load() {
	case attached:
		if congested() {
			s.detach("congested for " + s.cfg.After.String())
		}
	case detached:
		n, ok := s.readBacklog(ctx)
		if !ok {
			return
		}
		peak := max(s.peak.Load(), n)
		s.peak.Store(peak)
		if n <= int64(q.capacity) && (n < peak || now-s.detachedAt.Load() >= after) {
			s.setMode(reattaching)
			s.reattachSince.Store(now)
			q.setTaker(takeNone)
		}
	case reattaching:
		if congested() && now-s.reattachSince.Load() >= after {
			s.detach("congested again while re-attaching")
			return
		}
		if s.inflight.Load() != 0 {
			return
		}
		if n, ok := s.readBacklog(ctx); ok && n == 0 {
			s.setMode(attached)
			q.setTaker(takeRoute)
			s.rr.r.e.log.Info().Str("topic", s.rr.r.topic).Str("route", s.rr.name).Msg("route re-attached: its spill topic is drained")
		}
	}
}

// detach sends the route's records to the spill topic from now on.
func (s *spillRunner) detach(why string) {
	if s.mode.Load() == detached {
		return
	}
	s.peak.Store(0)
	s.detachedAt.Store(s.rr.r.e.clock.Now().UnixNano())
	if s.setMode(detached) == detached {
		return
	}
	s.rr.q.setTaker(takeSpill)
	s.rr.r.e.log.Warn().Str("topic", s.rr.r.topic).Str("route", s.rr.name).Str("why", why).
		Msg("route detached: its records go to its spill topic until it catches up")
}

// readBacklog asks Backlog, bounded, and keeps the answer for Stats.
func (s *spillRunner) readBacklog(ctx context.Context) (int64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := s.cfg.Backlog(ctx)
	if err != nil {
		s.rr.r.e.log.Debug().Err(err).Str("topic", s.rr.r.topic).Str("route", s.rr.name).Msg("spill backlog")
		return 0, false
	}
	s.backlog.Store(n)
	return n, true
}

// assigned is called when a partition is assigned: a new owner keeps
// spilling while the spill topic may hold earlier records of its keys.
func (s *spillRunner) assigned(ctx context.Context) {
	if s.spilling() {
		return
	}
	if n, ok := s.readBacklog(ctx); !ok || n > 0 {
		// Unknown counts as not empty: ordering before throughput.
		s.detach("the spill topic holds records not yet delivered")
	}
}
