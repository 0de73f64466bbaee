package fanout

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// BenchmarkDispatch measures the engine's cost per record end to end: Offer
// until the record is accepted (waiting for Room when a route's buffer
// or the partition's window is full, as the consumer does), the workers'
// delivery to every route, their acknowledgements and the commit watermark
// reaching the last offered offset. The routes discard at once, so what is
// left is the engine's own overhead. One op is one record; it is delivered
// once per route, so ns/delivery is ns/op divided by the number of routes.
//
// The caller reuses one Message per partition, as Offer allows (the engine
// copies it).
func BenchmarkDispatch(b *testing.B) {
	for _, routes := range []int{1, 3, 10} {
		for _, ord := range []Ordering{OrderNone, OrderKey} {
			b.Run(fmt.Sprintf("routes=%d/ordering=%s", routes, ord), func(b *testing.B) {
				benchDispatch(b, routes, ord)
			})
		}
	}
}

const (
	topic      = "bench"
	partitions = 4
	keys       = 64 // distinct keys, for OrderKey
)

// dispatchSetup builds an engine of nroutes discard routes on 4
// partitions and the messages to offer, and the engine's Room signal. The
// engine is closed when b ends.
func dispatchSetup(b *testing.B, nroutes int, ord Ordering) (r *Receiver, msgs []Message, keyBytes [][]byte, room <-chan struct{}) {
	discard := func(context.Context, Message) error { return nil }
	cfgs := make([]RouteConfig, nroutes)
	for i := range cfgs {
		var route Route = RouteFunc{RouteName: "discard" + strconv.Itoa(i), Fn: discard}
		if strings.HasSuffix(b.Name(), "/async") {
			// Acknowledged inline, as routes.DiscardRoute does.
			route = asyncFunc{"discard" + strconv.Itoa(i), func(_ context.Context, _ Message, done Completion) { done.Done(nil) }}
		}
		cfgs[i] = RouteConfig{
			Route:    route,
			Ordering: ord,
			// Workers, Buffer and MaxInflight: the defaults (4, 1024, 10000).
		}
	}
	e, err := New([]ReceiverConfig{{Topic: topic, Routes: cfgs}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			b.Errorf("close: %v", err)
		}
	})
	r = e.Receiver(topic)
	value := make([]byte, 100)
	keyBytes = make([][]byte, keys)
	for i := range keyBytes {
		keyBytes[i] = []byte("key-" + strconv.Itoa(i))
	}
	msgs = make([]Message, partitions)
	for p := range msgs {
		r.Assign(int32(p))
		msgs[p] = Message{Topic: topic, Partition: int32(p), Value: value, Timestamp: time.Unix(1700000000, 0)}
	}
	return r, msgs, keyBytes, e.Room()
}

func benchDispatch(b *testing.B, nroutes int, ord Ordering) {
	r, msgs, keyBytes, room := dispatchSetup(b, nroutes, ord)
	next := make([]int64, partitions)
	stuck := time.NewTimer(guard)
	defer stuck.Stop()

	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := i % partitions
		m := &msgs[p]
		m.Offset = next[p]
		m.Key = keyBytes[i%keys]
		offerUntilAccepted(b, r, unsafe.Slice(m, 1), room, stuck) // what Offer does
		next[p]++
	}
	waitCommittable(b, r, next)
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(nroutes), "ns/delivery")
}

// BenchmarkDispatchBatch is BenchmarkDispatch with records offered in runs
// of 256 per partition through OfferBatch, as the consumer does.
func BenchmarkDispatchBatch(b *testing.B) {
	for _, routes := range []int{1, 3, 10} {
		b.Run(fmt.Sprintf("routes=%d/ordering=none", routes), func(b *testing.B) {
			benchDispatchBatch(b, routes)
		})
		b.Run(fmt.Sprintf("routes=%d/ordering=none/async", routes), func(b *testing.B) {
			benchDispatchBatch(b, routes)
		})
	}
}

func benchDispatchBatch(b *testing.B, nroutes int) {
	const run = 256
	r, msgs, _, room := dispatchSetup(b, nroutes, OrderNone)
	batch := make([]Message, run)
	next := make([]int64, partitions)
	stuck := time.NewTimer(guard)
	defer stuck.Stop()
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		p := (done / run) % partitions
		n := min(run, b.N-done)
		for i := range n {
			batch[i] = msgs[p]
			batch[i].Offset = next[p] + int64(i)
		}
		offerUntilAccepted(b, r, batch[:n], room, stuck)
		next[p] += int64(n)
		done += n
	}
	waitCommittable(b, r, next)
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(nroutes), "ns/delivery")
}

// offerUntilAccepted offers pending (one partition's records) until all are
// accepted, waiting for Room until the partition is no longer paused after
// each refusal, as the consumer does.
func offerUntilAccepted(b *testing.B, r *Receiver, pending []Message, room <-chan struct{}, stuck *time.Timer) {
	for len(pending) > 0 {
		n, err := r.OfferBatch(pending)
		pending = pending[n:]
		if err == nil {
			return
		}
		if !errors.Is(err, ErrCongested) {
			b.Fatalf("offer: %v", err)
		}
		stuck.Reset(guard)
		for r.Paused(pending[0].Partition) {
			select {
			case <-room:
			case <-stuck.C:
				b.Fatalf("partition %d not resumed within %s", pending[0].Partition, guard)
			}
		}
	}
}

// waitCommittable waits until every partition's committable offset reaches
// next, the offset after the last record offered to it.
func waitCommittable(b *testing.B, r *Receiver, next []int64) {
	for p := range next {
		deadline := time.Now().Add(guard)
		for committed(r, int32(p)) != next[p] && next[p] > 0 {
			if time.Now().After(deadline) {
				b.Fatalf("partition %d: committable %d, want %d", p, committed(r, int32(p)), next[p])
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
}
