package soak

import (
	"reflect"
	"testing"
	"time"
)

// The same seed replays the same schedule; another seed draws another;
// a schedule without restarts has none; every stall and burst ends; every
// schedule long enough stalls the spill route from the start, long enough
// to detach it.
func TestSchedule_seeded(t *testing.T) {
	o := Options{Faults: time.Minute, Restarts: true, MaxWorkers: 3}
	a, b := NewSchedule(42, o), NewSchedule(42, o)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed drew two schedules")
	}
	if reflect.DeepEqual(a.Events, NewSchedule(43, o).Events) {
		t.Fatal("two seeds drew the same schedule")
	}
	kinds := map[Kind]int{}
	for i, e := range a.Events {
		kinds[e.Kind]++
		if i > 0 && e.At < a.Events[i-1].At {
			t.Fatalf("events out of order at %d", i)
		}
	}
	if kinds[StallStart] != kinds[StallEnd] || kinds[BurstStart] != kinds[BurstEnd] || kinds[SpillStallStart] != kinds[SpillStallEnd] {
		t.Fatalf("unbalanced stalls or bursts: %v", kinds)
	}
	for seed := range uint64(20) {
		var start, end time.Duration = -1, -1
		for _, e := range NewSchedule(seed, o).Events {
			if e.Kind == SpillStallStart && start < 0 {
				start = e.At
			}
			if e.Kind == SpillStallEnd && start >= 0 && end < 0 {
				end = e.At
			}
		}
		if start != spillStallFirst || end-start < spillStallMin {
			t.Errorf("seed %d: the first spill stall is %s–%s, want one from %s for at least %s", seed, start, end, spillStallFirst, spillStallMin)
		}
	}
	// No worker leaves while the first spill stall lasts, so one runs the
	// route while it stalls (the seed of a CI run included: it killed both
	// starting workers before the route could detach).
	for _, seed := range append([]uint64{1796133372981003588}, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9) {
		for _, e := range NewSchedule(seed, Options{Faults: 25 * time.Second, MaxWorkers: 3}).Events {
			if e.At < spillStallFirst+spillStallMax && (e.Kind == Kill || e.Kind == Term) {
				t.Errorf("seed %d: %s at %s, during the first spill stall", seed, e.Kind, e.At)
			}
		}
	}
	for _, k := range []Kind{Join, Term, Kill, TxnAbort, TxnCommit, SpillStallStart} {
		if kinds[k] == 0 {
			t.Errorf("a minute of faults has no %s: %v", k, kinds)
		}
	}
	o.Restarts = false
	for _, e := range NewSchedule(42, o).Events {
		if e.Kind == BrokerRestart {
			t.Fatal("a broker restart in a schedule that allows none")
		}
	}
}
