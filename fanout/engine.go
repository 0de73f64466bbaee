package fanout

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/rs/zerolog"
)

// ErrNotAssigned is returned by Offer for a partition that is not assigned
// (never assigned, revoked or lost).
var ErrNotAssigned = errors.New("fanout: partition not assigned")

// ErrClosed is returned by Offer once Close has begun.
var ErrClosed = errors.New("fanout: engine closed")

// Engine runs the receivers' route worker pools. It owns every worker
// goroutine: they start in New and stop in Close.
type Engine struct {
	receivers map[string]*Receiver
	order     []*Receiver
	log       zerolog.Logger
	clock     Clock

	ctx    context.Context // parent of all deliveries; cancelled on forced close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every worker goroutine

	closeOnce sync.Once
	closeErr  error
	closing   chan struct{} // closed when Close begins
	done      chan struct{} // closed once Close began and every worker returned

	// room is the one signal that there is room again: a paused partition
	// may be offered to, or a route drained to its low-water mark (see
	// Room).
	room chan struct{}
}

// New validates the configuration and starts every route's workers.
func New(receivers []ReceiverConfig, opts Options) (*Engine, error) {
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	e := &Engine{receivers: make(map[string]*Receiver), clock: opts.Clock, log: zerolog.Nop(), room: make(chan struct{}, 1), done: make(chan struct{}), closing: make(chan struct{})}
	if opts.Logger != nil {
		e.log = *opts.Logger
	}
	var errs []error
	for _, rc := range receivers {
		rc.setDefaults()
		if err := rc.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if e.receivers[rc.Topic] != nil {
			errs = append(errs, fmt.Errorf("duplicate receiver topic %q", rc.Topic))
			continue
		}
		r := &Receiver{
			e:           e,
			topic:       rc.Topic,
			maxInflight: rc.MaxInflight,
			lowInflight: rc.MaxInflight / 2,
			maxBytes:    rc.MaxBytes,
			lowBytes:    rc.MaxBytes / 2,
			seed:        maphash.MakeSeed(),
			obs:         opts.Observer,
			parts:       make(map[int32]*partition),
		}
		for i, c := range rc.Routes {
			r.routes = append(r.routes, newRouteRunner(r, i, c, opts.Observer.Route(rc.Topic, c.Route.Name())))
		}
		e.receivers[rc.Topic] = r
		e.order = append(e.order, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	var spills []*spillRunner
	for _, r := range e.order {
		for _, rr := range r.routes {
			rr.start()
			if rr.spill != nil {
				spills = append(spills, rr.spill)
			}
		}
	}
	if len(spills) > 0 {
		e.wg.Add(1)
		go e.watch(spills)
	}
	return e, nil
}

// Receiver returns the receiver of topic, or nil.
func (e *Engine) Receiver(topic string) *Receiver { return e.receivers[topic] }

// Topics returns the receivers' topics in configuration order.
func (e *Engine) Topics() []string {
	out := make([]string, len(e.order))
	for i, r := range e.order {
		out[i] = r.topic
	}
	return out
}

// Room receives a value when there may be room again since the last
// receive: a partition that Offer refused may be offered to (see
// Receiver.Paused), or a route's queue drained to half its buffer (see
// Receiver.Saturated). It is the engine's only such signal; signals
// coalesce, so a receiver re-checks everything it waits for.
func (e *Engine) Room() <-chan struct{} { return e.room }

func (e *Engine) signalRoom() {
	select {
	case e.room <- struct{}{}:
	default:
	}
}

// Close drains the engine for shutdown: Offer refuses new records, workers
// finish what is queued (retrying as configured), and Close waits until
// they are done or ctx ends. Past ctx it cancels every delivery, drops what
// is still queued and returns an error at once: a delivery that ignores its
// context does not hold Close, its worker ends when the delivery returns.
// Committable stays readable after Close. Close is idempotent; later calls
// return the first result.
func (e *Engine) Close(ctx context.Context) error {
	e.closeOnce.Do(func() { e.closeErr = e.close(ctx) })
	return e.closeErr
}

func (e *Engine) close(ctx context.Context) error {
	close(e.closing)
	for _, r := range e.order {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		for _, rr := range r.routes {
			rr.q.close()
		}
	}
	// Owned by Close; it ends when the last worker returns.
	go func() { e.wg.Wait(); close(e.done) }()
	select {
	case <-e.done:
		e.cancel()
		return nil
	case <-ctx.Done():
	}
	e.cancel()
	for _, r := range e.order {
		r.mu.RLock()
		for _, p := range r.parts {
			for _, rr := range r.routes {
				rr.q.purge(p)
			}
		}
		r.mu.RUnlock()
	}
	return fmt.Errorf("fanout: drain cut short: %w", ctx.Err())
}

// Wait blocks, after Close, until every worker goroutine has returned or
// ctx ends. After a Close cut short it tells whether deliveries that
// ignored their context have finished.
func (e *Engine) Wait(ctx context.Context) error {
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
