package alerting

import (
	"errors"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/receiver-fanout/fanout/consumer"
	"github.com/receiver-fanout/fanout/fanout"
)

// The label values the hooks pre-create, so that ratios and absent() work
// from the first scrape rather than from the first event of each kind.
var (
	commitResults   = []string{resultSuccess, resultError}
	rebalanceEvents = []string{"assigned", "revoked", "lost"}
)

// outcomes are the values of the outcome label; an array so that a route
// observer can hold one bound counter per outcome.
var outcomes = [...]fanout.Outcome{fanout.OutcomeSuccess, fanout.OutcomeRetry, fanout.OutcomeDeadLetter, fanout.OutcomeFiltered}

const (
	resultSuccess = "success"
	resultError   = "error"

	// inflightWindow is the route label of fanout_partition_pauses_total
	// when a partition paused because its in-flight window was full rather
	// than because a route was congested.
	inflightWindow = "inflight_window"
)

// deliveryBuckets are the upper bounds (seconds) of
// fanout_route_delivery_duration_seconds. 2 is among them because
// FanoutRouteLatencyHigh fires on a p99 above 2s, and a threshold between
// two bounds is only an interpolation. 5.5 and 11 sit just above the usual
// timeouts (5s is the default): an attempt that times out lasts a little
// more than its timeout, and without them a route whose every attempt
// times out at 5s reports a p99 of 9.95s, interpolated inside (5, 10].
var deliveryBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 2.5, 5, 5.5, 10, 11, 30}

// queueWaitBuckets are the upper bounds (seconds) of
// fanout_route_queue_wait_seconds. They reach further than the delivery
// buckets: a congested queue holds records for as long as its route is slow
// times the queue's length.
var queueWaitBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// NewRegistry returns a registry holding the standard Go runtime and process
// collectors (go_*, process_*), for main to pass to NewMetrics and to serve
// on /metrics. It never touches prometheus.DefaultRegisterer.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Metrics exports the worker's fanout_* metrics (the DESIGN.md table and
// the extras the rules and the dashboard use). It implements fanout.Observer
// for the engine and consumer.Observer for the consumer, and is itself the
// one prometheus.Collector that NewMetrics registers.
//
// Event metrics (counters, histograms, fanout_ready) are updated by the
// hooks. State metrics (queues, workers, partitions, lag) are computed at
// scrape time from the snapshot function given to CollectFrom, so partition
// series exist exactly for the partitions the snapshot lists and vanish on
// revoke without any deletion.
//
// Every method is safe for concurrent use. The RouteObserver returned by
// Route holds pre-bound series and does not allocate.
type Metrics struct {
	consumed   *prometheus.CounterVec // topic
	commits    *prometheus.CounterVec // topic, result
	rebalances *prometheus.CounterVec // topic, event
	ready      prometheus.Gauge       //
	buildInfo  *prometheus.GaugeVec   // version, goversion
	deliveries *prometheus.CounterVec // topic, route, outcome
	duration   *durationVec           // topic, route
	queueWait  *durationVec           // topic, route
	pauses     *prometheus.CounterVec // topic, route (the cause)
	dlqFailed  *prometheus.CounterVec // topic, route
	events     []prometheus.Collector // the above, for Describe and Collect
	snapshot   atomic.Pointer[func() consumer.Snapshot]
	now        func() time.Time // the scrape clock; tests replace it before collecting
	state      stateDescs
}

// stateDescs describe the metrics computed from a snapshot.
type stateDescs struct {
	routeDepth, routeCapacity, routeCongested, routeOldest, routeWorkers, routeBusy  *prometheus.Desc
	partPaused, partInflight, partLagRecords, partLagSeconds, partCommitted, partEnd *prometheus.Desc
	assigned                                                                         *prometheus.Desc
	routeDetached, routeSpilled, spillBacklogRecords, spillBacklogSeconds            *prometheus.Desc
}

var (
	_ fanout.Observer      = (*Metrics)(nil)
	_ consumer.Observer    = (*Metrics)(nil)
	_ prometheus.Collector = (*Metrics)(nil)
)

// NewMetrics creates the worker's metrics and registers them on reg (use
// NewRegistry in main, prometheus.NewPedanticRegistry in tests). version is
// the build's version, exported as fanout_build_info{version,goversion} 1.
// It fails when reg is nil or already holds these metrics.
func NewMetrics(reg prometheus.Registerer, version string) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("alerting: metrics: nil registerer")
	}
	topic := []string{"topic"}
	topicRoute := []string{"topic", "route"}
	topicPartition := []string{"topic", "partition"}
	m := &Metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fanout_records_consumed_total",
			Help: "Records fetched from Kafka and handed to the fan-out engine.",
		}, topic),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fanout_offset_commits_total",
			Help: "Offset commits per partition, by result (success or error).",
		}, []string{"topic", "result"}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fanout_rebalance_events_total",
			Help: "Partitions assigned, revoked or lost in consumer-group rebalances.",
		}, []string{"topic", "event"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fanout_ready",
			Help: "1 once the worker has joined its consumer group, 0 before that and while shutting down.",
		}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fanout_build_info",
			Help: "Always 1; the labels carry the worker's version and Go version.",
		}, []string{"version", "goversion"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fanout_route_deliveries_total",
			Help: "Delivery attempts per route, by outcome (success, retry, dead_letter, filtered).",
		}, []string{"topic", "route", "outcome"}),
		duration: newDurationVec("fanout_route_delivery_duration_seconds",
			"Duration of one delivery attempt to a route; filtered records are not observed.", deliveryBuckets),
		queueWait: newDurationVec("fanout_route_queue_wait_seconds",
			"Time a record waited in a route's queue for a worker.", queueWaitBuckets),
		pauses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fanout_partition_pauses_total",
			Help: "Partition pauses, by the congested route that caused them (inflight_window when the partition's in-flight window or the receiver's byte budget was full).",
		}, topicRoute),
		dlqFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fanout_route_dead_letter_failures_total",
			Help: "Records whose dead-letter publish failed permanently (topic missing or unauthorized, record too large even without its value); the route keeps retrying them.",
		}, topicRoute),
		now: time.Now,
		state: stateDescs{
			routeDepth: prometheus.NewDesc("fanout_route_queue_depth",
				"Records waiting in a route's queue for a worker.", topicRoute, nil),
			routeCapacity: prometheus.NewDesc("fanout_route_queue_capacity",
				"Size of a route's queue (its buffer).", topicRoute, nil),
			routeCongested: prometheus.NewDesc("fanout_route_congested",
				"1 while a route's queue is congested: it filled up and has not yet drained to half.", topicRoute, nil),
			routeOldest: prometheus.NewDesc("fanout_route_oldest_pending_age_seconds",
				"Age of the oldest record a route has not acknowledged, 0 when none; the largest per receiver names the route holding its commits back.", topicRoute, nil),
			routeWorkers: prometheus.NewDesc("fanout_route_workers",
				"Workers configured for a route.", topicRoute, nil),
			routeBusy: prometheus.NewDesc("fanout_route_workers_busy",
				"Workers of a route delivering a record now.", topicRoute, nil),
			routeDetached: prometheus.NewDesc("fanout_route_detached",
				"1 while a route with spill is detached: its records go to its spill topic (and re-attaching, until that is drained).", topicRoute, nil),
			routeSpilled: prometheus.NewDesc("fanout_route_spilled_records_total",
				"Records a route parked in its spill topic (acknowledged by the broker) since the process started.", topicRoute, nil),
			spillBacklogRecords: prometheus.NewDesc("fanout_route_spill_backlog_records",
				"Records in a route's spill topic its spill group has not committed, over every worker (the same on every instance).", topicRoute, nil),
			spillBacklogSeconds: prometheus.NewDesc("fanout_route_spill_backlog_seconds",
				"Age of the oldest record not yet delivered from a route's spill topic, over the spill partitions this instance consumes, 0 when none waits.", topicRoute, nil),
			partPaused: prometheus.NewDesc("fanout_partition_paused",
				"1 while fetching from an assigned partition is paused.", topicPartition, nil),
			partInflight: prometheus.NewDesc("fanout_partition_inflight_records",
				"Records of an assigned partition accepted by the engine and not yet acknowledged by every route.", topicPartition, nil),
			partLagRecords: prometheus.NewDesc("fanout_partition_lag_records",
				"High watermark minus committed offset of an assigned partition, 0 while either is unknown.", topicPartition, nil),
			partLagSeconds: prometheus.NewDesc("fanout_partition_lag_seconds",
				"Now minus the timestamp of the oldest record of an assigned partition not yet committed, fetched or not (one still in Kafka is read from it, or dated from sightings of the end offset), 0 when none waits.", topicPartition, nil),
			partCommitted: prometheus.NewDesc("fanout_partition_committed_offset",
				"Committed offset of an assigned partition; absent until known.", topicPartition, nil),
			partEnd: prometheus.NewDesc("fanout_partition_high_watermark",
				"Latest known high watermark of an assigned partition; absent until known.", topicPartition, nil),
			assigned: prometheus.NewDesc("fanout_assigned_partitions",
				"Partitions of a receiver's topic assigned to this process.", topic, nil),
		},
	}
	m.events = []prometheus.Collector{
		m.consumed, m.commits, m.rebalances, m.ready, m.buildInfo,
		m.deliveries, m.duration, m.queueWait, m.pauses, m.dlqFailed,
	}
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	if err := reg.Register(m); err != nil {
		return nil, err
	}
	return m, nil
}

// CollectFrom sets the function whose result the state metrics are computed
// from at each scrape; main passes (*consumer.Consumer).Stats. It may be
// called before or after the registry is served, and again to replace the
// function; nil stops the state metrics. snapshot runs on the scrape
// goroutine, so it must not wait for anything that waits for a scrape.
func (m *Metrics) CollectFrom(snapshot func() consumer.Snapshot) {
	if snapshot == nil {
		m.snapshot.Store(nil)
		return
	}
	m.snapshot.Store(&snapshot)
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.events {
		c.Describe(ch)
	}
	s := &m.state
	for _, d := range []*prometheus.Desc{
		s.routeDepth, s.routeCapacity, s.routeCongested, s.routeOldest, s.routeWorkers, s.routeBusy,
		s.partPaused, s.partInflight, s.partLagRecords, s.partLagSeconds, s.partCommitted, s.partEnd,
		s.assigned, s.routeDetached, s.routeSpilled, s.spillBacklogRecords, s.spillBacklogSeconds,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the event metrics as they stand,
// and the state metrics from one call of the snapshot function.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.events {
		c.Collect(ch)
	}
	if f := m.snapshot.Load(); f != nil {
		m.collectState(ch, (*f)(), m.now())
	}
}

func (m *Metrics) collectState(ch chan<- prometheus.Metric, s consumer.Snapshot, now time.Time) {
	d := &m.state
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	// Every configured topic reports its assigned partitions, 0 included,
	// so "no partitions" is a value rather than a missing series.
	assigned := make(map[string]int, len(s.Receivers))
	var topics []string
	// A spill topic's partitions are the spill consumer's; their oldest
	// record gives its route's backlog age. The spill consumer's own
	// receivers and partitions export nothing else: a detached route's
	// feed pauses and lags by design (it goes at the route's pace), and
	// the receiver alerts would page for it; fanout_route_detached and
	// the spill backlog series say what matters.
	spillOf := map[string][2]string{}
	spillAge := map[string]float64{}
	for _, r := range s.Receivers {
		for _, rt := range r.Routes {
			if sp := rt.Spill; sp != nil {
				spillOf[sp.Topic] = [2]string{r.Topic, rt.Route}
				spillAge[sp.Topic] = 0
			}
		}
	}
	for _, r := range s.Receivers {
		if _, ok := spillOf[r.Topic]; ok {
			continue
		}
		if _, ok := assigned[r.Topic]; !ok {
			assigned[r.Topic] = 0
			topics = append(topics, r.Topic)
		}
		for _, rt := range r.Routes {
			// The route's own Topic is the receiver's; prefer the receiver's
			// in case a snapshot leaves it empty.
			gauge(d.routeDepth, float64(rt.Depth), r.Topic, rt.Route)
			gauge(d.routeCapacity, float64(rt.Capacity), r.Topic, rt.Route)
			gauge(d.routeCongested, boolValue(rt.Congested), r.Topic, rt.Route)
			gauge(d.routeOldest, rt.OldestPending.Seconds(), r.Topic, rt.Route)
			gauge(d.routeWorkers, float64(rt.Workers), r.Topic, rt.Route)
			gauge(d.routeBusy, float64(rt.Busy), r.Topic, rt.Route)
			if sp := rt.Spill; sp != nil {
				gauge(d.routeDetached, boolValue(sp.Detached), r.Topic, rt.Route)
				ch <- prometheus.MustNewConstMetric(d.routeSpilled, prometheus.CounterValue, float64(sp.Spilled), r.Topic, rt.Route)
				gauge(d.spillBacklogRecords, float64(max(sp.Backlog, 0)), r.Topic, rt.Route)
			}
		}
	}
	for _, p := range s.Partitions {
		if _, ok := spillAge[p.Topic]; ok {
			if !p.OldestPending.IsZero() {
				spillAge[p.Topic] = max(spillAge[p.Topic], now.Sub(p.OldestPending).Seconds())
			}
			continue
		}
		if _, ok := assigned[p.Topic]; !ok {
			topics = append(topics, p.Topic)
		}
		assigned[p.Topic]++
		part := strconv.FormatInt(int64(p.Partition), 10)
		gauge(d.partPaused, boolValue(p.Paused), p.Topic, part)
		gauge(d.partInflight, float64(p.Inflight), p.Topic, part)
		gauge(d.partLagRecords, float64(max(p.Lag, 0)), p.Topic, part)
		var lag float64
		if !p.OldestPending.IsZero() {
			// A producer clock ahead of ours must not make lag negative.
			lag = max(now.Sub(p.OldestPending).Seconds(), 0)
		}
		gauge(d.partLagSeconds, lag, p.Topic, part)
		if p.Committed >= 0 {
			gauge(d.partCommitted, float64(p.Committed), p.Topic, part)
		}
		if p.End >= 0 {
			gauge(d.partEnd, float64(p.End), p.Topic, part)
		}
	}
	for _, t := range topics {
		gauge(d.assigned, float64(assigned[t]), t)
	}
	for spillTopic, tr := range spillOf {
		gauge(d.spillBacklogSeconds, spillAge[spillTopic], tr[0], tr[1])
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Route implements fanout.Observer. It binds the route's series once, so
// that the returned observer neither allocates nor looks labels up, and
// creates every series of the route (and of its topic's consumer counters)
// at 0.
func (m *Metrics) Route(topic, route string) fanout.RouteObserver {
	ro := &routeObserver{
		topic:     topic,
		route:     route,
		m:         m,
		duration:  m.duration.with(topic, route),
		wait:      m.queueWait.with(topic, route),
		dlqFailed: m.dlqFailed.WithLabelValues(topic, route),
	}
	for i, o := range outcomes {
		ro.outcomes[i] = m.deliveries.WithLabelValues(topic, route, string(o))
	}
	m.pauses.WithLabelValues(topic, route)
	m.pauses.WithLabelValues(topic, inflightWindow)
	m.consumed.WithLabelValues(topic)
	for _, r := range commitResults {
		m.commits.WithLabelValues(topic, r)
	}
	for _, e := range rebalanceEvents {
		m.rebalances.WithLabelValues(topic, e)
	}
	return ro
}

// PartitionPaused implements fanout.Observer: it counts the pause against
// the route that caused it, or against inflight_window.
func (m *Metrics) PartitionPaused(topic string, _ int32, cause string) {
	if cause == "" {
		cause = inflightWindow
	}
	m.pauses.WithLabelValues(topic, cause).Inc()
}

// PartitionResumed implements fanout.Observer. Resumes are not counted:
// fanout_partition_paused shows the state and pauses_total the churn.
func (m *Metrics) PartitionResumed(string, int32) {}

// Consumed implements consumer.Observer.
func (m *Metrics) Consumed(topic string, n int) {
	if n > 0 {
		m.consumed.WithLabelValues(topic).Add(float64(n))
	}
}

// Committed implements consumer.Observer. The offset is not exported here:
// fanout_partition_committed_offset comes from the snapshot.
func (m *Metrics) Committed(topic string, _ int32, _ int64, err error) {
	result := resultSuccess
	if err != nil {
		result = resultError
	}
	m.commits.WithLabelValues(topic, result).Inc()
}

// Rebalanced implements consumer.Observer.
func (m *Metrics) Rebalanced(topic, event string, n int) {
	c := m.rebalances.WithLabelValues(topic, event)
	if n > 0 {
		c.Add(float64(n))
	}
}

// Ready implements consumer.Observer.
func (m *Metrics) Ready(ready bool) {
	m.ready.Set(boolValue(ready))
}

// routeObserver is one route's fanout.RouteObserver, with its series bound
// at Route time.
type routeObserver struct {
	topic, route string
	m            *Metrics
	outcomes     [len(outcomes)]prometheus.Counter // in the order of outcomes
	duration     *durationHistogram
	wait         *durationHistogram
	dlqFailed    prometheus.Counter
}

// Delivered implements fanout.RouteObserver. Filtered records are counted
// but their (zero) duration is not observed, so the histogram describes
// real attempts only.
func (ro *routeObserver) Delivered(o fanout.Outcome, d time.Duration) {
	i := slices.Index(outcomes[:], o)
	if i < 0 {
		// An outcome added to fanout without a binding here: count it
		// anyway, at the cost of a lookup.
		ro.m.deliveries.WithLabelValues(ro.topic, ro.route, string(o)).Inc()
	} else {
		ro.outcomes[i].Inc()
	}
	if o == fanout.OutcomeFiltered {
		return
	}
	ro.duration.Observe(d)
}

// QueueWait implements fanout.RouteObserver.
func (ro *routeObserver) QueueWait(d time.Duration) {
	ro.wait.Observe(d)
}

// DeadLetterFailed implements fanout.RouteObserver.
func (ro *routeObserver) DeadLetterFailed() { ro.dlqFailed.Inc() }
