package soak

import (
	"reflect"
	"testing"
	"time"
)

// The same seed replays the same schedule; another seed draws another;
// a schedule without restarts has none; every stall and burst ends.
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
	if kinds[StallStart] != kinds[StallEnd] || kinds[BurstStart] != kinds[BurstEnd] {
		t.Fatalf("unbalanced stalls or bursts: %v", kinds)
	}
	for _, k := range []Kind{Join, Term, Kill, TxnAbort, TxnCommit} {
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
