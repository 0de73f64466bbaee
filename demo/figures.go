package demo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"

	"github.com/receiver-fanout/fanout/config"
)

// Figures are what the demo shows at one moment: the same for the live
// view, the plain lines and the tests. Every number is a PromQL query on
// the monitor's store, the way a dashboard on Prometheus would read it.
type Figures struct {
	Tick      int           // the ticks before this one
	Elapsed   time.Duration // since the demo started
	Ready     bool          // max(fanout_ready) == 1
	Phase     Phase
	Receivers []ReceiverFigures
	Goals     []Goal
	Alerts    []Alert // the active alerts of alerting/rules.yml
	Problem   string  // a rule or query that failed, "" when none did
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
	ProduceRate float64 // a second, over rateTicks
	Consumed    int64   // fanout_records_consumed_total
	IngestRate  float64 // a second, over rateTicks
	LagRecords  int64   // sum of fanout_partition_lag_records
	LagSeconds  float64 // max of fanout_partition_lag_seconds
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

// anyDetached tells whether a route of the receiver is detached.
func (r *ReceiverFigures) anyDetached() bool {
	return slices.ContainsFunc(r.Routes, func(rt RouteFigures) bool { return rt.Detached() })
}

// PartitionFigures describe one assigned partition.
type PartitionFigures struct {
	ID     int32
	Paused bool
}

// RouteState is how a route stands towards its receiver.
type RouteState int

// The route states.
const (
	RouteFlowing   RouteState = iota
	RouteCongested            // fanout_route_congested: its queue is full and pauses the receiver
	RouteDetached             // fanout_route_detached: its records go to its spill topic
)

// RouteFigures describe one route of a receiver.
type RouteFigures struct {
	Name string
	// Delivered, Retries and DeadLetters are the totals of
	// fanout_route_deliveries_total by outcome; for a route with spill,
	// its deliveries from its spill topic included.
	Delivered, Retries, DeadLetters int64
	Rate                            float64       // successes a second, over rateTicks
	P99                             time.Duration // over p99Ticks (the slower path's, with spill); -1 when nothing was delivered
	Depth, Capacity                 int           // of its queue in the receiver
	State                           RouteState
	Spill                           *SpillFigures // set for a route with spill
}

// SpillFigures describe the spill of a route that has one.
type SpillFigures struct {
	Topic string        // its spill topic
	After time.Duration // spill.after: how long it stays congested before it detaches
	// Spilled is fanout_route_spilled_records_total; Delivered the
	// route's successes from its spill topic (the spill consumer's
	// series, labelled with the spill topic).
	Spilled, Delivered int64
	Backlog            int64   // fanout_route_spill_backlog_records
	BacklogAge         float64 // fanout_route_spill_backlog_seconds
	// DetachedAt is when the route was last seen to detach, ReattachedAt
	// when it was seen attached again after that; -1 until then.
	DetachedAt, ReattachedAt time.Duration
}

// Detached tells whether the route's records go to its spill topic now.
func (r *RouteFigures) Detached() bool { return r.State == RouteDetached }

// Congested tells whether the route pauses its receiver now.
func (r *RouteFigures) Congested() bool { return r.State == RouteCongested }

// Fill is the share of the route's queue in use, 0..1.
func (r *RouteFigures) Fill() float64 {
	if r.Capacity == 0 {
		return 0
	}
	return float64(r.Depth) / float64(r.Capacity)
}

// The windows of the figures' rates, in ticks (a tick is a second).
const (
	rateTicks = 3
	p99Ticks  = 5
)

// The figures' queries; $rate is the rate window, $p99 the p99 window.
// The generator's counter is on the demo's own registry, which the monitor
// scrapes with the worker's.
var figureQueries = struct {
	produced, produceRate, consumed, ingestRate, lagRecords, lagSeconds, paused, ready,
	deliveries, rate, p99, depth, capacity, congested,
	detached, spilled, backlog, backlogAge string
}{
	produced:    `sum by (topic) (demo_events_produced_total)`,
	produceRate: `sum by (topic) (rate(demo_events_produced_total[$rate]))`,
	consumed:    `sum by (topic) (fanout_records_consumed_total)`,
	ingestRate:  `sum by (topic) (rate(fanout_records_consumed_total[$rate]))`,
	lagRecords:  `sum by (topic) (fanout_partition_lag_records)`,
	lagSeconds:  `max by (topic) (fanout_partition_lag_seconds)`,
	paused:      `max by (topic, partition) (fanout_partition_paused)`,
	ready:       `max(fanout_ready)`,
	deliveries:  `sum by (topic, route, outcome) (fanout_route_deliveries_total)`,
	rate:        `sum by (topic, route) (rate(fanout_route_deliveries_total{outcome="success"}[$rate]))`,
	p99:         `histogram_quantile(0.99, sum by (topic, route, le) (rate(fanout_route_delivery_duration_seconds_bucket[$p99])))`,
	depth:       `sum by (topic, route) (fanout_route_queue_depth)`,
	capacity:    `sum by (topic, route) (fanout_route_queue_capacity)`,
	congested:   `max by (topic, route) (fanout_route_congested)`,
	detached:    `max by (topic, route) (fanout_route_detached)`,
	spilled:     `sum by (topic, route) (fanout_route_spilled_records_total)`,
	// The backlog is the same on every instance, its age per instance.
	backlog:    `max by (topic, route) (fanout_route_spill_backlog_records)`,
	backlogAge: `max by (topic, route) (fanout_route_spill_backlog_seconds)`,
}

// figureExprs are the figures' queries with their windows for ticks of
// step, as they run.
func figureExprs(step time.Duration) []string {
	q, w := figureQueries, windows(step)
	var out []string
	for _, e := range []string{q.produced, q.produceRate, q.consumed, q.ingestRate, q.lagRecords, q.lagSeconds,
		q.paused, q.ready, q.deliveries, q.rate, q.p99, q.depth, q.capacity, q.congested,
		q.detached, q.spilled, q.backlog, q.backlogAge} {
		out = append(out, w.Replace(e))
	}
	return out
}

// windows fills in the figures' windows for ticks of step.
func windows(step time.Duration) *strings.Replacer {
	return strings.NewReplacer("$rate", prommodel.Duration(rateTicks*step).String(), "$p99", prommodel.Duration(p99Ticks*step).String())
}

// collector ticks the monitor and turns its store into figures. One loop
// calls it.
type collector struct {
	started  time.Time
	mon      *monitor
	file     *config.File
	timeline *timeline
	// step is the time between two ticks on the store's clock; virtual:
	// that clock is Unix 0 plus step a tick, not the wall clock (tests
	// compress time so).
	step    time.Duration
	virtual bool
	n       int
	memory  verdictMemory
	// spells remembers, per route with spill, when it was last seen to
	// detach and to re-attach.
	spells map[routeKey]*[2]time.Duration
}

// collect takes one tick: scrape, rules, figures.
func (c *collector) collect(ctx context.Context, now time.Time) Figures {
	at := now
	if c.virtual {
		at = time.Unix(0, 0).Add(time.Duration(c.n) * c.step)
	}
	f := Figures{Tick: c.n, Elapsed: now.Sub(c.started), Phase: c.timeline.phase()}
	c.n++
	alerts, err := c.mon.tick(ctx, at)
	f.Alerts = alerts
	q := queryAt{ctx: ctx, mon: c.mon, at: at, windows: windows(c.step), errs: []error{err}}
	fq := figureQueries
	byTopic := func(expr string) map[string]float64 {
		out := map[string]float64{}
		for _, s := range q.run(expr) {
			out[s.Metric.Get("topic")] = s.F
		}
		return out
	}
	byRoute := func(expr string) map[routeKey]float64 {
		out := map[routeKey]float64{}
		for _, s := range q.run(expr) {
			out[routeKey{s.Metric.Get("topic"), s.Metric.Get("route")}] = s.F
		}
		return out
	}
	produced, produceRate := byTopic(fq.produced), byTopic(fq.produceRate)
	consumed, ingestRate := byTopic(fq.consumed), byTopic(fq.ingestRate)
	lagRecords, lagSeconds := byTopic(fq.lagRecords), byTopic(fq.lagSeconds)
	rates, p99s := byRoute(fq.rate), byRoute(fq.p99)
	depth, capacity, congested := byRoute(fq.depth), byRoute(fq.capacity), byRoute(fq.congested)
	detached, spilled, backlog, backlogAge := byRoute(fq.detached), byRoute(fq.spilled), byRoute(fq.backlog), byRoute(fq.backlogAge)
	outcomes := map[routeKey]map[string]float64{}
	for _, s := range q.run(fq.deliveries) {
		k := routeKey{s.Metric.Get("topic"), s.Metric.Get("route")}
		if outcomes[k] == nil {
			outcomes[k] = map[string]float64{}
		}
		outcomes[k][s.Metric.Get("outcome")] = s.F
	}
	for _, s := range q.run(fq.ready) {
		f.Ready = s.F == 1
	}
	partitions := map[string][]PartitionFigures{}
	for _, s := range q.run(fq.paused) {
		id, err := strconv.ParseInt(s.Metric.Get("partition"), 10, 32)
		if err != nil {
			q.errs = append(q.errs, fmt.Errorf("fanout_partition_paused: partition %q", s.Metric.Get("partition")))
			continue
		}
		topic := s.Metric.Get("topic")
		partitions[topic] = append(partitions[topic], PartitionFigures{ID: int32(id), Paused: s.F == 1})
	}

	for _, rc := range c.file.Receivers {
		t := rc.Topic
		r := ReceiverFigures{
			Topic: t, Produced: int64(produced[t]), ProduceRate: produceRate[t],
			Consumed: int64(consumed[t]), IngestRate: ingestRate[t],
			LagRecords: int64(lagRecords[t]), LagSeconds: lagSeconds[t], Partitions: partitions[t],
		}
		slices.SortFunc(r.Partitions, func(a, b PartitionFigures) int { return int(a.ID - b.ID) })
		for _, rt := range rc.Routes {
			k := routeKey{t, rt.Name}
			// A route's deliveries: from its receiver, and from its
			// spill topic when it has one (the spill consumer labels
			// them with the spill topic).
			paths := []routeKey{k}
			if rt.Spill != nil {
				paths = append(paths, routeKey{rt.Spill.Topic, rt.Name})
			}
			rf := RouteFigures{Name: rt.Name, P99: -1, Depth: int(depth[k]), Capacity: int(capacity[k])}
			for _, pk := range paths {
				rf.Delivered += int64(outcomes[pk]["success"])
				rf.Retries += int64(outcomes[pk]["retry"])
				rf.DeadLetters += int64(outcomes[pk]["dead_letter"])
				rf.Rate += rates[pk]
				if v, ok := p99s[pk]; ok && !math.IsNaN(v) {
					rf.P99 = max(rf.P99, time.Duration(v*float64(time.Second)))
				}
			}
			switch {
			case detached[k] == 1:
				rf.State = RouteDetached
			case congested[k] == 1:
				rf.State = RouteCongested
			}
			if rt.Spill != nil {
				sk := paths[1]
				rf.Spill = &SpillFigures{
					Topic: rt.Spill.Topic, After: rt.Spill.After,
					Spilled: int64(spilled[k]), Delivered: int64(outcomes[sk]["success"]),
					Backlog: int64(backlog[k]), BacklogAge: backlogAge[k],
				}
				c.spell(k, &rf, f.Elapsed)
			}
			r.Routes = append(r.Routes, rf)
		}
		f.Receivers = append(f.Receivers, r)
	}
	if err := errors.Join(q.errs...); err != nil {
		f.Problem = err.Error()
	}
	f.Goals = c.memory.goals(&f)
	return f
}

// spell dates the route's last detachment and re-attachment, as seen
// tick by tick.
func (c *collector) spell(k routeKey, rf *RouteFigures, now time.Duration) {
	if c.spells == nil {
		c.spells = map[routeKey]*[2]time.Duration{}
	}
	sp := c.spells[k]
	if sp == nil {
		sp = &[2]time.Duration{-1, -1}
		c.spells[k] = sp
	}
	switch detached := rf.Detached(); {
	case detached && (sp[0] < 0 || sp[1] >= 0):
		sp[0], sp[1] = now, -1
	case !detached && sp[0] >= 0 && sp[1] < 0:
		sp[1] = now
	}
	rf.Spill.DetachedAt, rf.Spill.ReattachedAt = sp[0], sp[1]
}

// routeKey names a route of a receiver.
type routeKey struct{ topic, route string }

// queryAt runs the figures' queries at one instant and collects their
// errors.
type queryAt struct {
	ctx     context.Context
	mon     *monitor
	at      time.Time
	windows *strings.Replacer
	errs    []error
}

func (q *queryAt) run(expr string) promql.Vector {
	v, err := q.mon.query(q.ctx, q.windows.Replace(expr), q.at)
	if err != nil {
		q.errs = append(q.errs, err)
	}
	return v
}
