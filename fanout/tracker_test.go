package fanout

import (
	"math/rand/v2"
	"testing"
)

// newBareReceiver builds a receiver with nroutes routes and no workers, so a
// test can drive acknowledgements by hand.
func newBareReceiver(nroutes, maxInflight int) *Receiver {
	r := &Receiver{topic: "t", maxInflight: maxInflight, lowInflight: maxInflight / 2, obs: nopObserver{}, parts: map[int32]*partition{}}
	for i := range nroutes {
		r.routes = append(r.routes, &routeRunner{r: r, idx: i, bit: 1 << uint(i), q: newQueue(16)})
	}
	return r
}

// fill puts records with the given offsets into p's window, all routes
// pending, as Offer would.
func fill(p *partition, nroutes int, offsets []int64) {
	mask := uint64(1)<<uint(nroutes) - 1
	for _, off := range offsets {
		s := p.slot(p.tail)
		s.msg = Message{Offset: off}
		s.pending.Store(mask)
		p.tail++
	}
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
		fill(p, nr, offsets)
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
			p.ack(uint64(pr.rec), 1<<uint(pr.route))
			left[pr.rec]--
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
		if p.head != p.tail {
			t.Fatalf("window not empty: head %d tail %d", p.head, p.tail)
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
		fill(p, 1, []int64{base, base + 1, base + 2, base + 3})
		for _, i := range []uint64{3, 1, 2, 0} {
			p.ack(uint64(round*4)+i, 1)
		}
		if got := committed2(p); got != base+4 {
			t.Fatalf("round %d: committable %d, want %d", round, got, base+4)
		}
	}
}
