package fanout

// keyTable is a queue's set of ordering keys that have a job ready or
// running, each with its key state (nil while no other job of the key
// waits). Every keyed job looks its key up once when it is queued and once
// when it ends, so the table is on the delivery path: it is a hash table
// with open addressing and linear probing, with deletion by backward
// shift (no tombstones, so a queue that runs for months never degrades).
// The keys are already hashes (maphash of the record key, or a partition
// number), mixed once more so that small consecutive keys spread. It grows
// when more than half full. It halves once it has stayed under an eighth
// full for as many removals as it has slots, down to keyTableMin: a queue
// that fills and drains all the time (most do) keeps its table, as its
// ring keeps its array, and one whose burst is over gives the memory back
// within a few times its old size in records.
type keyTable struct {
	slots []keySlot
	n     int  // keys held
	shift uint // 64 - log2(len(slots))
	// sparse counts the removals since the table was last more than an
	// eighth full.
	sparse int
}

type keySlot struct {
	key  uint64
	ks   *keyState
	used bool
}

// keyTableMin is the fewest slots a table that holds a key has.
const keyTableMin = 16

func (t *keyTable) len() int { return t.n }

// home is the slot where key's probe sequence starts (Fibonacci hashing).
func (t *keyTable) home(key uint64) int {
	return int((key * 0x9E3779B97F4A7C15) >> t.shift)
}

// find returns key's slot, or nil when the table does not hold key. The
// pointer is valid until the next insert or remove.
func (t *keyTable) find(key uint64) *keySlot {
	if i := t.lookup(key); i >= 0 {
		return &t.slots[i]
	}
	return nil
}

// lookup returns the index of key's slot, or -1.
func (t *keyTable) lookup(key uint64) int {
	if t.n == 0 {
		return -1
	}
	mask := len(t.slots) - 1
	for i := t.home(key); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if !s.used {
			return -1
		}
		if s.key == key {
			return i
		}
	}
}

// insert adds key, which the table must not hold, with state ks.
func (t *keyTable) insert(key uint64, ks *keyState) {
	if (t.n+1)*2 > len(t.slots) {
		t.resize(max(keyTableMin, 2*len(t.slots)))
	}
	mask := len(t.slots) - 1
	i := t.home(key)
	for t.slots[i].used {
		i = (i + 1) & mask
	}
	t.slots[i] = keySlot{key: key, ks: ks, used: true}
	t.n++
}

// remove drops key, if held.
func (t *keyTable) remove(key uint64) {
	hole := t.lookup(key)
	if hole < 0 {
		return
	}
	mask := len(t.slots) - 1
	// Backward shift: a later key of the same run moves into the hole
	// when the hole lies on its probe path (between its home and it).
	for j := (hole + 1) & mask; t.slots[j].used; j = (j + 1) & mask {
		h := t.home(t.slots[j].key)
		if (j-h)&mask >= (j-hole)&mask {
			t.slots[hole] = t.slots[j]
			hole = j
		}
	}
	t.slots[hole] = keySlot{}
	t.n--
	if len(t.slots) <= keyTableMin || t.n*8 >= len(t.slots) {
		t.sparse = 0
		return
	}
	if t.sparse++; t.sparse >= len(t.slots) {
		t.resize(len(t.slots) / 2)
	}
}

// each calls f with every key state that is not nil.
func (t *keyTable) each(f func(*keyState)) {
	for i := range t.slots {
		if s := &t.slots[i]; s.used && s.ks != nil {
			f(s.ks)
		}
	}
}

// resize rehashes the keys into n slots, a power of two.
func (t *keyTable) resize(n int) {
	old := t.slots
	t.sparse = 0
	t.slots = make([]keySlot, n)
	t.shift = 64
	for m := n; m > 1; m >>= 1 {
		t.shift--
	}
	mask := n - 1
	for _, s := range old {
		if !s.used {
			continue
		}
		i := t.home(s.key)
		for t.slots[i].used {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}
