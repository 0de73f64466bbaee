package fanout

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// partition tracks the in-flight window of one assigned partition, whose
// contiguous acknowledged prefix is committable. Offer order is offset
// order, so gaps in offsets (compaction, transaction markers) need no
// special care.
//
// Its fields are grouped by who touches them, each group on cache lines of
// its own: every delivery reads the first group, the poll loop and the
// last acknowledgement of each record write the second, and every
// delivery's start and end writes running. Sharing lines, each write made
// the other cores fetch the lines again.
type partition struct {
	r   *Receiver
	id  int32
	ctx context.Context // parent of every delivery of this partition
	// cancel aborts deliveries and retries on loss or forced shutdown.
	cancel  context.CancelFunc
	revoked atomic.Bool
	gone    chan struct{} // closed on revoke or loss: abandons retry waits
	idle    chan struct{} // signalled when running drops to 0 after revoke

	_         cacheLinePad
	mu        sync.Mutex // protects the fields below up to the next pad
	win       window
	committed int64 // offset after the acknowledged prefix; -1 before any
	epoch     int32 // Epoch of the record before committed
	paused    bool

	_       cacheLinePad
	running atomic.Int64 // deliveries of this partition in progress
	_       cacheLinePad
}

// cacheLinePad keeps the fields before and after it off each other's cache
// lines (64 bytes on the usual CPUs).
type cacheLinePad [64]byte

func newPartition(r *Receiver, id int32, ctx context.Context) *partition {
	ctx, cancel := context.WithCancel(ctx)
	return &partition{
		r:         r,
		id:        id,
		ctx:       ctx,
		cancel:    cancel,
		committed: -1,
		idle:      make(chan struct{}, 1),
		gone:      make(chan struct{}),
	}
}

// ack records that route bit acknowledged the record in s at seq. The last
// route to acknowledge releases the record's bytes and advances the
// committable prefix.
func (p *partition) ack(s *slot, seq uint64, bit uint64) {
	if s.pending.And(^bit)&^bit != 0 {
		return // other routes still pending
	}
	p.mu.Lock()
	// The slot is ours to touch only while it is in the window: another
	// goroutine's advance may have popped it (and released its bytes)
	// since the last acknowledgement above, and its chunk may be reused.
	var freed int64
	if seq >= p.win.head {
		freed = p.releaseLocked(s)
	}
	popped, resume := p.advanceLocked()
	freed += popped
	if p.revoked.Load() {
		freed = 0 // detach gave the whole window back already
	}
	p.mu.Unlock()
	p.r.release(freed)
	if resume {
		p.r.resumed(p)
	}
}

// slotCost is what a record costs the receiver's byte budget besides its
// data, from its acceptance until the head of the window passes it.
const slotCost = int64(unsafe.Sizeof(slot{}))

// releaseLocked drops a complete record's data, keeping only its position,
// and returns the bytes it gives back to the receiver's budget. p.mu must
// be held.
func (p *partition) releaseLocked(s *slot) int64 {
	s.msg.Key, s.msg.Value, s.msg.Headers = nil, nil, nil
	n := s.size
	s.size = 0
	return n
}

// advance pops completed records off the head of the window.
func (p *partition) advance() {
	p.mu.Lock()
	freed, resume := p.advanceLocked()
	if p.revoked.Load() {
		freed = 0 // detach gave the whole window back already
	}
	p.mu.Unlock()
	p.r.release(freed)
	if resume {
		p.r.resumed(p)
	}
}

// advanceLocked pops completed records off the head of the window. It
// returns the bytes it gives back to the budget and whether the partition
// just left its pause. p.mu must be held.
func (p *partition) advanceLocked() (freed int64, resume bool) {
	for p.win.head < p.win.tail {
		s := p.win.at(p.win.head)
		if s.pending.Load() != 0 {
			break
		}
		p.committed = s.msg.Offset + 1
		p.epoch = s.msg.Epoch
		// The last acknowledgement may not have released the data yet:
		// it is released by whoever takes p.mu first.
		freed += p.releaseLocked(s) + slotCost
		p.win.pop()
	}
	if freed > 0 && p.paused && p.r.canResumeLocked(p) {
		p.setPaused(false)
		resume = true
	}
	return freed, resume
}

// setPaused changes the pause state and the receiver's count of paused
// partitions. p.mu must be held.
func (p *partition) setPaused(paused bool) {
	if p.paused == paused {
		return
	}
	p.paused = paused
	if paused {
		p.r.paused.Add(1)
	} else {
		p.r.paused.Add(-1)
	}
}

// doneRunning ends one delivery of this partition.
func (p *partition) doneRunning() {
	if p.running.Add(-1) == 0 && p.revoked.Load() {
		select {
		case p.idle <- struct{}{}:
		default:
		}
	}
}

// waitIdle waits until no delivery of the partition runs, or ctx ends.
func (p *partition) waitIdle(ctx context.Context) error {
	for p.running.Load() != 0 {
		select {
		case <-p.idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// PartitionStats is a snapshot of one assigned partition.
type PartitionStats struct {
	Topic     string
	Partition int32
	// Inflight is the number of records accepted and not yet acknowledged
	// by every route.
	Inflight int
	Paused   bool
	// Committable is the offset after the acknowledged prefix, or -1.
	Committable int64
	// OldestTimestamp is the record timestamp of the oldest unacknowledged
	// record; zero when none is in flight.
	OldestTimestamp time.Time
}

func (p *partition) stats(routeOldest []int64) PartitionStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := PartitionStats{
		Topic:       p.r.topic,
		Partition:   p.id,
		Inflight:    p.win.len(),
		Paused:      p.paused,
		Committable: p.committed,
	}
	if p.win.len() > 0 {
		st.OldestTimestamp = p.win.at(p.win.head).msg.Timestamp
	}
	// For each route, the accept time of its oldest unacknowledged record.
	var want uint64
	for i := range routeOldest {
		want |= 1 << uint(i)
	}
	for seq := p.win.head; seq < p.win.tail && want != 0; seq++ {
		s := p.win.at(seq)
		found := s.pending.Load() & want
		for i := range bitsOf(found) {
			want &^= 1 << uint(i)
			if routeOldest[i] == 0 || s.accepted < routeOldest[i] {
				routeOldest[i] = s.accepted
			}
		}
	}
	return st
}
