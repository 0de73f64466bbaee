package fanout

import (
	"sync"
	"sync/atomic"
)

// job is one record waiting for, or being delivered by, one route. It is a
// small value: the record itself stays in its partition's slot.
type job struct {
	p     *partition
	seq   uint64 // position in p's in-flight window
	key   uint64 // ordering key hash, valid when keyed
	keyed bool
	enq   int64 // accept time, unix nanoseconds, for queue wait
}

// keyState serialises the jobs of one ordering key: while it exists, one job
// of the key is ready or running and the rest wait here in offset order.
type keyState struct {
	waiting []job
	head    int
}

// queue is a route's bounded buffer. depth counts every accepted job not yet
// taken by a worker, whether ready or parked behind a busy key, so the bound
// holds for the whole route.
type queue struct {
	mu        sync.Mutex // protects the fields below up to busy
	cond      sync.Cond  // signalled when ready gains a job or the queue closes
	ready     ring       // jobs a worker may take now
	keys      map[uint64]*keyState
	free      []*keyState // recycled key states, so steady state allocates nothing
	depth     int
	capacity  int
	low       int // congestion clears at or below this depth
	closed    bool
	congested atomic.Bool // set when a reservation failed; cleared at low water
	busy      atomic.Int32
	depthNow  atomic.Int64 // depth, readable without the lock
}

func newQueue(capacity int) *queue {
	q := &queue{
		ready:    newRing(capacity),
		keys:     make(map[uint64]*keyState),
		capacity: capacity,
		low:      capacity / 2,
	}
	q.cond.L = &q.mu
	return q
}

// hasRoomLocked reports whether one more job fits, marking the queue
// congested when it does not. q.mu must be held.
func (q *queue) hasRoomLocked() bool {
	if q.closed || q.depth >= q.capacity {
		q.congested.Store(true)
		return false
	}
	return true
}

// pushLocked adds a job that hasRoomLocked admitted and reports whether it
// is ready for a worker now (not parked behind its key); the caller wakes
// workers with wake after unlocking. q.mu must be held.
func (q *queue) pushLocked(j job) bool {
	q.depth++
	q.depthNow.Store(int64(q.depth))
	if j.keyed {
		if ks := q.keys[j.key]; ks != nil {
			ks.waiting = append(ks.waiting, j)
			return false
		}
		q.keys[j.key] = q.newKeyState()
	}
	q.ready.push(j)
	return true
}

// wake wakes up to n idle workers for n newly ready jobs.
func (q *queue) wake(n int) {
	for range n {
		q.cond.Signal()
	}
}

func (q *queue) newKeyState() *keyState {
	if n := len(q.free); n > 0 {
		ks := q.free[n-1]
		q.free = q.free[:n-1]
		return ks
	}
	return &keyState{}
}

// take blocks until a job is ready and returns it, counting it running on
// its partition before the lock is released (so revoke sees it). It
// returns false once the queue is closed and fully drained. resume reports
// that the queue just left congestion, low that it just drained to its
// low-water mark, waited that take had to block.
func (q *queue) take() (j job, resume, low, waited, ok bool) {
	q.mu.Lock()
	for q.ready.len() == 0 {
		if q.closed && q.depth == 0 {
			q.mu.Unlock()
			return job{}, false, false, waited, false
		}
		waited = true
		q.cond.Wait()
	}
	j = q.ready.pop()
	q.depth--
	q.depthNow.Store(int64(q.depth))
	low = q.depth == q.low
	j.p.running.Add(1)
	q.busy.Add(1)
	resume = q.depth <= q.low && q.congested.Load()
	if resume {
		q.congested.Store(false)
	}
	q.mu.Unlock()
	return j, resume, low, waited, true
}

// finish releases j's key, making the next job of the same key ready.
func (q *queue) finish(j job) {
	q.busy.Add(-1)
	if !j.keyed {
		return
	}
	q.mu.Lock()
	q.releaseKeyLocked(j.key)
	q.mu.Unlock()
}

// releaseKeyLocked hands key's turn to its next waiting job, or forgets the
// key when none waits.
func (q *queue) releaseKeyLocked(key uint64) {
	ks := q.keys[key]
	if ks == nil {
		return
	}
	if ks.head < len(ks.waiting) {
		next := ks.waiting[ks.head]
		ks.waiting[ks.head] = job{}
		ks.head++
		q.ready.push(next)
		q.cond.Signal()
		return
	}
	delete(q.keys, key)
	ks.waiting = ks.waiting[:0]
	ks.head = 0
	q.free = append(q.free, ks)
	if q.closed && q.depth == 0 {
		q.cond.Broadcast()
	}
}

// purge drops every queued job of p, as on revoke, and returns how many it
// dropped and whether the queue just left congestion.
func (q *queue) purge(p *partition) (dropped int, resume bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	// Parked jobs first: a key whose ready job is purged passes its turn on.
	for _, ks := range q.keys {
		kept := ks.waiting[:ks.head]
		for _, j := range ks.waiting[ks.head:] {
			if j.p == p {
				dropped++
				continue
			}
			kept = append(kept, j)
		}
		clear(ks.waiting[len(kept):])
		ks.waiting = kept
	}
	var owners []uint64
	n := q.ready.len()
	for range n {
		j := q.ready.pop()
		if j.p == p {
			dropped++
			if j.keyed {
				owners = append(owners, j.key)
			}
			continue
		}
		q.ready.push(j)
	}
	for _, k := range owners {
		q.releaseKeyLocked(k)
	}
	q.depth -= dropped
	q.depthNow.Store(int64(q.depth))
	resume = q.depth <= q.low && q.congested.Load()
	if resume {
		q.congested.Store(false)
	}
	if q.closed && q.depth == 0 {
		q.cond.Broadcast()
	}
	return dropped, resume
}

// close stops admissions; workers drain what is queued, then take returns
// false.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

func (q *queue) stats() (depth int) {
	q.mu.Lock()
	depth = q.depth
	q.mu.Unlock()
	return depth
}

// ring is a fixed-capacity FIFO of jobs.
type ring struct {
	buf        []job
	head, size int
}

func newRing(n int) ring { return ring{buf: make([]job, n)} }

func (r *ring) len() int { return r.size }

func (r *ring) push(j job) {
	if r.size == len(r.buf) {
		panic("fanout: ring overflow") // depth accounting guarantees room
	}
	r.buf[(r.head+r.size)%len(r.buf)] = j
	r.size++
}

func (r *ring) pop() job {
	j := r.buf[r.head]
	r.buf[r.head] = job{}
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return j
}
