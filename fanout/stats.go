package fanout

import "time"

// RouteStats is a snapshot of one route.
type RouteStats struct {
	Topic     string
	Route     string
	Depth     int // records waiting for a worker
	Capacity  int
	Workers   int
	Busy      int  // workers delivering now
	Congested bool // full, not yet drained to half
	// OldestPending is the age of the oldest record this route has not
	// acknowledged (measured from when the engine accepted it), 0 when none.
	OldestPending time.Duration
	// Spill is set for a route with a SpillConfig.
	Spill *SpillStats
}

// SpillStats is a snapshot of a route's spill state.
type SpillStats struct {
	Topic string // the spill topic
	// Detached: its records go to its spill topic (it is detached, or
	// re-attaching and waiting for the spill topic to drain).
	Detached bool
	// Spilled is the records acknowledged through the spill topic since
	// the engine started.
	Spilled int64
	// Backlog is what SpillConfig.Backlog last reported, -1 before it was
	// asked.
	Backlog int64
}

// ReceiverStats is a snapshot of one receiver.
type ReceiverStats struct {
	Topic      string
	Routes     []RouteStats
	Partitions []PartitionStats
}

// Stats returns a snapshot of every receiver, for metrics and the demo. It
// scans in-flight windows, so it is meant for scrape intervals, not the hot
// path.
func (e *Engine) Stats() []ReceiverStats {
	now := e.clock.Now().UnixNano()
	out := make([]ReceiverStats, 0, len(e.order))
	for _, r := range e.order {
		rs := ReceiverStats{Topic: r.topic}
		oldest := make([]int64, len(r.routes))
		for _, id := range r.Partitions() {
			if p := r.partition(id); p != nil {
				rs.Partitions = append(rs.Partitions, p.stats(oldest))
			}
		}
		for i, rr := range r.routes {
			st := RouteStats{
				Topic:     r.topic,
				Route:     rr.name,
				Depth:     rr.q.stats(),
				Capacity:  rr.cfg.Buffer,
				Workers:   rr.cfg.Workers,
				Busy:      int(rr.q.busy.Load()),
				Congested: rr.q.congested.Load(),
			}
			if oldest[i] != 0 {
				st.OldestPending = time.Duration(now - oldest[i])
			}
			if s := rr.spill; s != nil {
				st.Spill = &SpillStats{Topic: s.cfg.Topic, Detached: s.spilling(), Spilled: s.spilled.Load(), Backlog: s.backlog.Load()}
			}
			rs.Routes = append(rs.Routes, st)
		}
		out = append(out, rs)
	}
	return out
}
