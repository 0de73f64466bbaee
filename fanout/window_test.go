package fanout

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// An assigned partition costs what it holds, not its max_inflight: 256
// partitions with the default window of 10,000 and three routes, under
// steady traffic of 1,000 records a partition, stay far below what the
// capacity would cost (256 × 10,000 slots is hundreds of MiB).
func TestEngine_memoryFollowsRecordsNotCapacity(t *testing.T) {
	const parts, perPart = 256, 1000
	routes := make([]RouteConfig, 3)
	for i := range routes {
		routes[i] = RouteConfig{Route: &counter{name: string(rune('a' + i))}, Ordering: OrderKey}
	}
	before := heapInUse()
	e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: routes})
	r := e.Receiver("t")
	for p := range int32(parts) {
		r.Assign(p)
	}
	if grown := heapInUse() - min(before, heapInUse()); grown > 8<<20 {
		t.Fatalf("assigning %d idle partitions grew the heap by %d MiB", parts, grown>>20)
	}
	value := make([]byte, 512)
	var peak uint64
	for off := range int64(perPart) {
		for p := range int32(parts) {
			m := Message{Topic: "t", Partition: p, Offset: off, Key: []byte{byte(off)}, Value: value}
			for {
				err := r.Offer(&m)
				if err == nil {
					break
				}
				if !errors.Is(err, ErrCongested) {
					t.Fatal(err)
				}
				<-e.Room()
			}
		}
		if off%250 == 0 {
			peak = max(peak, heapInUse())
		}
	}
	for p := range int32(parts) {
		wait(t, guard, "all complete", func() bool { return committed(r, p) == perPart })
	}
	if grown := peak - min(before, peak); grown > 48<<20 {
		t.Fatalf("heap grew by %d MiB under steady traffic on %d partitions", grown>>20, parts)
	}
	for _, id := range r.Partitions() {
		p := r.partition(id)
		p.mu.Lock()
		n := len(p.win.chunks)
		p.mu.Unlock()
		if n != 0 {
			t.Fatalf("partition %d: %d chunks kept by an empty window", id, n)
		}
	}
	if b := r.bytes.Load(); b != 0 {
		t.Fatalf("%d bytes charged with nothing in flight", b)
	}
}

// counter is a route that counts and acknowledges at once.
type counter struct {
	name string
	n    atomic.Int64
}

func (c *counter) Name() string { return c.name }

func (c *counter) Deliver(context.Context, Message) error { c.n.Add(1); return nil }

// One stuck record must pin only itself: the records behind it that every
// route acknowledged give their bytes back at once, though the head of the
// window (and the commit) waits for the stuck one.
func TestEngine_acknowledgedRecordsReleaseTheirBytes(t *testing.T) {
	kinds(t, func(t *testing.T) {
		stuck := newGate()
		defer stuck.open()
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error {
			if m.Offset == 0 {
				return stuck.wait(ctx)
			}
			return nil
		}}
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 2, Buffer: 2000, Ordering: OrderNone}}})
		r := e.Receiver("t")
		r.Assign(0)
		value := make([]byte, 64<<10)
		const n = 500 // 500 × 64 KiB = 31 MiB if they were kept
		for off := range int64(n) {
			offerAll(t, r, &Message{Topic: "t", Partition: 0, Offset: off, Value: value})
		}
		wait(t, guard, "all but the stuck record delivered", func() bool { return route.count() == n-1 })
		if c := committed(r, 0); c != -1 {
			t.Fatalf("committable %d past a stuck record", c)
		}
		want := int64(len(value)) + n*slotCost
		if b := r.bytes.Load(); b != want {
			t.Fatalf("%d bytes charged, want one record's value and %d slots = %d", b, n, want)
		}
		stuck.open()
		wait(t, guard, "commit", func() bool { return committed(r, 0) == n })
		if b := r.bytes.Load(); b != 0 {
			t.Fatalf("%d bytes still charged", b)
		}
	})
}

// The byte budget pauses a partition whose record does not fit, resumes it
// when half is free, and still lets a record larger than the whole budget
// through once at most half is in use.
func TestEngine_byteBudget(t *testing.T) {
	kinds(t, func(t *testing.T) {
		release := make(chan struct{}, 100)
		done := make(chan struct{})
		defer close(done)
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error {
			select {
			case <-release:
			case <-done:
			}
			return nil
		}}
		var resumed atomic.Int32
		const budget = 100_000
		e := newEngine(t, Options{Observer: countResumes(&resumed)}, ReceiverConfig{Topic: "t", MaxBytes: budget,
			Routes: []RouteConfig{{Route: route, Workers: 1, Buffer: 100, Ordering: OrderNone}}})
		r := e.Receiver("t")
		r.Assign(0)
		r.Assign(1)
		rec := func(p int32, off int64, size int) *Message {
			return &Message{Topic: "t", Partition: p, Offset: off, Value: make([]byte, size)}
		}
		const size = int(budget/5 - slotCost) // five fit exactly
		off := int64(0)
		for ; r.Offer(rec(0, off, size)) == nil; off++ {
		}
		if off != 5 {
			t.Fatalf("accepted %d records of %d bytes under a budget of %d", off, size, budget)
		}
		// The budget is the receiver's: another partition is refused too.
		if err := r.Offer(rec(1, 0, size)); !errors.Is(err, ErrCongested) {
			t.Fatalf("partition 1 over budget: %v", err)
		}
		release <- struct{}{}
		release <- struct{}{}
		wait(t, guard, "two delivered", func() bool { return route.count() == 2 })
		if resumed.Load() != 0 {
			t.Fatal("resumed above half the budget")
		}
		release <- struct{}{}
		wait(t, guard, "resume at half", func() bool { return resumed.Load() == 2 })
		// 2 records in use, at most half: a record bigger than the
		// whole budget is admitted, and then nothing more.
		if err := r.Offer(rec(0, off, 3*budget)); err != nil {
			t.Fatalf("oversized record at low water: %v", err)
		}
		if err := r.Offer(rec(1, 0, 10)); !errors.Is(err, ErrCongested) {
			t.Fatalf("record after the oversized one: %v", err)
		}
		for range 3 {
			release <- struct{}{}
		}
		wait(t, guard, "oversized delivered", func() bool { return committed(r, 0) == off+1 })
		offerAll(t, r, rec(1, 0, 10))
		release <- struct{}{}
		wait(t, guard, "drained", func() bool { return r.bytes.Load() == 0 })
	})
}

// With ordering by partition under a standing backlog, the one key's
// waiting list holds the records waiting, not every record processed.
func TestEngine_keyWaitingListFollowsBacklog(t *testing.T) {
	kinds(t, func(t *testing.T) {
		release := make(chan struct{})
		delivered := make(chan struct{})
		done := make(chan struct{})
		defer close(done)
		route := RouteFunc{RouteName: "r", Fn: func(ctx context.Context, m Message) error {
			select {
			case <-release:
			case <-done:
				return nil
			}
			delivered <- struct{}{}
			return nil
		}}
		const buffer = 200
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 1, Buffer: buffer, Ordering: OrderPartition}}})
		r := e.Receiver("t")
		r.Assign(0)
		q := r.routes[0].q
		maxCap := 0
		next := int64(0)
		for range 20_000 {
			// Keep the buffer topped up: a standing backlog behind one key.
			for !r.Paused(0) && r.Offer(msg("t", 0, next, "")) == nil {
				next++
			}
			release <- struct{}{}
			<-delivered
			q.mu.Lock()
			q.keys.each(func(ks *keyState) { maxCap = max(maxCap, cap(ks.waiting)) })
			q.mu.Unlock()
		}
		if maxCap > 4*buffer {
			t.Fatalf("a key's waiting list reached capacity %d with at most %d records waiting", maxCap, buffer)
		}
	})
}

// The resident memory of a process running the engine with 256 assigned
// partitions (default max_inflight), three routes and steady traffic stays
// under 64 MiB (it was 341 MiB when every partition allocated its whole
// window at assign). internal/memcheck is built without the race
// detector, whose shadow memory would swamp the figure.
func TestEngine_rssWithManyPartitions(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "memcheck")
	build := exec.Command("go", "build", "-o", bin, "../internal/memcheck")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-partitions", "256", "-records", "1000").Output()
	if err != nil {
		t.Fatalf("memcheck: %v", err)
	}
	rss, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("memcheck printed %q", out)
	}
	t.Logf("peak RSS with 256 partitions, 3 routes, 1,000 records each: %d MiB", rss>>20)
	if rss > 64<<20 {
		t.Fatalf("peak RSS %d MiB, target under 64 MiB", rss>>20)
	}
}
