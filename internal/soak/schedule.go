// Package soak is the seeded randomized soak test of the worker: several
// worker processes (the built binary) in one consumer group over a few
// receivers with fast, slow, stalling and 5xx-bursting routes, and a
// route with spill that stalls long enough to detach, while a schedule
// drawn from a printed seed mixes joins, SIGTERMs, SIGKILLs, broker
// restarts, stalls that start and end, transactional producers that commit
// and abort, and large records. At the end it checks the promises: every
// committed record reached every route (through the spill topic or not),
// every parked record reached its route, no aborted record reached any, no
// committed offset went backwards, every partition (of the receivers and
// of the spill topics) reached its end offset within a bound after the
// last fault and every detached route re-attached, every SIGTERMed worker
// exited 0 within its budget, and no worker's peak RSS passed the worst
// case its configuration implies.
//
// The same seed replays the same schedule. Tests drive it (the root
// package on kfake, integration_test on Apache Kafka); it is not part of
// the product.
package soak

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// Kind is one kind of scheduled fault or event.
type Kind string

// The kinds of events a schedule mixes.
const (
	Join          Kind = "join"           // start a worker
	Term          Kind = "sigterm"        // SIGTERM a running worker
	Kill          Kind = "sigkill"        // SIGKILL a running worker
	BrokerRestart Kind = "broker-restart" // restart the broker, keeping its data
	StallStart    Kind = "stall-start"    // the stall route stops answering
	StallEnd      Kind = "stall-end"
	// The spill route stops answering, long enough to detach; it
	// re-attaches once its spill topic drains after the stall ends.
	SpillStallStart Kind = "spill-stall-start"
	SpillStallEnd   Kind = "spill-stall-end"
	BurstStart      Kind = "burst-start" // the flaky route answers 503 to everything
	BurstEnd        Kind = "burst-end"
	TxnCommit       Kind = "txn-commit" // a transactional batch, committed
	TxnAbort        Kind = "txn-abort"  // a transactional batch, aborted
	Large           Kind = "large"      // a record of several hundred KiB
)

// Event is one step of a schedule.
type Event struct {
	At   time.Duration // after the start
	Kind Kind
	// Pick chooses among candidates (which worker to signal, which
	// receiver gets the record): taken modulo their number when the event
	// runs.
	Pick int
}

// Schedule is a seeded list of events in time order.
type Schedule struct {
	Seed   uint64
	Events []Event
}

// Options shape a schedule.
type Options struct {
	// Faults is how long faults keep coming; the run then lets everything
	// settle.
	Faults time.Duration
	// Restarts allows broker restarts (the broker can be restarted).
	Restarts bool
	// MaxWorkers bounds the workers running at once.
	MaxWorkers int
}

// NewSchedule draws a schedule from seed. The same seed and options give
// the same schedule.
func NewSchedule(seed uint64, o Options) Schedule {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	s := Schedule{Seed: seed}
	add := func(at time.Duration, k Kind) {
		s.Events = append(s.Events, Event{At: at, Kind: k, Pick: rng.IntN(1 << 20)})
	}
	// Two workers from the start, so rebalances and kills have company.
	add(0, Join)
	add(0, Join)
	// Every run detaches the spill route at least once: a spill stall
	// from the start, as long as the longest drawn.
	first := o.Faults > spillStallFirst+spillStallMax
	if first {
		add(spillStallFirst, SpillStallStart)
		add(spillStallFirst+spillStallMax, SpillStallEnd)
	}
	// Faults arrive every 0.5 to 2.5 seconds, picked by weight.
	kinds := []struct {
		k Kind
		w int
	}{{Join, 4}, {Term, 3}, {Kill, 3}, {StallStart, 3}, {SpillStallStart, 2}, {BurstStart, 2}, {TxnCommit, 3}, {TxnAbort, 3}, {Large, 2}}
	if o.Restarts {
		kinds = append(kinds, struct {
			k Kind
			w int
		}{BrokerRestart, 1})
	}
	total := 0
	for _, k := range kinds {
		total += k.w
	}
	restarts := 0
	for at := time.Duration(0); ; {
		at += 500*time.Millisecond + time.Duration(rng.Int64N(int64(2*time.Second)))
		if at >= o.Faults {
			break
		}
		n := rng.IntN(total)
		var k Kind
		for _, c := range kinds {
			if n < c.w {
				k = c.k
				break
			}
			n -= c.w
		}
		if first && at < spillStallFirst+spillStallMax {
			switch k {
			case SpillStallStart:
				// While the first spill stall lasts, a stall of the stall
				// route instead: its end would cut the first short.
				k = StallStart
			case Kill, Term:
				// And no worker leaves: with both starters gone, nobody
				// would run the route while it stalls, and it would never
				// detach (seed 1796133372981003588 did that).
				k = Join
			}
		}
		switch k {
		case BrokerRestart:
			if restarts >= 2 {
				k = TxnAbort
			}
			restarts++
		case StallStart:
			add(at, k)
			k = StallEnd
			at += 2*time.Second + time.Duration(rng.Int64N(int64(5*time.Second)))
		case SpillStallStart:
			add(at, k)
			k = SpillStallEnd
			at += spillStallMin + time.Duration(rng.Int64N(int64(spillStallMax-spillStallMin)))
		case BurstStart:
			add(at, k)
			k = BurstEnd
			at += 500*time.Millisecond + time.Duration(rng.Int64N(int64(2*time.Second)))
		}
		add(at, k)
	}
	sort.SliceStable(s.Events, func(i, j int) bool { return s.Events[i].At < s.Events[j].At })
	return s
}

// Spill stalls last from spillStallMin to spillStallMax: longer than the
// spill route takes to fill its buffer and stay congested for its
// spill.after (spillAfter), so that it detaches while the faults go on.
const (
	spillStallMin   = 3 * time.Second
	spillStallMax   = 8 * time.Second
	spillStallFirst = time.Second
)

// String prints the seed and every event, for a failure report.
func (s Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, %d events:\n", s.Seed, len(s.Events))
	for _, e := range s.Events {
		fmt.Fprintf(&b, "  %7.2fs  %-17s pick %d\n", e.At.Seconds(), e.Kind, e.Pick)
	}
	return b.String()
}
