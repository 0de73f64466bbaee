package fanout

import (
	"sync"
	"sync/atomic"
)

// slot holds one in-flight record until every route acknowledged it.
type slot struct {
	msg      Message
	pending  atomic.Uint64 // bit i set while route i has not acknowledged
	accepted int64         // unix nanoseconds when Offer accepted it
	size     int64         // bytes charged to the receiver's budget for msg's data
}

// chunkSlots is the number of slots allocated at a time. A window costs
// whole chunks for the records it holds, never its configured capacity.
const chunkSlots = 64

type chunk [chunkSlots]slot

// chunks are recycled across partitions and receivers; the pool lets the
// garbage collector take them back when traffic falls.
var chunkPool = sync.Pool{New: func() any { return new(chunk) }}

// window is a partition's in-flight records in offer order: a deque of
// fixed-size chunks that grows with the records it holds and gives chunks
// back as its head passes them. A slot's address is stable while it is in
// the window, so jobs point at their slot directly.
//
// A window is guarded by its partition's mutex.
type window struct {
	chunks []*chunk
	base   uint64 // sequence number of chunks[0][0]
	head   uint64 // oldest record not yet popped
	tail   uint64 // next sequence number to push
}

func (w *window) len() int { return int(w.tail - w.head) }

// at returns the slot of seq, which must be in [head, tail).
func (w *window) at(seq uint64) *slot {
	i := seq - w.base
	return &w.chunks[i/chunkSlots][i%chunkSlots]
}

// push appends a slot and returns it with its sequence number.
func (w *window) push() (*slot, uint64) {
	if w.tail-w.base == uint64(len(w.chunks))*chunkSlots {
		w.chunks = append(w.chunks, chunkPool.Get().(*chunk))
	}
	seq := w.tail
	w.tail++
	return w.at(seq), seq
}

// pop removes the head slot, which the caller has finished with. A chunk
// the head left behind goes back to the pool, and an empty window holds
// no chunk at all.
func (w *window) pop() {
	w.head++
	if w.head == w.tail {
		w.releaseAll()
		return
	}
	if w.head-w.base == chunkSlots {
		c := w.chunks[0]
		*c = chunk{}
		chunkPool.Put(c)
		w.chunks[0] = nil
		w.chunks = w.chunks[1:]
		w.base += chunkSlots
	}
}

// releaseAll gives every chunk back, keeping the sequence numbers going.
// Only for an empty window, or a partition whose slots nobody reads again.
func (w *window) releaseAll() {
	for i, c := range w.chunks {
		*c = chunk{}
		chunkPool.Put(c)
		w.chunks[i] = nil
	}
	w.chunks = w.chunks[:0]
	if cap(w.chunks) > 4 {
		w.chunks = nil // a burst's pointer array goes too
	}
	w.base = w.tail
	w.head = w.tail
}
