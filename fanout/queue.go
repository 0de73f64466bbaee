package fanout

import (
	"sync"
	"sync/atomic"
)

// job is one record waiting for, or being delivered by, one route. It is a
// small value: the record itself stays in its partition's slot.
type job struct {
	p     *partition
	s     *slot  // the record, stable while it is in p's window
	seq   uint64 // position in p's in-flight window
	key   uint64 // ordering key hash, valid when keyed
	keyed bool
	enq   int64 // accept time, unix nanoseconds, for queue wait
}

// keyState serialises the jobs of one ordering key: while the key is in its
// queue's map, one job of the key is ready or running and the rest wait
// here in offset order. A key with nothing waiting maps to nil, so the
// common case (one record of the key at a time) allocates nothing.
// Its memory follows the jobs waiting: the consumed front is compacted away
// and a grown backing array is given up once mostly empty.
type keyState struct {
	waiting []job // waiting[head:] are the jobs in offset order
	head    int
}

// keyStateKeep is the backing array a key state keeps when it empties or
// returns to the free list; a burst beyond it is given back.
const keyStateKeep = 64

func (ks *keyState) len() int { return len(ks.waiting) - ks.head }

func (ks *keyState) push(j job) { ks.waiting = append(ks.waiting, j) }

// pop takes the oldest waiting job, if any.
func (ks *keyState) pop() (job, bool) {
	if ks.len() == 0 {
		return job{}, false
	}
	j := ks.waiting[ks.head]
	ks.waiting[ks.head] = job{}
	ks.head++
	ks.compact()
	return j, true
}

// compact moves the waiting jobs to the front once the consumed part is at
// least half the array (amortised O(1) a job), and shrinks an array that is
// mostly empty.
func (ks *keyState) compact() {
	n := ks.len()
	switch {
	case n == 0:
		clear(ks.waiting)
		ks.waiting, ks.head = ks.waiting[:0], 0
		if cap(ks.waiting) > keyStateKeep {
			ks.waiting = nil
		}
	case ks.head >= keyStateKeep/2 && ks.head >= n:
		if c := cap(ks.waiting); c > keyStateKeep && n < c/4 {
			ks.waiting = append(make([]job, 0, max(keyStateKeep, 2*n)), ks.waiting[ks.head:]...)
		} else {
			copy(ks.waiting, ks.waiting[ks.head:])
			clear(ks.waiting[n:])
			ks.waiting = ks.waiting[:n]
		}
		ks.head = 0
	}
}

// queue is a route's bounded buffer. depth counts every accepted job not yet
// taken by a worker, whether ready or parked behind a busy key, so the bound
// holds for the whole route.
type queue struct {
	mu sync.Mutex // protects the fields below up to busy
	// conds[c] is signalled when ready gains a job that takers of class c
	// may take, and broadcast when the queue closes or the class changes.
	conds [takerClasses]sync.Cond
	// taker is the class of takers that may take jobs now: the route's
	// own (normally), the spill dispatcher (while the route is detached)
	// or none (while it re-attaches).
	taker takerClass
	ready ring // jobs a worker may take now
	// keys holds every key with a job ready or running; its state is nil
	// until a second job of the key has to wait.
	keys      keyTable
	free      []*keyState // recycled key states, so steady state allocates nothing
	depth     int
	capacity  int
	low       int // congestion clears at or below this depth
	closed    bool
	congested atomic.Bool // set when a reservation failed; cleared at low water
	// congestedSince is when the current congestion began (unix
	// nanoseconds), 0 while the queue is not congested.
	congestedSince atomic.Int64
	busy           atomic.Int32
	depthNow       atomic.Int64 // depth, readable without the lock
}

func newQueue(capacity int) *queue {
	q := &queue{
		ready:    newRing(),
		capacity: capacity,
		low:      capacity / 2,
	}
	for i := range q.conds {
		q.conds[i].L = &q.mu
	}
	return q
}

// takerClass is who takes a queue's jobs.
type takerClass int

const (
	takeRoute    takerClass     = iota // the route's workers or dispatcher
	takeSpill                          // the spill dispatcher
	takerClasses                       // the number of classes that take
	takeNone     = takerClasses        // nobody: jobs wait in the queue
)

// setTaker changes who may take jobs and wakes them.
func (q *queue) setTaker(c takerClass) {
	q.mu.Lock()
	q.taker = c
	q.broadcastLocked()
	q.mu.Unlock()
}

// signalLocked wakes one taker of the class that may take now. q.mu must
// be held or the call made right after releasing it.
func (q *queue) signalLocked() {
	if q.taker < takerClasses {
		q.conds[q.taker].Signal()
	}
}

func (q *queue) broadcastLocked() {
	for i := range q.conds {
		q.conds[i].Broadcast()
	}
}

// hasRoomLocked reports whether one more job fits, marking the queue
// congested (since now, unix nanoseconds) when it does not. q.mu must be
// held.
func (q *queue) hasRoomLocked(now int64) bool {
	if q.closed || q.depth >= q.capacity {
		if !q.congested.Swap(true) {
			q.congestedSince.Store(now)
		}
		return false
	}
	return true
}

// uncongestLocked clears congestion when the queue has drained to its
// low-water mark and reports whether it did. q.mu must be held.
func (q *queue) uncongestLocked() bool {
	if q.depth <= q.low && q.congested.Load() {
		q.congested.Store(false)
		q.congestedSince.Store(0)
		return true
	}
	return false
}

// pushLocked adds a job that hasRoomLocked admitted and reports whether it
// is ready for a worker now (not parked behind its key); the caller wakes
// workers with wake after unlocking. q.mu must be held.
func (q *queue) pushLocked(j job) bool {
	q.depth++
	q.depthNow.Store(int64(q.depth))
	if j.keyed {
		if s := q.keys.find(j.key); s != nil {
			if s.ks == nil {
				s.ks = q.newKeyState()
			}
			s.ks.push(j)
			return false
		}
		q.keys.insert(j.key, nil)
	}
	q.ready.push(j)
	return true
}

// wake wakes up to n idle takers for n newly ready jobs.
func (q *queue) wake(n int) {
	q.mu.Lock()
	c := q.taker
	q.mu.Unlock()
	if c >= takerClasses {
		return
	}
	for range n {
		q.conds[c].Signal()
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

// taken is what take hands a worker.
type taken struct {
	job
	// resume: the queue just left congestion (paused partitions may flow).
	resume bool
	// low: the queue just drained to its low-water mark (a poll may find
	// room again).
	low bool
	// waited: take had to block, so the worker's last clock reading is old.
	waited bool
}

// take blocks until a job is ready for a taker of class c and returns it,
// counting it running on its partition before the lock is released (so
// revoke sees it). ok is false once the queue is closed and fully drained.
func (q *queue) take(c takerClass) (t taken, ok bool) {
	q.mu.Lock()
	for q.ready.len() == 0 || q.taker != c {
		if q.closed && q.depth == 0 {
			q.mu.Unlock()
			return t, false
		}
		t.waited = true
		q.conds[c].Wait()
	}
	t.job = q.ready.pop()
	q.depth--
	q.depthNow.Store(int64(q.depth))
	t.low = q.depth == q.low
	t.p.running.Add(1)
	q.busy.Add(1)
	t.resume = q.uncongestLocked()
	q.mu.Unlock()
	return t, true
}

// takeBatch is take for up to max ready jobs at once, appended to into;
// the flags in t describe the whole batch. It blocks until at least one job
// is ready; ok is false once the queue is closed and fully drained.
func (q *queue) takeBatch(c takerClass, into []job, max int) (out []job, t taken, ok bool) {
	q.mu.Lock()
	for q.ready.len() == 0 || q.taker != c {
		if q.closed && q.depth == 0 {
			q.mu.Unlock()
			return into, t, false
		}
		t.waited = true
		q.conds[c].Wait()
	}
	before := q.depth
	for n := 0; n < max && q.ready.len() > 0; n++ {
		j := q.ready.pop()
		j.p.running.Add(1)
		into = append(into, j)
	}
	n := len(into)
	q.depth -= n
	q.depthNow.Store(int64(q.depth))
	q.busy.Add(int32(n))
	t.low = before > q.low && q.depth <= q.low
	t.resume = q.uncongestLocked()
	q.mu.Unlock()
	return into, t, true
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
	s := q.keys.find(key)
	if s == nil {
		return
	}
	if ks := s.ks; ks != nil {
		if next, ok := ks.pop(); ok {
			q.ready.push(next)
			q.signalLocked()
			return
		}
		if len(q.free) < keyStateKeep {
			q.free = append(q.free, ks)
		}
	}
	q.keys.remove(key)
	if q.closed && q.depth == 0 {
		q.broadcastLocked()
	}
}

// purge drops every queued job of p, as on revoke, and returns how many it
// dropped and whether the queue just left congestion.
func (q *queue) purge(p *partition) (dropped int, resume bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	// Parked jobs first: a key whose ready job is purged passes its turn on.
	q.keys.each(func(ks *keyState) {
		kept := ks.waiting[:0]
		for _, j := range ks.waiting[ks.head:] {
			if j.p == p {
				dropped++
				continue
			}
			kept = append(kept, j)
		}
		clear(ks.waiting[len(kept):])
		ks.waiting, ks.head = kept, 0
		ks.compact()
	})
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
	resume = q.uncongestLocked()
	if q.closed && q.depth == 0 {
		q.broadcastLocked()
	}
	return dropped, resume
}

// close stops admissions; workers drain what is queued, then take returns
// false.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.broadcastLocked()
	q.mu.Unlock()
}

func (q *queue) stats() (depth int) {
	q.mu.Lock()
	depth = q.depth
	q.mu.Unlock()
	return depth
}

// ring is a FIFO of jobs whose backing array grows with its contents, up
// to the queue's capacity (which the depth accounting enforces): a route
// that was never busy costs nothing, and one that was keeps its array (a
// few dozen bytes a job of its buffer) rather than reallocating on every
// burst.
type ring struct {
	buf        []job
	head, size int
}

// ringMin is the smallest backing array a ring has.
const ringMin = 16

func newRing() ring { return ring{} }

func (r *ring) len() int { return r.size }

func (r *ring) push(j job) {
	if r.size == len(r.buf) {
		r.resize(max(ringMin, 2*len(r.buf)))
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

func (r *ring) resize(n int) {
	buf := make([]job, n)
	for i := range r.size {
		buf[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = buf, 0
}
