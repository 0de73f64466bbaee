package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Ordering says which records of a route must be delivered one at a time, in
// offset order.
type Ordering int

const (
	// OrderKey serialises records with the same key (the default). Records
	// without a key are not ordered among themselves.
	OrderKey Ordering = iota
	// OrderPartition serialises all records of a partition.
	OrderPartition
	// OrderNone delivers in any order, as fast as the workers go.
	OrderNone
)

// String returns the configuration name of the ordering.
func (o Ordering) String() string {
	switch o {
	case OrderKey:
		return "key"
	case OrderPartition:
		return "partition"
	case OrderNone:
		return "none"
	}
	return fmt.Sprintf("Ordering(%d)", int(o))
}

// MaxRoutes is the most routes one receiver may have: each in-flight record
// tracks its unacknowledged routes in one 64-bit mask.
const MaxRoutes = 64

// RouteConfig is one route of a receiver.
type RouteConfig struct {
	// Route delivers the records. Required.
	Route Route
	// Workers is the size of the route's worker pool. Default 4.
	Workers int
	// Buffer bounds the records waiting for a worker. Default 1024.
	Buffer int
	// Ordering defaults to OrderKey.
	Ordering Ordering
	// Filter, when set, selects the records this route receives; a record
	// it rejects counts as acknowledged by this route. It runs on the
	// caller of Offer and must be fast and must not retain the message.
	Filter func(m *Message) bool
	// MaxAttempts is the number of delivery attempts before a record goes
	// to DeadLetter. It is ignored (retry forever) when DeadLetter is nil.
	// 0 with a DeadLetter means only permanent errors dead-letter.
	MaxAttempts int
	// InitialBackoff and MaxBackoff shape the exponential backoff between
	// attempts (jittered by ±50%). Defaults 200ms and 30s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// DeadLetter receives records that exhausted MaxAttempts or failed
	// permanently. Nil means retry forever.
	DeadLetter DeadLetterFunc
	// Timeout bounds each delivery attempt, for every kind of route: the
	// attempt's context ends after it, and an attempt that ended so fails
	// with a *TimeoutError, which is retried. An asynchronous route that
	// ignores its context is bounded too: its attempt fails at the
	// deadline and a late outcome is ignored. (A synchronous Deliver that
	// ignores its context keeps its worker until it returns.) Zero: no
	// bound.
	Timeout time.Duration
	// Spill, when set, lets the route detach when it stays congested (see
	// SpillConfig).
	Spill *SpillConfig
}

// SpillConfig detaches a route that has been congested for After: every
// record it has not acknowledged yet (those in its buffer, those its
// deliveries give back, and each new one) is handed to Route, which
// produces it to a spill topic, and Route's acknowledgement is the route's,
// so the receiver's commits move on and its other routes keep their rate.
// Someone else feeds the route from the spill topic (the wiring's spill
// consumer). Once Backlog reports the spill topic drained (after the engine
// stopped spilling and its last spill was acknowledged), the route
// re-attaches: records go to it directly again. No record goes direct
// while an earlier one is still in the spill topic, so the route's
// ordering holds across both switches.
type SpillConfig struct {
	// Route produces a record to the spill topic. Required.
	Route AsyncRoute
	// After is how long the route must stay congested before it
	// detaches. Default 30s.
	After time.Duration
	// InFlight bounds the spill produces in flight. Default 1024.
	InFlight int
	// Backlog returns how many records in the spill topic have not been
	// delivered from it yet, by any worker. The engine calls it while the
	// route is detached (every tick of its watchdog) and when a partition
	// is assigned while the route is attached: a new owner of a partition
	// must keep spilling while earlier records may still be parked. Its
	// answer counts every spill Route acknowledged before the call (a
	// cached reading from before the last acknowledgement would let the
	// route re-attach with that record still parked). Required.
	Backlog func(ctx context.Context) (int64, error)
	// Topic names the spill topic, for Stats.
	Topic string
}

// ReceiverConfig is one receiver: a topic and its routes.
type ReceiverConfig struct {
	Topic string
	// MaxInflight bounds the records of one partition accepted but not yet
	// acknowledged by every route. Default DefaultMaxInflight.
	MaxInflight int
	// MaxBytes bounds the memory of the receiver's records in flight,
	// across its partitions: their keys, values and headers until the
	// last route acknowledged, and a slot of bookkeeping each until the
	// partition's committable offset passes them. A partition whose next
	// record does not fit pauses until half the budget is free again. A
	// single record larger than the budget is still accepted once at most
	// half of it is in use. Default DefaultMaxBytes.
	MaxBytes int64
	Routes   []RouteConfig
}

// Defaults of ReceiverConfig.
const (
	DefaultMaxInflight       = 10000
	DefaultMaxBytes    int64 = 64 << 20
)

// SlotBytes is the bookkeeping a record in flight costs besides its data:
// the figure the byte budget charges per record.
const SlotBytes = slotCost

// Options are the engine's collaborators. The zero value works.
type Options struct {
	// Observer receives delivery outcomes and pause events. Default: none.
	Observer Observer
	// Logger for engine events. Default: zerolog.Nop().
	Logger *zerolog.Logger
	// Clock drives backoff waits and timestamps. Default: the real clock.
	Clock Clock
}

func (rc *RouteConfig) setDefaults() {
	if rc.Workers == 0 {
		rc.Workers = 4
	}
	if rc.Buffer == 0 {
		rc.Buffer = 1024
	}
	if rc.InitialBackoff == 0 {
		rc.InitialBackoff = 200 * time.Millisecond
	}
	if rc.MaxBackoff == 0 {
		rc.MaxBackoff = 30 * time.Second
	}
	if rc.MaxBackoff < rc.InitialBackoff {
		rc.MaxBackoff = rc.InitialBackoff
	}
	if rc.Spill != nil {
		s := *rc.Spill
		if s.After <= 0 {
			s.After = 30 * time.Second
		}
		if s.InFlight <= 0 {
			s.InFlight = 1024
		}
		rc.Spill = &s
	}
}

func (c *ReceiverConfig) setDefaults() {
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	c.Routes = append([]RouteConfig(nil), c.Routes...)
	for i := range c.Routes {
		c.Routes[i].setDefaults()
	}
}

func (c *ReceiverConfig) validate() error {
	var errs []error
	if c.Topic == "" {
		errs = append(errs, errors.New("receiver topic is empty"))
	}
	if c.MaxInflight < 1 {
		errs = append(errs, fmt.Errorf("receiver %q: max_inflight must be at least 1", c.Topic))
	}
	if c.MaxBytes < 1 {
		errs = append(errs, fmt.Errorf("receiver %q: max bytes must be at least 1", c.Topic))
	}
	if len(c.Routes) == 0 || len(c.Routes) > MaxRoutes {
		errs = append(errs, fmt.Errorf("receiver %q: needs 1 to %d routes, has %d", c.Topic, MaxRoutes, len(c.Routes)))
	}
	names := make(map[string]bool)
	for i, rc := range c.Routes {
		if rc.Route == nil {
			errs = append(errs, fmt.Errorf("receiver %q: route %d has no Route", c.Topic, i))
			continue
		}
		n := rc.Route.Name()
		if names[n] {
			errs = append(errs, fmt.Errorf("receiver %q: duplicate route name %q", c.Topic, n))
		}
		names[n] = true
		if rc.Workers < 1 || rc.Buffer < 1 || rc.MaxAttempts < 0 || rc.InitialBackoff <= 0 {
			errs = append(errs, fmt.Errorf("receiver %q: route %q: workers and buffer must be at least 1, backoff positive", c.Topic, n))
		}
		if rc.Spill != nil && (rc.Spill.Route == nil || rc.Spill.Backlog == nil) {
			errs = append(errs, fmt.Errorf("receiver %q: route %q: spill needs a Route and a Backlog", c.Topic, n))
		}
		if rc.Timeout < 0 {
			errs = append(errs, fmt.Errorf("receiver %q: route %q: negative timeout %s", c.Topic, n, rc.Timeout))
		}
		if rc.Ordering < OrderKey || rc.Ordering > OrderNone {
			errs = append(errs, fmt.Errorf("receiver %q: route %q: unknown ordering %d", c.Topic, n, rc.Ordering))
		}
	}
	return errors.Join(errs...)
}
