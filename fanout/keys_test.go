package fanout

import (
	"math/rand/v2"
	"testing"
)

// The table agrees with a map through random inserts, updates and
// removals, across growing and shrinking, with keys that collide in their
// low bits and small consecutive ones (partition numbers).
func TestKeyTable_agreesWithAMap(t *testing.T) {
	for name, keyOf := range map[string]func(r *rand.Rand) uint64{
		"random":      func(r *rand.Rand) uint64 { return r.Uint64() },
		"consecutive": func(r *rand.Rand) uint64 { return uint64(r.IntN(300)) },
		"high bits":   func(r *rand.Rand) uint64 { return uint64(r.IntN(300)) << 40 },
	} {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 11))
			var tab keyTable
			model := map[uint64]*keyState{}
			var known []uint64
			states := []*keyState{nil, {}, {}}
			for step := range 200_000 {
				// Phases of mostly inserting and mostly removing, so the
				// table grows and shrinks many times.
				inserting := (step/5000)%2 == 0
				switch op := r.IntN(10); {
				case op < 6 == inserting && op < 8:
					k := keyOf(r)
					ks := states[r.IntN(len(states))]
					if s := tab.find(k); s != nil {
						s.ks = ks
					} else {
						tab.insert(k, ks)
						known = append(known, k)
					}
					model[k] = ks
				case len(known) > 0:
					i := r.IntN(len(known))
					k := known[i]
					known[i] = known[len(known)-1]
					known = known[:len(known)-1]
					tab.remove(k)
					delete(model, k)
				}
				if tab.len() != len(model) {
					t.Fatalf("step %d: %d keys, want %d", step, tab.len(), len(model))
				}
				if step%1000 == 0 {
					for k, ks := range model {
						s := tab.find(k)
						if s == nil || s.ks != ks {
							t.Fatalf("step %d: key %x: found %v, want state %p", step, k, s, ks)
						}
					}
					if tab.find(r.Uint64()|1<<63) != nil && name != "random" {
						t.Fatalf("step %d: found a key never inserted", step)
					}
				}
			}
			for _, k := range known {
				tab.remove(k)
			}
			if tab.len() != 0 {
				t.Fatalf("emptied: %d keys, want 0", tab.len())
			}
			// Traffic of one key at a time gives the memory back.
			grown := len(tab.slots)
			for i := range 4 * grown {
				tab.insert(uint64(i), nil)
				tab.remove(uint64(i))
			}
			if len(tab.slots) > keyTableMin {
				t.Fatalf("after %d removals nearly empty: %d slots (%d before), want at most %d", 4*grown, len(tab.slots), grown, keyTableMin)
			}
		})
	}
}

// Removing a key never loses another of the same probe run: every key of a
// full run of collisions stays findable as keys are removed from its
// middle.
func TestKeyTable_removeKeepsTheRestOfARun(t *testing.T) {
	var tab keyTable
	tab.resize(64)
	// Keys with the same home slot: find them by trial.
	var same []uint64
	for k := uint64(1); len(same) < 20; k++ {
		if tab.home(k) == tab.home(1) {
			same = append(same, k)
		}
	}
	for _, k := range same {
		tab.insert(k, nil)
	}
	for i, k := range same {
		if i%2 == 1 {
			tab.remove(k)
		}
	}
	for i, k := range same {
		if got := tab.find(k) != nil; got != (i%2 == 0) {
			t.Fatalf("key %d of the run: held %v, want %v", i, got, i%2 == 0)
		}
	}
}

// A table that fills and drains again and again (a busy queue) keeps its
// size instead of rehashing on every cycle.
func TestKeyTable_keepsItsSizeWhileItFillsAndDrains(t *testing.T) {
	var tab keyTable
	resizes := 0
	last := 0
	for cycle := range 100 {
		for k := range 1000 {
			tab.insert(uint64(cycle*1000+k), nil)
		}
		for k := range 1000 {
			tab.remove(uint64(cycle*1000 + k))
		}
		if len(tab.slots) != last {
			resizes++
			last = len(tab.slots)
		}
	}
	if resizes > 1 {
		t.Fatalf("the table changed size in %d of 100 fill-and-drain cycles, want only in the first", resizes)
	}
}
