package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
)

// event is one record as the receiver's poll loop hands it to a design.
type event struct {
	seq      int64
	ingested time.Time // when the poll loop handed it to the design
	payload  []byte
}

// routeFn processes one event for one route. It is what the original
// proposal calls r.Process. The harness builds it; it knows the run's
// context (a stalled route waits on it).
type routeFn func(ingested time.Time, payload []byte)

// design is one way of fanning a receiver's events out to its routes.
type design interface {
	// start prepares the design for routes (routes[0] is the fast route,
	// routes[1] the slow one).
	start(routes []routeFn) error
	// next hands one event to the design, as the receiver's poll loop does
	// for every event, and returns when the design accepted it. It returns
	// ctx's error if the run ended first.
	next(ctx context.Context, ev *event) error
	// stop waits for everything the design started. The run's context is
	// already cancelled, so stalled routes have returned.
	stop() error
}

// designSpec names a design and builds a fresh instance per run.
type designSpec struct {
	id    int
	name  string
	build func() design
}

// Sizes of the naive designs' shared resources, and of the engine's routes.
const (
	semaphoreCap   = 64   // design (3)
	poolChannel    = 1024 // design (4)
	poolWorkers    = 64   // design (4)
	engineFastWork = 4    // design (5): fast route workers
	engineSlowWork = 64   // design (5): slow route workers
	engineBuffer   = 1024 // design (5): each route's buffer
	// spillAfter is design (6)'s spill.after: short beside the run's
	// duration so that most of a stalled run is spent detached (the
	// product's default is 30s).
	spillAfter = 250 * time.Millisecond
)

var designs = []designSpec{
	{1, "(1) WaitGroup per event", func() design { return &waitAll{} }},
	{2, "(2) goroutine per route per event", func() design { return &goPerEvent{} }},
	{3, fmt.Sprintf("(3) shared semaphore, cap %d", semaphoreCap), func() design { return &semaphore{max: semaphoreCap} }},
	{4, fmt.Sprintf("(4) shared channel %d + %d workers", poolChannel, poolWorkers), func() design { return &workerPool{size: poolChannel, workers: poolWorkers} }},
	{5, "(5) fanout engine", func() design { return &engineDesign{} }},
	{6, fmt.Sprintf("(6) fanout engine, slow route spills after %s", spillAfter), func() design { return &engineDesign{spill: true} }},
}

// waitAll is proposal 1: call every route in parallel and wait for all of
// them before taking the next event.
type waitAll struct{ routes []routeFn }

func (d *waitAll) start(routes []routeFn) error { d.routes = routes; return nil }

func (d *waitAll) next(ctx context.Context, ev *event) error {
	var wg sync.WaitGroup
	for _, r := range d.routes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r(ev.ingested, ev.payload)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func (d *waitAll) stop() error { return nil }

// goPerEvent is proposal 2: one goroutine per route per event, nobody
// waits. The WaitGroup only lets the harness tear the run down; next
// never waits on it.
type goPerEvent struct {
	routes []routeFn
	wg     sync.WaitGroup
}

func (d *goPerEvent) start(routes []routeFn) error { d.routes = routes; return nil }

func (d *goPerEvent) next(ctx context.Context, ev *event) error {
	for _, r := range d.routes {
		d.wg.Go(func() { r(ev.ingested, ev.payload) })
	}
	return nil
}

func (d *goPerEvent) stop() error { d.wg.Wait(); return nil }

// semaphore is proposal 3: a goroutine per route per event, at most max of
// them at once for the whole receiver, counted under a sync.Cond as the
// proposal has it.
type semaphore struct {
	routes []routeFn
	max    int
	mu     sync.Mutex
	cond   sync.Cond
	count  int
	wg     sync.WaitGroup
}

func (d *semaphore) start(routes []routeFn) error {
	d.routes = routes
	d.cond.L = &d.mu
	return nil
}

func (d *semaphore) next(ctx context.Context, ev *event) error {
	for _, r := range d.routes {
		d.mu.Lock()
		for d.count >= d.max {
			d.cond.Wait() // woken when a route returns; stalled ones return when the run ends
		}
		if err := ctx.Err(); err != nil {
			d.mu.Unlock()
			return err
		}
		d.count++
		d.wg.Go(func() {
			r(ev.ingested, ev.payload)
			d.mu.Lock()
			d.count--
			d.cond.Signal()
			d.mu.Unlock()
		})
		d.mu.Unlock()
	}
	return nil
}

func (d *semaphore) stop() error { d.wg.Wait(); return nil }

// workerPool is proposal 4: one buffered channel and one worker pool for
// the whole receiver; next queues one job per route.
type workerPool struct {
	size, workers int
	routes        []routeFn
	ch            chan job
	wg            sync.WaitGroup
}

type job struct {
	r  routeFn
	ev *event
}

func (d *workerPool) start(routes []routeFn) error {
	d.routes = routes
	d.ch = make(chan job, d.size)
	for range d.workers {
		d.wg.Go(func() {
			for j := range d.ch {
				j.r(j.ev.ingested, j.ev.payload)
			}
		})
	}
	return nil
}

func (d *workerPool) next(ctx context.Context, ev *event) error {
	for _, r := range d.routes {
		// The proposal sends unconditionally; the select only lets the
		// harness end a run whose channel is full.
		select {
		case d.ch <- job{r: r, ev: ev}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (d *workerPool) stop() error {
	close(d.ch)
	d.wg.Wait()
	return nil
}

// engineDesign is this project's engine: one receiver, one partition, each
// route with its own bounded buffer and worker pool. next offers the record
// and, refused with ErrCongested, waits on the engine's Room signal until
// the partition may flow and offers it again, as the consumer's poll loop
// does (it pauses the partition meanwhile).
type engineDesign struct {
	spill bool // (6): the slow route detaches to a spill topic
	e     *fanout.Engine
	r     *fanout.Receiver
	m     fanout.Message // reused: Offer copies it
}

// parking stands in for a spill topic: its producer acknowledges each
// record at once and nothing replays it during the run, so its backlog is
// every record it took.
type parking struct{ n atomic.Int64 }

func (p *parking) Name() string { return "parking" }

func (p *parking) Deliver(context.Context, fanout.Message) error {
	p.n.Add(1)
	return nil
}

func (p *parking) DeliverAsync(_ context.Context, _ fanout.Message, done fanout.Completion) {
	p.n.Add(1)
	done.Done(nil)
}

func (p *parking) backlog(context.Context) (int64, error) { return p.n.Load(), nil }

const engineTopic = "bench"

func (d *engineDesign) start(routes []routeFn) error {
	if len(routes) != 2 {
		return fmt.Errorf("engine design wants 2 routes, got %d", len(routes))
	}
	adapt := func(name string, fn routeFn) fanout.Route {
		return fanout.RouteFunc{RouteName: name, Fn: func(_ context.Context, m fanout.Message) error {
			fn(m.Timestamp, m.Value)
			return nil
		}}
	}
	slow := fanout.RouteConfig{Route: adapt("slow", routes[1]), Workers: engineSlowWork, Buffer: engineBuffer, Ordering: fanout.OrderNone}
	if d.spill {
		p := &parking{}
		slow.Spill = &fanout.SpillConfig{Route: p, After: spillAfter, Backlog: p.backlog, Topic: "parking"}
	}
	e, err := fanout.New([]fanout.ReceiverConfig{{
		Topic: engineTopic,
		Routes: []fanout.RouteConfig{
			{Route: adapt("fast", routes[0]), Workers: engineFastWork, Buffer: engineBuffer, Ordering: fanout.OrderNone},
			slow,
		},
	}}, fanout.Options{})
	if err != nil {
		return err
	}
	d.e = e
	d.r = e.Receiver(engineTopic)
	d.r.Assign(0)
	d.m = fanout.Message{Topic: engineTopic, Partition: 0}
	return nil
}

func (d *engineDesign) next(ctx context.Context, ev *event) error {
	d.m.Offset = ev.seq
	d.m.Timestamp = ev.ingested // carries the ingestion time to the routes
	d.m.Value = ev.payload
	for {
		err := d.r.Offer(&d.m)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fanout.ErrCongested) {
			return err
		}
		for d.r.Paused(0) {
			select {
			case <-d.e.Room():
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

func (d *engineDesign) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return d.e.Close(ctx)
}
