package fanout

import "time"

// Outcome is how one delivery attempt of a record to a route ended.
type Outcome string

const (
	OutcomeSuccess    Outcome = "success"     // the route acknowledged
	OutcomeRetry      Outcome = "retry"       // the attempt failed; another follows
	OutcomeDeadLetter Outcome = "dead_letter" // the record went to the dead-letter function
	OutcomeFiltered   Outcome = "filtered"    // the route's filter skipped the record
)

// Observer receives the engine's events, for metrics. Implementations must
// be safe for concurrent use and fast: RouteObserver methods run on the
// delivery path.
type Observer interface {
	// Route is called once per route when the engine starts; the returned
	// RouteObserver receives that route's events.
	Route(topic, route string) RouteObserver
	// PartitionPaused is called when Offer refuses a record and the
	// partition becomes paused. cause names the congested route, or is
	// empty when the partition's in-flight window is full.
	PartitionPaused(topic string, partition int32, cause string)
	// PartitionResumed is called when a paused partition may flow again.
	PartitionResumed(topic string, partition int32)
}

// RouteObserver receives one route's events.
type RouteObserver interface {
	// Delivered reports one outcome; d is the attempt's duration (0 for
	// filtered).
	Delivered(o Outcome, d time.Duration)
	// QueueWait reports how long a record waited for a worker.
	QueueWait(d time.Duration)
	// DeadLetterFailed reports a record whose dead-letter publish failed
	// with a permanent error, once per record: the route keeps retrying it
	// (nothing is dropped) and congests.
	DeadLetterFailed()
}

type nopObserver struct{}

func (nopObserver) Route(string, string) RouteObserver    { return nopRouteObserver{} }
func (nopObserver) PartitionPaused(string, int32, string) {}
func (nopObserver) PartitionResumed(string, int32)        {}

type nopRouteObserver struct{}

func (nopRouteObserver) Delivered(Outcome, time.Duration) {}
func (nopRouteObserver) QueueWait(time.Duration)          {}
func (nopRouteObserver) DeadLetterFailed()                {}

// Clock is the engine's source of time, replaceable in tests.
type Clock interface {
	Now() time.Time
	// After waits for d like time.After.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// since is the time elapsed on c since t. On the real clock it reads only
// the monotonic clock (time.Since), half the cost of a full reading: it
// runs once per delivery.
func since(c Clock, t time.Time) time.Duration {
	if _, ok := c.(realClock); ok {
		return time.Since(t)
	}
	return c.Now().Sub(t)
}
