package fanout

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	grace     time.Duration

	ctx    context.Context // parent of all deliveries; cancelled on forced close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every worker goroutine

	closeOnce sync.Once
	closeErr  error

	// room is signalled when a route's queue drains to its low-water mark:
	// a poll may find room again (see RoomSignal).
	room chan struct{}
}

// Receiver is one topic's routes and its assigned partitions. Offer,
// Assign, Revoke and Lose may be called from any goroutine.
type Receiver struct {
	e           *Engine
	topic       string
	maxInflight int
	lowInflight int
	routes      []*routeRunner
	seed        maphash.Seed
	onResume    func(string, int32)
	obs         Observer

	mu     sync.RWMutex // protects parts and closed
	parts  map[int32]*partition
	closed bool

	// paused counts assigned partitions held paused (see Saturated).
	paused atomic.Int32
}

// New validates the configuration and starts every route's workers.
func New(receivers []ReceiverConfig, opts Options) (*Engine, error) {
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.CloseGrace <= 0 {
		opts.CloseGrace = 2 * time.Second
	}
	e := &Engine{receivers: make(map[string]*Receiver), clock: opts.Clock, grace: opts.CloseGrace, log: zerolog.Nop(), room: make(chan struct{}, 1)}
	if opts.Logger != nil {
		e.log = *opts.Logger
	}
	var errs []error
	for _, rc := range receivers {
		if rc.MaxInflight == 0 {
			rc.MaxInflight = 10000
		}
		rc.Routes = append([]RouteConfig(nil), rc.Routes...)
		for i := range rc.Routes {
			rc.Routes[i].setDefaults()
		}
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
			seed:        maphash.MakeSeed(),
			onResume:    opts.OnResume,
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
	for _, r := range e.order {
		for _, rr := range r.routes {
			for range rr.cfg.Workers {
				e.wg.Add(1)
				go rr.work()
			}
		}
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

// Topic returns the receiver's topic.
func (r *Receiver) Topic() string { return r.topic }

// Assign starts tracking a partition. Assigning an assigned partition keeps
// its state.
func (r *Receiver) Assign(partition int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.parts[partition] != nil {
		return
	}
	r.parts[partition] = newPartition(r, partition, r.e.ctx)
}

func (r *Receiver) partition(id int32) *partition {
	r.mu.RLock()
	p := r.parts[id]
	r.mu.RUnlock()
	return p
}

// Offer hands a record to every route of the receiver without blocking. It
// returns nil when the record was accepted, ErrCongested when the partition
// must pause (offer the record again after OnResume), ErrNotAssigned or
// ErrClosed. Records of one partition must be offered in offset order from
// one goroutine at a time. The engine copies the Message; its byte slices
// must stay unmodified until every route acknowledged.
func (r *Receiver) Offer(m *Message) error {
	_, err := r.OfferBatch(unsafe.Slice(m, 1))
	return err
}

// OfferBatch offers records of one partition, in offset order, as Offer
// does, stopping at the first refusal. It returns how many records (a
// prefix of ms) were accepted and, when not all, the error that refused the
// next one. It takes the partition's and the routes' locks once for the
// whole batch and wakes each route's workers once, so it is much cheaper
// per record than a loop of Offer calls. The engine copies the Messages.
func (r *Receiver) OfferBatch(ms []Message) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	r.mu.RLock()
	p, closed := r.parts[ms[0].Partition], r.closed
	r.mu.RUnlock()
	if closed {
		return 0, ErrClosed
	}
	if p == nil {
		return 0, ErrNotAssigned
	}
	p.mu.Lock()
	if p.revoked.Load() {
		p.mu.Unlock()
		return 0, ErrNotAssigned
	}
	if p.paused {
		p.mu.Unlock()
		return 0, ErrCongested
	}
	// Lock every queue in index order: each record is accepted by all of
	// its routes or by none, and workers see whole records only.
	for _, rr := range r.routes {
		rr.q.mu.Lock()
	}
	now := r.e.clock.Now().UnixNano()
	var woken, filtered [MaxRoutes]int32
	var (
		n        int
		err      error
		cause    string
		paused   bool
		complete bool
	)
	for i := range ms {
		m := &ms[i]
		if m.Partition != p.id {
			err = fmt.Errorf("fanout: OfferBatch: record of partition %d in a batch of partition %d", m.Partition, p.id)
			break
		}
		if p.tail-p.head >= uint64(len(p.slots)) {
			p.setPaused(true)
			paused, err = true, ErrCongested
			break
		}
		var mask, skip uint64
		for i, rr := range r.routes {
			if rr.cfg.Filter != nil && !rr.cfg.Filter(m) {
				skip |= 1 << uint(i)
				continue
			}
			mask |= 1 << uint(i)
		}
		refused := -1
		for i := range bitsOf(mask) {
			if !r.routes[i].q.hasRoomLocked() {
				refused = i
				break
			}
		}
		if refused >= 0 {
			if r.routes[refused].q.closed {
				err = ErrClosed
			} else {
				p.setPaused(true)
				paused, err, cause = true, ErrCongested, r.routes[refused].name
			}
			break
		}
		seq := p.tail
		s := p.slot(seq)
		s.msg = *m
		s.msg.Attempt = 0
		s.accepted = now
		s.pending.Store(mask)
		p.tail++
		var key uint64
		keyed := false
		for i := range bitsOf(mask) {
			rr := r.routes[i]
			j := job{p: p, seq: seq, enq: now}
			switch rr.cfg.Ordering {
			case OrderKey:
				if m.Key != nil {
					if !keyed {
						key, keyed = maphash.Bytes(r.seed, m.Key), true
					}
					j.key, j.keyed = key, true
				}
			case OrderPartition:
				j.key, j.keyed = uint64(uint32(p.id)), true
			}
			if rr.q.pushLocked(j) {
				woken[i]++
			}
		}
		for i := range bitsOf(skip) {
			filtered[i]++
		}
		complete = complete || mask == 0
		n++
	}
	for _, rr := range r.routes {
		rr.q.mu.Unlock()
	}
	p.mu.Unlock()
	for i, rr := range r.routes {
		rr.q.wake(int(woken[i]))
		for range filtered[i] {
			rr.obs.Delivered(OutcomeFiltered, 0)
		}
	}
	if paused {
		r.obs.PartitionPaused(r.topic, p.id, cause)
	}
	if complete {
		p.advance()
	}
	return n, err
}

// bitsOf yields the indexes of the set bits of m, lowest first.
func bitsOf(m uint64) func(func(int) bool) {
	return func(yield func(int) bool) {
		for m != 0 {
			i := bits.TrailingZeros64(m)
			m &^= 1 << uint(i)
			if !yield(i) {
				return
			}
		}
	}
}

func trailingZeros(m uint64) int { return bits.TrailingZeros64(m) }

// RoomSignal receives a value when some route's queue drained to half its
// buffer since the last receive. A caller that stopped fetching because
// every receiver was saturated waits on it (see Saturated).
func (e *Engine) RoomSignal() <-chan struct{} { return e.room }

func (e *Engine) signalRoom() {
	select {
	case e.room <- struct{}{}:
	default:
	}
}

// Flowing reports whether some assigned partition of the receiver is not
// paused, so that a poll may bring it records.
func (r *Receiver) Flowing() bool {
	r.mu.RLock()
	n := int32(len(r.parts))
	r.mu.RUnlock()
	return n > r.paused.Load()
}

// Saturated reports whether the receiver flows but one of its routes' queues
// is above half full. Records fetched for it now would mostly be refused,
// and a refusal pauses the partition, which makes a Kafka client drop and
// later refetch what it had prefetched; a caller does better to wait for
// RoomSignal when every flowing receiver is saturated. Lock-free.
func (r *Receiver) Saturated() bool {
	if !r.Flowing() {
		return false
	}
	for _, rr := range r.routes {
		if rr.q.depthNow.Load() > int64(rr.q.low) {
			return true
		}
	}
	return false
}

// Paused reports whether the engine holds the partition paused.
func (r *Receiver) Paused(partition int32) bool {
	p := r.partition(partition)
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// Commit is a position to commit: the offset after the acknowledged
// prefix and the Epoch of the last record in it.
type Commit struct {
	Offset int64
	Epoch  int32
}

// Committable returns the position to commit for the partition: the offset
// after the longest prefix of offered records that every route
// acknowledged. ok is false when the partition is not assigned or no record
// has completed yet.
func (r *Receiver) Committable(partition int32) (c Commit, ok bool) {
	p := r.partition(partition)
	if p == nil {
		return Commit{}, false
	}
	return p.commit()
}

func (p *partition) commit() (Commit, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Commit{Offset: p.committed, Epoch: p.epoch}, p.committed >= 0
}

// Revoke stops a partition: its queued records are dropped, its retries
// abandoned, and Revoke waits, until ctx ends, for its running deliveries.
// It returns the final committable position (ok false when none) and ctx's
// error if the wait was cut short, in which case the remaining deliveries
// are cancelled. The partition's state is forgotten either way; records
// offered again after a new Assign start a new window.
func (r *Receiver) Revoke(ctx context.Context, partition int32) (c Commit, ok bool, err error) {
	p := r.detach(partition)
	if p == nil {
		return Commit{}, false, nil
	}
	err = p.waitIdle(ctx)
	p.cancel()
	c, ok = p.commit()
	return c, ok, err
}

// Lose drops a partition at once, without waiting: its deliveries are
// cancelled and nothing of it should be committed.
func (r *Receiver) Lose(partition int32) {
	if p := r.detach(partition); p != nil {
		p.cancel()
	}
}

func (r *Receiver) detach(partition int32) *partition {
	r.mu.Lock()
	p := r.parts[partition]
	delete(r.parts, partition)
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	p.mu.Lock()
	p.revoked.Store(true)
	p.setPaused(false)
	close(p.gone)
	p.mu.Unlock()
	// Wake revoke even if the last delivery ended before the flag was set.
	if p.running.Load() == 0 {
		select {
		case p.idle <- struct{}{}:
		default:
		}
	}
	resume := false
	for _, rr := range r.routes {
		if _, res := rr.q.purge(p); res {
			resume = true
		}
	}
	if resume {
		r.kickResume()
	}
	return p
}

// Partitions returns the assigned partitions in ascending order.
func (r *Receiver) Partitions() []int32 {
	r.mu.RLock()
	out := make([]int32, 0, len(r.parts))
	for id := range r.parts {
		out = append(out, id)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// canResumeLocked reports whether paused partition p may flow again: no
// route of the receiver is congested and p's window has drained to low
// water. p.mu must be held.
func (r *Receiver) canResumeLocked(p *partition) bool {
	if p.tail-p.head > uint64(r.lowInflight) {
		return false
	}
	for _, rr := range r.routes {
		if rr.q.congested.Load() {
			return false
		}
	}
	return true
}

// kickResume resumes every paused partition that may flow again. It runs
// when a route leaves congestion.
func (r *Receiver) kickResume() {
	r.mu.RLock()
	var resumed []*partition
	for _, p := range r.parts {
		p.mu.Lock()
		if p.paused && r.canResumeLocked(p) {
			p.setPaused(false)
			resumed = append(resumed, p)
		}
		p.mu.Unlock()
	}
	r.mu.RUnlock()
	for _, p := range resumed {
		r.resumed(p)
	}
}

func (r *Receiver) resumed(p *partition) {
	r.obs.PartitionResumed(r.topic, p.id)
	if r.onResume != nil {
		r.onResume(r.topic, p.id)
	}
}

// Close drains the engine for shutdown: Offer refuses new records, workers
// finish what is queued (retrying as configured), and Close waits until
// they are done or ctx ends. Past ctx it cancels every delivery, drops what
// is still queued, waits up to Options.CloseGrace for the workers and
// returns an error. Committable stays readable after Close. Close is
// idempotent; later calls return the first result.
func (e *Engine) Close(ctx context.Context) error {
	e.closeOnce.Do(func() { e.closeErr = e.close(ctx) })
	return e.closeErr
}

func (e *Engine) close(ctx context.Context) error {
	for _, r := range e.order {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		for _, rr := range r.routes {
			rr.q.close()
		}
	}
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
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
	select {
	case <-done:
		return fmt.Errorf("fanout: drain cut short: %w", ctx.Err())
	case <-time.After(e.grace):
		return fmt.Errorf("fanout: drain cut short and workers still running after %s: %w", e.grace, ctx.Err())
	}
}
