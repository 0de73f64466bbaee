package fanout

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// slot holds one in-flight record until every route acknowledged it.
type slot struct {
	msg      Message
	pending  atomic.Uint64 // bit i set while route i has not acknowledged
	accepted int64         // unix nanoseconds when Offer accepted it
}

// partition tracks the in-flight window of one assigned partition: a ring of
// slots in offer order, whose contiguous acknowledged prefix is committable.
// Offer order is offset order, so gaps in offsets (compaction, transaction
// markers) need no special care.
type partition struct {
	r   *Receiver
	id  int32
	ctx context.Context // parent of every delivery of this partition
	// cancel aborts deliveries and retries on loss or forced shutdown.
	cancel context.CancelFunc

	mu        sync.Mutex // protects the fields below
	slots     []slot
	head      uint64 // oldest unacknowledged slot
	tail      uint64 // next free slot
	committed int64  // offset after the acknowledged prefix; -1 before any
	epoch     int32  // Epoch of the record before committed
	paused    bool

	revoked atomic.Bool
	gone    chan struct{} // closed on revoke or loss: abandons retry waits
	running atomic.Int64  // deliveries of this partition in progress
	idle    chan struct{} // signalled when running drops to 0 after revoke
}

func newPartition(r *Receiver, id int32, ctx context.Context) *partition {
	ctx, cancel := context.WithCancel(ctx)
	return &partition{
		r:         r,
		id:        id,
		ctx:       ctx,
		cancel:    cancel,
		slots:     make([]slot, r.maxInflight),
		committed: -1,
		idle:      make(chan struct{}, 1),
		gone:      make(chan struct{}),
	}
}

func (p *partition) slot(seq uint64) *slot { return &p.slots[seq%uint64(len(p.slots))] }

// ack records that route bit acknowledged the record at seq and advances the
// committable prefix when the record became complete. It reports whether a
// paused partition may resume.
func (p *partition) ack(seq uint64, bit uint64) {
	s := p.slot(seq)
	if s.pending.And(^bit)&^bit != 0 {
		return // other routes still pending
	}
	p.advance()
}

// advance pops completed records off the head of the window.
func (p *partition) advance() {
	p.mu.Lock()
	moved := false
	for p.head < p.tail {
		s := p.slot(p.head)
		if s.pending.Load() != 0 {
			break
		}
		p.committed = s.msg.Offset + 1
		p.epoch = s.msg.Epoch
		s.msg = Message{} // drop references so the GC can reclaim values
		p.head++
		moved = true
	}
	resume := moved && p.paused && p.r.canResumeLocked(p)
	if resume {
		p.setPaused(false)
	}
	p.mu.Unlock()
	if resume {
		p.r.resumed(p)
	}
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
		Inflight:    int(p.tail - p.head),
		Paused:      p.paused,
		Committable: p.committed,
	}
	if p.head < p.tail {
		st.OldestTimestamp = p.slot(p.head).msg.Timestamp
	}
	// For each route, the accept time of its oldest unacknowledged record.
	var want uint64
	for i := range routeOldest {
		want |= 1 << uint(i)
	}
	for seq := p.head; seq < p.tail && want != 0; seq++ {
		s := p.slot(seq)
		found := s.pending.Load() & want
		for found != 0 {
			i := trailingZeros(found)
			found &^= 1 << uint(i)
			want &^= 1 << uint(i)
			if routeOldest[i] == 0 || s.accepted < routeOldest[i] {
				routeOldest[i] = s.accepted
			}
		}
	}
	return st
}
