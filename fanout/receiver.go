package fanout

import (
	"context"
	"hash/maphash"
	"sort"
	"sync"
	"sync/atomic"
)

// Receiver is one topic's routes and its assigned partitions. Offer,
// Assign, Revoke and Lose may be called from any goroutine.
type Receiver struct {
	e           *Engine
	topic       string
	maxInflight int
	lowInflight int
	maxBytes    int64
	lowBytes    int64
	routes      []*routeRunner
	seed        maphash.Seed
	obs         Observer

	// The groups below are written often, by different goroutines; the
	// pads keep them off each other's cache lines and off the fields
	// above, which every record reads.
	_      cacheLinePad
	mu     sync.RWMutex // protects parts and closed
	parts  map[int32]*partition
	closed bool

	_ cacheLinePad
	// paused counts assigned partitions held paused (see Saturated).
	paused atomic.Int32
	// bytes is the data of the records in flight that some route has not
	// acknowledged, charged against maxBytes.
	bytes atomic.Int64
	// overBudget is set when a record was refused for the byte budget;
	// the release that brings bytes to low water clears it and resumes.
	overBudget atomic.Bool
	_          cacheLinePad
}

// Topic returns the receiver's topic.
func (r *Receiver) Topic() string { return r.topic }

// Assign starts tracking a partition. Assigning an assigned partition keeps
// its state. A route with a SpillConfig that is attached asks its Backlog
// first (a call that may wait up to 5s): while the spill topic holds
// records not yet delivered, which may be earlier records of this
// partition's keys, the route detaches.
func (r *Receiver) Assign(partition int32) {
	for _, rr := range r.routes {
		if rr.spill != nil {
			rr.spill.assigned(r.e.ctx)
		}
	}
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
// Room when every flowing receiver is saturated. Lock-free.
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

// Paused reports whether the engine holds the partition paused: Offer
// refused one of its records and it may not be offered to again yet. The
// engine signals Room when it may.
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

// detach forgets a partition: it stops accepting, its queued jobs are
// dropped and its window leaves the budget.
// Its window's chunks are left to the garbage collector, not the pool:
// running deliveries may still acknowledge into them.
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
	// The whole window leaves the budget; the slots keep their data for
	// deliveries still running (they are read without p.mu).
	var freed int64
	for seq := p.win.head; seq < p.win.tail; seq++ {
		freed += p.win.at(seq).size + slotCost
	}
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
	r.release(freed)
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

// charge takes n bytes of the budget for a record being accepted, unless
// the budget is spent. A record is admitted while the receiver holds no
// more than half its budget even if it is larger than the rest, so that a
// record bigger than the whole budget still flows (alone) instead of
// wedging its partition. Concurrent offers to different partitions may
// overshoot the budget by one record each.
func (r *Receiver) charge(n int64) bool {
	for {
		used := r.bytes.Load()
		if used+n <= r.maxBytes || used <= r.lowBytes {
			r.bytes.Add(n)
			return true
		}
		r.overBudget.Store(true)
		// A release may have brought the bytes down before the flag was
		// set, and would not have seen it: look again, or no release
		// would ever resume the partition refused here.
		if r.bytes.Load() > r.lowBytes {
			return false
		}
		r.overBudget.CompareAndSwap(true, false)
	}
}

// release gives n bytes back to the budget and resumes the partitions the
// budget paused once it is down to half.
func (r *Receiver) release(n int64) {
	if n == 0 {
		return
	}
	if r.bytes.Add(-n) <= r.lowBytes && r.overBudget.Load() && r.overBudget.CompareAndSwap(true, false) {
		r.kickResume()
	}
}

// canResumeLocked reports whether paused partition p may flow again: no
// route of the receiver is congested, the byte budget is not exhausted and
// p's window has drained to low water. p.mu must be held.
func (r *Receiver) canResumeLocked(p *partition) bool {
	if p.win.len() > r.lowInflight || r.overBudget.Load() {
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
// when a route leaves congestion or the byte budget has room again.
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
	r.e.signalRoom()
}
