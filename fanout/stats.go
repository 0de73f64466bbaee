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
			rs.Routes = append(rs.Routes, st)
		}
		out = append(out, rs)
	}
	return out
}
