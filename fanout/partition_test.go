package fanout

import (
	"math/rand/v2"
	"testing"
)

// newBareReceiver builds a receiver with nroutes routes and no workers, so a
// test can drive acknowledgements by hand.
func newBareReceiver(nroutes, maxInflight int) *Receiver {
	r := &Receiver{e: &Engine{room: make(chan struct{}, 1)}, topic: "t", maxInflight: maxInflight, lowInflight: maxInflight / 2,
		maxBytes: DefaultMaxBytes, lowBytes: DefaultMaxBytes / 2, obs: nopObserver{}, parts: map[int32]*partition{}}
	for i := range nroutes {
		r.routes = append(r.routes, &routeRunner{r: r, idx: i, bit: 1 << uint(i), q: newQueue(16)})
	}
	return r
}

// filled is a record fill put in a window.
type filled struct {
	s   *slot
	seq uint64
}

// fill puts records with the given offsets (and a value each) into p's
// window, all routes pending, charging the budget as Offer would.
func fill(p *partition, nroutes int, offsets []int64) []filled {
	mask := uint64(1)<<uint(nroutes) - 1
	out := make([]filled, 0, len(offsets))
	for _, off := range offsets {
		s, seq := p.win.push()
		s.msg = Message{Offset: off, Value: []byte("value")}
		s.size = dataSize(&s.msg)
		p.r.charge(s.size + slotCost)
		s.pending.Store(mask)
		out = append(out, filled{s, seq})
	}
	return out
}

// FuzzAckTracker acknowledges (record, route) pairs in a random order and
// checks after every acknowledgement that the committable offset never
// passes an incomplete record, and that it reaches the end once all are
// complete. Offsets have random gaps, as compacted topics do.
func FuzzAckTracker(f *testing.F) {
	for _, seed := range []uint64{1, 2, 3, 42, 1 << 40} {
		f.Add(seed, uint8(3), uint16(200))
	}
	f.Fuzz(func(t *testing.T, seed uint64, nroutes uint8, nrec uint16) {
		nr := int(nroutes%8) + 1
		n := int(nrec%500) + 1
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		r := newBareReceiver(nr, n)
		p := newPartition(r, 0, t.Context())
		defer p.cancel()
		offsets := make([]int64, n)
		next := int64(rng.IntN(1000))
		for i := range offsets {
			offsets[i] = next
			next += 1 + int64(rng.IntN(3)) // gaps
		}
		recs := fill(p, nr, offsets)
		type pair struct{ rec, route int }
		pairs := make([]pair, 0, n*nr)
		for i := range n {
			for j := range nr {
				pairs = append(pairs, pair{i, j})
			}
		}
		rng.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
		left := make([]int, n)
		for i := range left {
			left[i] = nr
		}
		last := int64(-1)
		for _, pr := range pairs {
			rec := recs[pr.rec]
			p.ack(rec.s, rec.seq, 1<<uint(pr.route))
			left[pr.rec]--
			if left[pr.rec] == 0 && rec.seq >= p.win.head && rec.s.msg.Value != nil {
				t.Fatalf("record %d complete but its value is still held", pr.rec)
			}
			// The first incomplete record bounds what may be committed.
			firstIncomplete := n
			for i, l := range left {
				if l > 0 {
					firstIncomplete = i
					break
				}
			}
			got := committed2(p)
			var want int64 = -1
			if firstIncomplete > 0 {
				want = offsets[firstIncomplete-1] + 1
			}
			if got != want {
				t.Fatalf("after ack: committable %d, want %d (first incomplete index %d)", got, want, firstIncomplete)
			}
			if got < last {
				t.Fatalf("committable went backwards: %d after %d", got, last)
			}
			last = got
		}
		if want := offsets[n-1] + 1; last != want {
			t.Fatalf("all complete: committable %d, want %d", last, want)
		}
		if p.win.len() != 0 || len(p.win.chunks) != 0 {
			t.Fatalf("window not empty: %d records, %d chunks", p.win.len(), len(p.win.chunks))
		}
		if b := r.bytes.Load(); b != 0 {
			t.Fatalf("all complete but %d bytes still charged", b)
		}
	})
}

func committed2(p *partition) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.committed
}

func TestTracker_windowWrapsAround(t *testing.T) {
	r := newBareReceiver(1, 4)
	p := newPartition(r, 0, t.Context())
	defer p.cancel()
	for round := range 10 {
		base := int64(round * 4)
		recs := fill(p, 1, []int64{base, base + 1, base + 2, base + 3})
		for _, i := range []int{3, 1, 2, 0} {
			p.ack(recs[i].s, recs[i].seq, 1)
		}
		if got := committed2(p); got != base+4 {
			t.Fatalf("round %d: committable %d, want %d", round, got, base+4)
		}
	}
}
