package fanout

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestEngine_deliversEveryRecordToEveryRouteAndCommits(t *testing.T) {
	kinds(t, func(t *testing.T) {
		a, b := &recorder{name: "a"}, &recorder{name: "b"}
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: a}, {Route: b, Ordering: OrderNone}}})
		r := e.Receiver("t")
		for p := int32(0); p < 3; p++ {
			r.Assign(p)
			for off := int64(0); off < 100; off++ {
				offerAll(t, r, msg("t", p, off, "k"))
			}
		}
		wait(t, guard, "all delivered", func() bool { return a.count() == 300 && b.count() == 300 })
		for p := int32(0); p < 3; p++ {
			wait(t, guard, "committable at end", func() bool { return committed(r, p) == 100 })
		}
		for _, m := range a.messages() {
			if string(m.Value) != "v"+itoa(m.Offset) || m.Attempt != 1 || m.Topic != "t" {
				t.Fatalf("route got %+v", m)
			}
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A stalled route must not delay a fast one: with every worker of the
// stalled route blocked, the fast route still gets a whole burst that fits
// in the stalled route's buffer.
func TestEngine_stalledRouteDoesNotDelayFastRoute(t *testing.T) {
	kinds(t, func(t *testing.T) {
		stall := newGate()
		defer stall.open()
		var blocked atomic.Int32
		slow := &recorder{name: "slow", fn: func(ctx context.Context, m Message) error {
			blocked.Add(1)
			return stall.wait(ctx)
		}}
		fast := &recorder{name: "fast"}
		const workers, buffer = 2, 500
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
			{Route: slow, Workers: workers, Buffer: buffer, Ordering: OrderNone},
			{Route: fast, Workers: 2, Buffer: buffer, Ordering: OrderNone},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""), msg("t", 0, 1, ""))
		wait(t, guard, "slow workers blocked", func() bool { return blocked.Load() == workers })
		for off := int64(2); off < buffer+workers; off++ {
			offerAll(t, r, msg("t", 0, off, ""))
		}
		wait(t, guard, "fast route delivered the burst", func() bool { return fast.count() == buffer+workers })
		if slow.count() != 0 {
			t.Fatalf("stalled route delivered %d", slow.count())
		}
		if got := committed(r, 0); got != -1 {
			t.Fatalf("committable %d while the stalled route holds every record", got)
		}
		stall.open()
		wait(t, guard, "commit after release", func() bool { return committed(r, 0) == buffer+workers })
	})
}

// Offering a million records to a receiver with one stalled route accepts
// no more than the bounds allow and refuses the rest; releasing the stall
// fires resume and everything accepted completes.
func TestEngine_memoryBoundUnderStall(t *testing.T) {
	kinds(t, func(t *testing.T) {
		stall := newGate()
		defer stall.open()
		var resumes atomic.Int32
		slow := &recorder{name: "slow", fn: func(ctx context.Context, m Message) error { return stall.wait(ctx) }}
		fast := &recorder{name: "fast"}
		const workers, buffer, inflight, parts = 4, 1000, 5000, 4
		e := newEngine(t, Options{Observer: countResumes(&resumes)}, ReceiverConfig{
			Topic: "t", MaxInflight: inflight,
			Routes: []RouteConfig{
				{Route: slow, Workers: workers, Buffer: buffer},
				{Route: fast, Workers: 2, Buffer: 2 * buffer}, // never the congested one
			}})
		r := e.Receiver("t")
		for p := range int32(parts) {
			r.Assign(p)
		}
		next := make([]int64, parts)
		accepted, refused := 0, 0
		for i := range 1_000_000 {
			p := int32(i % parts)
			err := r.Offer(msg("t", p, next[p], ""))
			switch {
			case err == nil:
				accepted++
				next[p]++
			case errors.Is(err, ErrCongested):
				refused++
			default:
				t.Fatal(err)
			}
		}
		if bound := buffer + workers; accepted > bound {
			t.Fatalf("accepted %d records, bound is buffer+workers = %d", accepted, bound)
		}
		if accepted+refused != 1_000_000 || refused < 1_000_000-buffer-workers {
			t.Fatalf("accepted %d refused %d", accepted, refused)
		}
		for p := range int32(parts) {
			if !r.Paused(p) {
				t.Fatalf("partition %d not paused", p)
			}
		}
		if resumes.Load() != 0 {
			t.Fatal("resumed while stalled")
		}
		st := e.Stats()[0]
		if !st.Routes[0].Congested || st.Routes[1].Congested {
			t.Fatalf("congestion flags: %+v", st.Routes)
		}
		stall.open()
		wait(t, guard, "resume for every partition", func() bool { return resumes.Load() == parts })
		for p := range int32(parts) {
			wait(t, guard, "accepted records complete", func() bool { return committed(r, p) == next[p] })
		}
		if fast.count() != accepted || slow.count() != accepted {
			t.Fatalf("fast %d slow %d accepted %d", fast.count(), slow.count(), accepted)
		}
		// Flow resumes: the partitions accept again.
		for p := range int32(parts) {
			offerAll(t, r, msg("t", p, next[p], ""))
		}
	})
}

func TestEngine_resumeWaitsForLowWater(t *testing.T) {
	kinds(t, func(t *testing.T) {
		release := make(chan struct{}, 100)
		finished := make(chan struct{})
		defer close(finished)
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error {
			select {
			case <-release:
			case <-finished:
			}
			return nil
		}}
		var resumed atomic.Int32
		e := newEngine(t, Options{Observer: countResumes(&resumed)},
			ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 1, Buffer: 10, Ordering: OrderNone}}})
		r := e.Receiver("t")
		r.Assign(0)
		offerAll(t, r, msg("t", 0, 0, ""))
		wait(t, guard, "the worker holds the first record", func() bool { return e.Stats()[0].Routes[0].Busy == 1 })
		off := int64(1)
		for ; r.Offer(msg("t", 0, off, "")) == nil; off++ {
		}
		if off != 11 { // 10 buffered + 1 taken by the worker
			t.Fatalf("accepted %d, want 11", off)
		}
		// Draining to 6 queued (above half of 10) must not resume.
		for range 4 {
			release <- struct{}{}
		}
		wait(t, guard, "4 delivered", func() bool { return route.count() == 4 })
		if resumed.Load() != 0 || !r.Paused(0) {
			t.Fatal("resumed above the low-water mark")
		}
		for range 3 {
			release <- struct{}{}
		}
		wait(t, guard, "resume at low water", func() bool { return resumed.Load() == 1 })
		if r.Paused(0) {
			t.Fatal("still paused after resume")
		}
	})
}

func TestEngine_inflightWindowPausesPartition(t *testing.T) {
	kinds(t, func(t *testing.T) {
		stall := newGate()
		defer stall.open()
		var resumed atomic.Int32
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error { return stall.wait(ctx) }}
		e := newEngine(t, Options{Observer: countResumes(&resumed)},
			ReceiverConfig{Topic: "t", MaxInflight: 8, Routes: []RouteConfig{{Route: route, Workers: 2, Buffer: 100}}})
		r := e.Receiver("t")
		r.Assign(0)
		r.Assign(1)
		for off := range int64(8) {
			offerAll(t, r, msg("t", 0, off, ""))
		}
		if err := r.Offer(msg("t", 0, 8, "")); !errors.Is(err, ErrCongested) {
			t.Fatalf("9th record: %v, want ErrCongested", err)
		}
		// Another partition of the same receiver still flows.
		offerAll(t, r, msg("t", 1, 0, ""))
		stall.open()
		wait(t, guard, "resume", func() bool { return resumed.Load() == 1 })
		offerAll(t, r, msg("t", 0, 8, ""))
		wait(t, guard, "complete", func() bool { return committed(r, 0) == 9 })
	})
}

// Under key ordering, each key's records arrive in offset order, one at a
// time, while a stuck key does not hold up the others.
func TestEngine_keyOrdering(t *testing.T) {
	kinds(t, func(t *testing.T) {
		stuck := newGate()
		defer stuck.open()
		var mu sync.Mutex
		inflight := map[string]int{}
		var violations atomic.Int32
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error {
			k := string(m.Key)
			mu.Lock()
			inflight[k]++
			if inflight[k] > 1 {
				violations.Add(1)
			}
			mu.Unlock()
			defer func() { mu.Lock(); inflight[k]--; mu.Unlock() }()
			if k == "stuck" {
				return stuck.wait(ctx)
			}
			if m.Offset%7 == 0 {
				time.Sleep(50 * time.Microsecond) // vary the interleaving
			}
			return nil
		}}
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 8, Buffer: 5000}}})
		r := e.Receiver("t")
		r.Assign(0)
		keys := []string{"a", "b", "c", "d", "e", "stuck"}
		const n = 3000
		for off := range int64(n) {
			offerAll(t, r, msg("t", 0, off, keys[off%int64(len(keys))]))
		}
		perKey := n / len(keys)
		wait(t, guard, "non-stuck keys delivered", func() bool { return route.count() == n-perKey })
		stuck.open()
		wait(t, guard, "stuck key delivered", func() bool { return route.count() == n })
		last := map[string]int64{}
		for _, m := range route.messages() {
			k := string(m.Key)
			if prev, ok := last[k]; ok && m.Offset <= prev {
				t.Fatalf("key %s: offset %d delivered after %d", k, m.Offset, prev)
			}
			last[k] = m.Offset
		}
		if v := violations.Load(); v != 0 {
			t.Fatalf("%d concurrent deliveries of one key", v)
		}
		wait(t, guard, "commit", func() bool { return committed(r, 0) == n })
	})
}

func TestEngine_partitionOrdering(t *testing.T) {
	kinds(t, func(t *testing.T) {
		route := &recorder{name: "r"}
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 4, Buffer: 1000, Ordering: OrderPartition}}})
		r := e.Receiver("t")
		for p := range int32(3) {
			r.Assign(p)
		}
		for off := range int64(300) {
			for p := range int32(3) {
				offerAll(t, r, msg("t", p, off, "k"+itoa(off)))
			}
		}
		wait(t, guard, "delivered", func() bool { return route.count() == 900 })
		last := map[int32]int64{0: -1, 1: -1, 2: -1}
		for _, m := range route.messages() {
			if m.Offset != last[m.Partition]+1 {
				t.Fatalf("partition %d: offset %d after %d", m.Partition, m.Offset, last[m.Partition])
			}
			last[m.Partition] = m.Offset
		}
	})
}

func TestEngine_filterCountsAsAcknowledged(t *testing.T) {
	kinds(t, func(t *testing.T) {
		all, some := &recorder{name: "all"}, &recorder{name: "some"}
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
			{Route: all},
			{Route: some, Filter: func(m *Message) bool { v, _ := m.Header("type"); return string(v) == "x" }},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		for off := range int64(10) {
			m := msg("t", 0, off, "")
			if off%2 == 0 {
				m.Headers = []Header{{Key: "type", Value: []byte("x")}}
			}
			offerAll(t, r, m)
		}
		wait(t, guard, "commit", func() bool { return committed(r, 0) == 10 })
		if all.count() != 10 || some.count() != 5 {
			t.Fatalf("all %d some %d", all.count(), some.count())
		}
		// A record no route wants completes at once.
		none := &recorder{name: "none"}
		e2 := newEngine(t, Options{}, ReceiverConfig{Topic: "u", Routes: []RouteConfig{{Route: none, Filter: func(*Message) bool { return false }}}})
		r2 := e2.Receiver("u")
		r2.Assign(0)
		offerAll(t, r2, msg("u", 0, 41, ""))
		if got := committed(r2, 0); got != 42 {
			t.Fatalf("fully filtered record: committable %d, want 42", got)
		}
	})
}

func TestEngine_notAssignedAndClosed(t *testing.T) {
	kinds(t, func(t *testing.T) {
		e, err := newFor(t, []ReceiverConfig{{Topic: "t", Routes: []RouteConfig{{Route: &recorder{name: "r"}}}}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := e.Receiver("t")
		if err := r.Offer(msg("t", 0, 0, "")); !errors.Is(err, ErrNotAssigned) {
			t.Fatalf("unassigned: %v", err)
		}
		r.Assign(0)
		if err := e.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := r.Offer(msg("t", 0, 0, "")); !errors.Is(err, ErrClosed) {
			t.Fatalf("after close: %v", err)
		}
		if err := e.Close(context.Background()); err != nil {
			t.Fatalf("second close: %v", err)
		}
	})
}

func TestNew_rejectsBadConfig(t *testing.T) {
	kinds(t, func(t *testing.T) {
		r := &recorder{name: "dup"}
		cases := []struct {
			name string
			rc   ReceiverConfig
		}{
			{"no topic", ReceiverConfig{Routes: []RouteConfig{{Route: r}}}},
			{"no routes", ReceiverConfig{Topic: "t"}},
			{"duplicate route", ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: r}, {Route: r}}}},
			{"nil route", ReceiverConfig{Topic: "t", Routes: []RouteConfig{{}}}},
			{"negative workers", ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: r, Workers: -1}}}},
			{"bad ordering", ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: r, Ordering: 9}}}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if e, err := newFor(t, []ReceiverConfig{tc.rc}, Options{}); err == nil {
					_ = e.Close(context.Background())
					t.Fatal("New accepted a bad configuration")
				}
			})
		}
	})
}

func TestOfferBatch_acceptsAPrefixUpToTheBound(t *testing.T) {
	kinds(t, func(t *testing.T) {
		stall := newGate()
		defer stall.open()
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error { return stall.wait(ctx) }}
		skip := &recorder{name: "skip"}
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{
			{Route: route, Workers: 1, Buffer: 10, Ordering: OrderNone},
			{Route: skip, Filter: func(*Message) bool { return false }},
		}})
		r := e.Receiver("t")
		r.Assign(0)
		r.Assign(1)
		mixed := []Message{*msg("t", 1, 0, ""), *msg("t", 0, 99, "")}
		if n, err := r.OfferBatch(mixed); n != 1 || err == nil || !strings.Contains(err.Error(), "partition") {
			t.Fatalf("mixed partitions: %d, %v", n, err)
		}
		wait(t, guard, "the worker holds partition 1's record", func() bool { return e.Stats()[0].Routes[0].Busy == 1 })
		batch := make([]Message, 30)
		for i := range batch {
			batch[i] = *msg("t", 0, int64(i), "")
		}
		n, err := r.OfferBatch(batch)
		// The buffer holds 10 while the only worker is busy; the rest is
		// refused and the partition paused.
		if !errors.Is(err, ErrCongested) || n != 10 || !r.Paused(0) {
			t.Fatalf("OfferBatch = %d, %v; paused %v", n, err, r.Paused(0))
		}
		if n2, err := r.OfferBatch(batch[n:]); n2 != 0 || !errors.Is(err, ErrCongested) {
			t.Fatalf("paused partition accepted %d (%v)", n2, err)
		}
		if n, err := r.OfferBatch(nil); n != 0 || err != nil {
			t.Fatalf("empty batch: %d, %v", n, err)
		}
		stall.open()
		wait(t, guard, "accepted records complete", func() bool { return committed(r, 0) == int64(n) })
		if route.count() != n+1 { // n of partition 0, one of partition 1
			t.Fatalf("delivered %d, want %d", route.count(), n+1)
		}
	})
}

func TestSaturated_andRoom(t *testing.T) {
	kinds(t, func(t *testing.T) {
		release := make(chan struct{}, 100)
		route := &recorder{name: "r", fn: func(ctx context.Context, m Message) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
		e := newEngine(t, Options{}, ReceiverConfig{Topic: "t", Routes: []RouteConfig{{Route: route, Workers: 1, Buffer: 10, Ordering: OrderNone}}})
		r := e.Receiver("t")
		if r.Flowing() || r.Saturated() {
			t.Fatal("a receiver without partitions neither flows nor saturates")
		}
		r.Assign(0)
		if !r.Flowing() || r.Saturated() {
			t.Fatal("an idle assigned receiver flows and has room")
		}
		offerAll(t, r, msg("t", 0, 0, ""))
		wait(t, guard, "worker busy", func() bool { return e.Stats()[0].Routes[0].Busy == 1 })
		for off := int64(1); off <= 6; off++ { // 6 queued: above half of 10
			offerAll(t, r, msg("t", 0, off, ""))
		}
		if !r.Saturated() {
			t.Fatal("more than half full but not saturated")
		}
		select {
		case <-e.Room():
		default:
		}
		release <- struct{}{} // record 0 done: the worker takes record 1, 5 queued = half
		select {
		case <-e.Room():
		case <-time.After(guard):
			t.Fatal("no room signal at the low-water mark")
		}
		if r.Saturated() {
			t.Fatal("saturated at the low-water mark")
		}
		// A receiver whose only partition is paused does not flow.
		for off := int64(7); r.Offer(msg("t", 0, off, "")) == nil; off++ {
		}
		if r.Flowing() || r.Saturated() {
			t.Fatal("a fully paused receiver still counts as flowing")
		}
		for range 20 {
			release <- struct{}{}
		}
	})
}
