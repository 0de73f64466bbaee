package demo

import (
	"math"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/receiver-fanout/fanout/consumer"
	"github.com/receiver-fanout/fanout/fanout"
)

// Windows over which figures are computed.
const (
	rateWindow  = 3 * time.Second // delivery, ingest and produce rates
	p99Window   = 5 * time.Second // delivery latency
	alertWindow = time.Minute     // dead letters, error ratio
)

// Figures are what the demo shows at one moment: the same for the live
// view, the plain lines and the tests.
type Figures struct {
	Elapsed   time.Duration // since the demo started
	Ready     bool          // the worker has joined its group
	Phase     Phase
	Receivers []ReceiverFigures
	Goals     []Goal
	Alerts    []Alert // conditions of alerting/rules.yml true now
}

// Receiver returns the figures of topic, or nil.
func (f *Figures) Receiver(topic string) *ReceiverFigures {
	for i := range f.Receivers {
		if f.Receivers[i].Topic == topic {
			return &f.Receivers[i]
		}
	}
	return nil
}

// ReceiverFigures describe one receiver.
type ReceiverFigures struct {
	Topic       string
	Produced    int64   // events the generator got acknowledged
	ProduceRate float64 // a second, over rateWindow
	Consumed    int64   // fanout_records_consumed_total
	IngestRate  float64 // a second, over rateWindow
	LagRecords  int64   // high watermark minus committed, summed
	LagSeconds  float64 // age of the oldest record not complete
	Partitions  []PartitionFigures
	Routes      []RouteFigures
}

// Paused is the number of paused partitions.
func (r *ReceiverFigures) Paused() int {
	n := 0
	for _, p := range r.Partitions {
		if p.Paused {
			n++
		}
	}
	return n
}

// Route returns the figures of the named route, or nil.
func (r *ReceiverFigures) Route(name string) *RouteFigures {
	for i := range r.Routes {
		if r.Routes[i].Name == name {
			return &r.Routes[i]
		}
	}
	return nil
}

// Delivered is the sum of the successful deliveries of every route.
func (r *ReceiverFigures) Delivered() int64 {
	var n int64
	for _, rt := range r.Routes {
		n += rt.Delivered
	}
	return n
}

// PartitionFigures describe one assigned partition.
type PartitionFigures struct {
	ID     int32
	Paused bool
}

// RouteFigures describe one route of a receiver.
type RouteFigures struct {
	Name string
	Desc string // what the route and its endpoint do
	// Delivered, Retries and DeadLetters are the totals of
	// fanout_route_deliveries_total by outcome.
	Delivered, Retries, DeadLetters int64
	Rate                            float64       // successes a second, over rateWindow
	P99                             time.Duration // over p99Window; -1 when nothing was delivered
	Depth, Capacity                 int
	Congested                       bool
	// Over alertWindow: dead letters, failed attempts over all attempts
	// (0 without attempts), attempts a second.
	RecentDeadLetters int64
	ErrorRatio        float64
	AttemptRate       float64
}

// Fill is the share of the route's queue in use, 0..1.
func (r *RouteFigures) Fill() float64 {
	if r.Capacity == 0 {
		return 0
	}
	return float64(r.Depth) / float64(r.Capacity)
}

// source is what figures are read from: the worker.
type source interface {
	Stats() consumer.Snapshot
	Registry() *prometheus.Registry
}

// routeKey names a route of a receiver.
type routeKey struct{ topic, route string }

// sample is one reading of the counters.
type sample struct {
	at       time.Time
	produced map[string]int64
	consumed map[string]float64
	routes   map[routeKey]*routeCounters
}

type routeCounters struct {
	success, retry, deadLetter float64
	count                      float64  // observations of the duration histogram
	buckets                    []bucket // its cumulative buckets
}

type bucket struct{ le, n float64 }

// collector samples the worker and keeps the history the rates need.
type collector struct {
	started  time.Time
	src      source
	gen      interface{ producedCounts() map[string]int64 }
	scenario *scenario
	timeline *timeline
	history  []sample
	memory   verdictMemory
}

func newCollector(started time.Time, src source, gen interface{ producedCounts() map[string]int64 }, sc *scenario, tl *timeline) *collector {
	return &collector{started: started, src: src, gen: gen, scenario: sc, timeline: tl}
}

// collect takes a sample and computes the figures. Not safe for
// concurrent use: one loop calls it.
func (c *collector) collect(now time.Time) Figures {
	snap := c.src.Stats()
	cur := c.read(now)
	c.history = append(c.history, cur)
	// Keep one sample at least alertWindow old, and nothing older.
	for len(c.history) > 2 && !c.history[1].at.After(now.Add(-alertWindow)) {
		c.history = c.history[1:]
	}

	f := Figures{Elapsed: now.Sub(c.started), Ready: snap.Ready, Phase: c.timeline.phase()}
	rateBase, p99Base, alertBase := c.past(now, rateWindow), c.past(now, p99Window), c.past(now, alertWindow)
	for _, rc := range c.scenario.file.Receivers {
		topic := rc.Topic
		r := ReceiverFigures{
			Topic:       topic,
			Produced:    cur.produced[topic],
			ProduceRate: rate(float64(cur.produced[topic]), float64(rateBase.produced[topic]), cur.at, rateBase.at),
			Consumed:    int64(cur.consumed[topic]),
			IngestRate:  rate(cur.consumed[topic], rateBase.consumed[topic], cur.at, rateBase.at),
		}
		for _, ps := range snap.Partitions {
			if ps.Topic != topic {
				continue
			}
			r.Partitions = append(r.Partitions, PartitionFigures{ID: ps.Partition, Paused: ps.Paused})
			r.LagRecords += ps.Lag
			if !ps.OldestPending.IsZero() {
				r.LagSeconds = max(r.LagSeconds, now.Sub(ps.OldestPending).Seconds())
			}
		}
		slices.SortFunc(r.Partitions, func(a, b PartitionFigures) int { return int(a.ID - b.ID) })
		state := routeStates(snap, topic)
		for _, rt := range rc.Routes {
			k := routeKey{topic, rt.Name}
			cnt, was, long := cur.route(k), rateBase.route(k), alertBase.route(k)
			rf := RouteFigures{
				Name:        rt.Name,
				Desc:        c.scenario.desc[topic][rt.Name],
				Delivered:   int64(cnt.success),
				Retries:     int64(cnt.retry),
				DeadLetters: int64(cnt.deadLetter),
				Rate:        rate(cnt.success, was.success, cur.at, rateBase.at),
				P99:         p99(p99Base.route(k), cnt),
				Capacity:    rt.Buffer,
			}
			if st, ok := state[rt.Name]; ok {
				rf.Depth, rf.Capacity, rf.Congested = st.Depth, st.Capacity, st.Congested
			}
			rf.RecentDeadLetters = int64(cnt.deadLetter - long.deadLetter)
			failed := cnt.retry - long.retry + cnt.deadLetter - long.deadLetter
			attempts := failed + cnt.success - long.success
			if attempts > 0 {
				rf.ErrorRatio = failed / attempts
			}
			rf.AttemptRate = rate(attempts, 0, cur.at, alertBase.at)
			r.Routes = append(r.Routes, rf)
		}
		f.Receivers = append(f.Receivers, r)
	}
	f.Goals = c.memory.goals(&f)
	f.Alerts = alerts(&f)
	return f
}

func routeStates(snap consumer.Snapshot, topic string) map[string]fanout.RouteStats {
	out := map[string]fanout.RouteStats{}
	for _, r := range snap.Receivers {
		if r.Topic != topic {
			continue
		}
		for _, rt := range r.Routes {
			out[rt.Route] = rt
		}
	}
	return out
}

// read gathers the counters from the worker's registry, as a Prometheus
// scrape of /metrics would.
func (c *collector) read(now time.Time) sample {
	s := sample{at: now, produced: c.gen.producedCounts(), consumed: map[string]float64{}, routes: map[routeKey]*routeCounters{}}
	mfs, err := c.src.Registry().Gather()
	if err != nil && len(mfs) == 0 {
		return s
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "fanout_records_consumed_total":
			for _, m := range mf.GetMetric() {
				s.consumed[label(m, "topic")] += m.GetCounter().GetValue()
			}
		case "fanout_route_deliveries_total":
			for _, m := range mf.GetMetric() {
				rc := s.route(routeKey{label(m, "topic"), label(m, "route")})
				v := m.GetCounter().GetValue()
				switch label(m, "outcome") {
				case "success":
					rc.success += v
				case "retry":
					rc.retry += v
				case "dead_letter":
					rc.deadLetter += v
				}
			}
		case "fanout_route_delivery_duration_seconds":
			for _, m := range mf.GetMetric() {
				rc := s.route(routeKey{label(m, "topic"), label(m, "route")})
				h := m.GetHistogram()
				rc.count = float64(h.GetSampleCount())
				rc.buckets = rc.buckets[:0]
				for _, b := range h.GetBucket() {
					rc.buckets = append(rc.buckets, bucket{b.GetUpperBound(), float64(b.GetCumulativeCount())})
				}
			}
		}
	}
	return s
}

// route returns the counters of k, creating them (zero) when missing.
func (s *sample) route(k routeKey) *routeCounters {
	rc, ok := s.routes[k]
	if !ok {
		rc = &routeCounters{}
		s.routes[k] = rc
	}
	return rc
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// past returns the newest sample at least window old, or the oldest one.
func (c *collector) past(now time.Time, window time.Duration) *sample {
	limit := now.Add(-window)
	for i := len(c.history) - 1; i >= 0; i-- {
		if !c.history[i].at.After(limit) {
			return &c.history[i]
		}
	}
	return &c.history[0]
}

// rate is (now - was) per second between two instants; 0 over less than
// half a second.
func rate(now, was float64, at, from time.Time) float64 {
	d := at.Sub(from).Seconds()
	if d < 0.5 || now < was {
		return 0
	}
	return (now - was) / d
}

// p99 is the 99th percentile of the durations observed between was and
// now, interpolated within histogram buckets as histogram_quantile does;
// -1 when nothing was observed.
func p99(was, now *routeCounters) time.Duration {
	total := now.count - was.count
	if total <= 0 || len(now.buckets) == 0 {
		return -1
	}
	rank := 0.99 * total
	lower, below := 0.0, 0.0
	for i, b := range now.buckets {
		n := b.n
		if i < len(was.buckets) {
			n -= was.buckets[i].n
		}
		if n >= rank && n > below {
			v := lower + (b.le-lower)*(rank-below)/(n-below)
			return time.Duration(v * float64(time.Second))
		}
		lower, below = b.le, n
	}
	// In the +Inf bucket: the highest finite bound, as Prometheus does.
	last := now.buckets[len(now.buckets)-1].le
	if math.IsInf(last, 1) && len(now.buckets) > 1 {
		last = now.buckets[len(now.buckets)-2].le
	}
	return time.Duration(last * float64(time.Second))
}
