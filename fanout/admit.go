package fanout

import (
	"fmt"
	"hash/maphash"
	"math/bits"
	"unsafe"
)

// Offer hands a record to every route of the receiver without blocking. It
// returns nil when the record was accepted, ErrCongested when the partition
// must pause (offer the record again once Paused reports false; the engine
// signals Room), ErrNotAssigned or ErrClosed. Records of one partition must
// be offered in offset order from one goroutine at a time. The engine
// copies the Message; its byte slices must stay unmodified until every
// route acknowledged.
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
	var a admission
	n, err := r.admitLocked(p, ms, &a)
	for _, rr := range r.routes {
		rr.q.mu.Unlock()
	}
	p.mu.Unlock()
	r.notify(p, &a)
	return n, err
}

// admission is what one OfferBatch did, for notify to act on once the
// locks are released.
type admission struct {
	woken    [MaxRoutes]int32 // jobs made ready, per route
	filtered [MaxRoutes]int32 // records a route's filter skipped
	paused   bool             // the partition was paused
	cause    string           // the route whose buffer was full, if any
	complete bool             // a record needed no route: advance the head
}

// admitLocked accepts records of ms while every bound allows, pausing the
// partition at the first that does not fit. p.mu and every route's queue
// lock must be held.
func (r *Receiver) admitLocked(p *partition, ms []Message, a *admission) (int, error) {
	now := r.e.clock.Now().UnixNano()
	for n := range ms {
		m := &ms[n]
		if m.Partition != p.id {
			return n, fmt.Errorf("fanout: OfferBatch: record of partition %d in a batch of partition %d", m.Partition, p.id)
		}
		if p.win.len() >= r.maxInflight {
			return n, r.pauseLocked(p, a, "")
		}
		var mask, skip uint64
		if !m.Skip {
			for i, rr := range r.routes {
				if rr.cfg.Filter != nil && !rr.cfg.Filter(m) {
					skip |= 1 << uint(i)
					continue
				}
				mask |= 1 << uint(i)
			}
		}
		for i := range bitsOf(mask) {
			if q := r.routes[i].q; !q.hasRoomLocked(now) {
				if q.closed {
					return n, ErrClosed
				}
				return n, r.pauseLocked(p, a, r.routes[i].name)
			}
		}
		size := int64(0)
		if mask != 0 {
			size = dataSize(m)
		}
		if !r.charge(size + slotCost) {
			return n, r.pauseLocked(p, a, "")
		}
		r.enqueueLocked(p, m, mask, size, now, a)
		for i := range bitsOf(skip) {
			a.filtered[i]++
		}
	}
	return len(ms), nil
}

// enqueueLocked puts an admitted record in p's window and a job for it in
// the queue of every route in mask. The locks of admitLocked must be held.
func (r *Receiver) enqueueLocked(p *partition, m *Message, mask uint64, size, now int64, a *admission) {
	s, seq := p.win.push()
	s.msg = *m
	s.msg.Attempt = 0
	if mask == 0 {
		s.msg.Key, s.msg.Value, s.msg.Headers = nil, nil, nil
	}
	s.accepted = now
	s.size = size
	s.pending.Store(mask)
	a.complete = a.complete || mask == 0
	var key uint64
	keyed := false
	for i := range bitsOf(mask) {
		rr := r.routes[i]
		j := job{p: p, s: s, seq: seq, enq: now}
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
			a.woken[i]++
		}
	}
}

// pauseLocked pauses p for a record that did not fit and returns
// ErrCongested. p.mu must be held.
func (r *Receiver) pauseLocked(p *partition, a *admission, cause string) error {
	p.setPaused(true)
	a.paused, a.cause = true, cause
	return ErrCongested
}

// notify wakes the workers of the jobs admitted, reports filtered records
// and the pause, and moves the head past records no route needed. No lock
// may be held.
func (r *Receiver) notify(p *partition, a *admission) {
	for i, rr := range r.routes {
		rr.q.wake(int(a.woken[i]))
		for range a.filtered[i] {
			rr.obs.Delivered(OutcomeFiltered, 0)
		}
	}
	if a.paused {
		r.obs.PartitionPaused(r.topic, p.id, a.cause)
	}
	if a.complete {
		p.advance()
	}
}

// headerCost is what a header costs besides its bytes.
const headerCost = int64(unsafe.Sizeof(Header{}))

// dataSize is what a record's key, value and headers cost the budget.
func dataSize(m *Message) int64 {
	n := int64(len(m.Key) + len(m.Value))
	for i := range m.Headers {
		n += int64(len(m.Headers[i].Key)+len(m.Headers[i].Value)) + headerCost
	}
	return n
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
