package fanout

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/internal/testkit"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const guard = 20 * time.Second

var wait = testkit.Wait

// recorder is a route that records what it delivered.
type recorder struct {
	name string
	mu   sync.Mutex
	got  []Message
	fn   func(ctx context.Context, m Message) error // optional behaviour
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) Deliver(ctx context.Context, m Message) error {
	if r.fn != nil {
		if err := r.fn(ctx, m); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.got = append(r.got, m)
	r.mu.Unlock()
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *recorder) messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.got...)
}

// gate blocks deliveries until opened.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

func (g *gate) wait(ctx context.Context) error {
	select {
	case <-g.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func msg(topic string, p int32, off int64, key string) *Message {
	m := &Message{Topic: topic, Partition: p, Offset: off, Value: []byte(fmt.Sprintf("v%d", off)), Timestamp: time.Unix(1700000000, 0)}
	if key != "" {
		m.Key = []byte(key)
	}
	return m
}

func newEngine(tb testing.TB, opts Options, receivers ...ReceiverConfig) *Engine {
	tb.Helper()
	e, err := newFor(tb, receivers, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return e
}

// offerAll offers records of one partition in order, failing on refusal.
func offerAll(tb testing.TB, r *Receiver, msgs ...*Message) {
	tb.Helper()
	for _, m := range msgs {
		if err := r.Offer(m); err != nil {
			tb.Fatalf("offer %d/%d: %v", m.Partition, m.Offset, err)
		}
	}
}

// fillUntilRefused offers records of "t" partition 0 from offset 0 until
// one is refused, and returns the refused offset.
func fillUntilRefused(r *Receiver) int64 {
	next := int64(0)
	for r.Offer(msg("t", 0, next, "")) == nil {
		next++
	}
	return next
}

// offerWithRoom offers records of "t" partition 0 at offsets [from, to),
// waiting for Room after each refusal; a refusal that no Room answers
// within guard fails the test with why.
func offerWithRoom(tb testing.TB, e *Engine, r *Receiver, from, to int64, why string) {
	tb.Helper()
	for next := from; next < to; next++ {
		for r.Offer(msg("t", 0, next, "")) != nil {
			select {
			case <-e.Room():
			case <-time.After(guard):
				tb.Fatalf("record %d not taken within %s: %s", next, guard, why)
			}
		}
	}
}

func committed(r *Receiver, p int32) int64 {
	c, ok := r.Committable(p)
	if !ok {
		return -1
	}
	return c.Offset
}

// fakeClock makes backoff waits instant and records the requested delays.
type fakeClock struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (c *fakeClock) Now() time.Time { return time.Now() }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.delays = append(c.delays, d)
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- time.Now()
	return ch
}

func (c *fakeClock) recorded() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.delays...)
}

// resumeCounter is an Observer counting PartitionResumed events.
type resumeCounter struct {
	nopObserver
	n *atomic.Int32
}

func countResumes(n *atomic.Int32) Observer { return resumeCounter{n: n} }

func (c resumeCounter) PartitionResumed(string, int32) { c.n.Add(1) }

// kinds runs f twice: with the test's routes as they are (synchronous) and
// with each wrapped in asyncAdapter, so every promise is checked on both
// of the engine's delivery paths.
func kinds(t *testing.T, f func(t *testing.T)) {
	t.Run("sync", f)
	t.Run("async", f)
}

// newFor is New for a test of kinds: under an "async" subtest every route
// is driven through AsyncRoute.
func newFor(tb testing.TB, receivers []ReceiverConfig, opts Options) (*Engine, error) {
	if strings.HasSuffix(tb.Name(), "/async") {
		receivers = append([]ReceiverConfig(nil), receivers...)
		for i := range receivers {
			routes := append([]RouteConfig(nil), receivers[i].Routes...)
			for j := range routes {
				if routes[j].Route != nil {
					routes[j].Route = asyncAdapter{routes[j].Route}
				}
			}
			receivers[i].Routes = routes
		}
	}
	return New(receivers, opts)
}

// asyncAdapter makes a Route asynchronous: each delivery runs on a
// goroutine of its own and reports its outcome (a panic becomes a
// PanicError, as the engine makes of a synchronous route's).
type asyncAdapter struct{ Route }

func (a asyncAdapter) DeliverAsync(ctx context.Context, m Message, done Completion) {
	go func() {
		var err error
		func() {
			panicked := true
			defer func() {
				if r := recover(); r != nil || panicked {
					err = &PanicError{Value: r}
				}
			}()
			err = a.Route.Deliver(ctx, m)
			panicked = false
		}()
		done.Done(err)
	}()
}
