package alerting

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/goleak"

	"github.com/receiver-fanout/fanout/consumer"
	"github.com/receiver-fanout/fanout/fanout"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// scrapeTime is the fixed clock of the state tests.
var scrapeTime = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// newTestMetrics returns metrics on a pedantic registry (which checks that
// what is collected matches what is described) with the clock at scrapeTime.
func newTestMetrics(t testing.TB) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg, "v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	m.now = func() time.Time { return scrapeTime }
	return m, reg
}

// sampleSnapshot is a process owning partitions 0 and 1 of orders (routes
// crm and audit) and nothing of payments (route ledger).
func sampleSnapshot() consumer.Snapshot {
	return consumer.Snapshot{
		Receivers: []fanout.ReceiverStats{
			{
				Topic: "orders",
				Routes: []fanout.RouteStats{
					{Topic: "orders", Route: "crm", Depth: 90, Capacity: 100, Workers: 4, Busy: 4, Congested: true, OldestPending: 1500 * time.Millisecond},
					{Topic: "orders", Route: "audit", Depth: 0, Capacity: 50, Workers: 2, Busy: 0},
				},
				Partitions: []fanout.PartitionStats{
					{Topic: "orders", Partition: 0, Inflight: 7, Paused: true, Committable: 40},
				},
			},
			{
				Topic:  "payments",
				Routes: []fanout.RouteStats{{Topic: "payments", Route: "ledger", Capacity: 10, Workers: 1}},
			},
		},
		Partitions: []consumer.PartitionStats{
			{Topic: "orders", Partition: 0, Committed: 40, End: 100, Lag: 60, Paused: true, Inflight: 7, OldestPending: scrapeTime.Add(-90 * time.Second)},
			// Never committed, watermark unknown, nothing pending.
			{Topic: "orders", Partition: 1, Committed: -1, End: -1},
		},
		Ready: true,
	}
}

// spillSnapshot is sampleSnapshot with payments/ledger detached to its
// spill topic, whose one partition the spill consumer holds.
func spillSnapshot() consumer.Snapshot {
	s := sampleSnapshot()
	s.Receivers[1].Routes[0].Spill = &fanout.SpillStats{Topic: "payments.spill.ledger", Detached: true, Spilled: 42, Backlog: 7}
	s.Receivers = append(s.Receivers, fanout.ReceiverStats{Topic: "payments.spill.ledger",
		Routes: []fanout.RouteStats{{Topic: "payments.spill.ledger", Route: "ledger", Capacity: 10, Workers: 1}}})
	s.Partitions = append(s.Partitions,
		consumer.PartitionStats{Topic: "payments.spill.ledger", Partition: 0, Committed: 3, End: 10, Lag: 7, OldestPending: scrapeTime.Add(-25 * time.Second)})
	return s
}

func TestStateSpill(t *testing.T) {
	m, reg := newTestMetrics(t)
	m.CollectFrom(spillSnapshot)
	out := gatherText(t, reg, "fanout_route_detached", "fanout_route_spilled_records_total", "fanout_route_spill_backlog_records", "fanout_route_spill_backlog_seconds")
	for _, want := range []string{
		`fanout_route_detached{route="ledger",topic="payments"} 1`,
		`fanout_route_spilled_records_total{route="ledger",topic="payments"} 42`,
		`fanout_route_spill_backlog_records{route="ledger",topic="payments"} 7`,
		`fanout_route_spill_backlog_seconds{route="ledger",topic="payments"} 25`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, `route="crm"`) {
		t.Errorf("a route without spill has spill series:\n%s", out)
	}
	// The spill consumer's partition and route series stay out: the
	// receiver alerts would page for a feed that pauses by design.
	all := gatherText(t, reg)
	if strings.Contains(all, `topic="payments.spill.ledger"`) {
		t.Errorf("the spill topic has series of its own:\n%s", grepLines(all, "payments.spill.ledger"))
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// callEveryHook calls each hook once (Route and Delivered once per outcome).
func callEveryHook(m *Metrics) {
	ro := m.Route("orders", "crm")
	for _, o := range outcomes {
		ro.Delivered(o, 30*time.Millisecond)
	}
	ro.QueueWait(5 * time.Millisecond)
	m.PartitionPaused("orders", 0, "crm")
	m.PartitionResumed("orders", 0)
	m.Consumed("orders", 3)
	m.Committed("orders", 0, 41, nil)
	m.Rebalanced("orders", "assigned", 2)
	m.Ready(true)
}

func TestMetricsLintClean(t *testing.T) {
	m, reg := newTestMetrics(t)
	callEveryHook(m)
	m.CollectFrom(sampleSnapshot)

	problems, err := testutil.CollectAndLint(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// The pedantic registry also checks Collect against Describe.
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("pedantic gather: %v", err)
	}
}

func TestNewRegistryHoldsRuntimeCollectors(t *testing.T) {
	reg := NewRegistry()
	m, err := NewMetrics(reg, "dev")
	if err != nil {
		t.Fatal(err)
	}
	m.CollectFrom(sampleSnapshot)
	for _, prefix := range []string{"go_", "process_", "fanout_"} {
		if len(gatheredNames(t, reg, prefix)) == 0 {
			t.Errorf("no %s* metric gathered", prefix)
		}
	}
	problems, err := testutil.GatherAndLint(reg, knownMetrics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestNewMetricsRejects(t *testing.T) {
	if _, err := NewMetrics(nil, "dev"); err == nil {
		t.Error("nil registerer: no error")
	}
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg, "dev"); err != nil {
		t.Fatal(err)
	}
	_, err := NewMetrics(reg, "dev")
	if are := (prometheus.AlreadyRegisteredError{}); !errors.As(err, &are) {
		t.Errorf("second NewMetrics on one registry: %v, want AlreadyRegisteredError", err)
	}
}

func TestBuildInfo(t *testing.T) {
	m, _ := newTestMetrics(t)
	if got := testutil.CollectAndCount(m.buildInfo); got != 1 {
		t.Fatalf("fanout_build_info has %d series, want 1", got)
	}
	if v := testutil.ToFloat64(m.buildInfo.WithLabelValues("v1.2.3", runtime.Version())); v != 1 {
		t.Errorf("fanout_build_info = %v, want 1", v)
	}
}

func TestRoutePrecreatesSeries(t *testing.T) {
	m, _ := newTestMetrics(t)
	m.Route("orders", "crm")

	for _, o := range outcomes {
		if v := testutil.ToFloat64(m.deliveries.WithLabelValues("orders", "crm", string(o))); v != 0 {
			t.Errorf("deliveries{outcome=%s} = %v, want 0", o, v)
		}
	}
	for name, tc := range map[string]struct {
		c    prometheus.Collector
		want int
	}{
		"fanout_route_deliveries_total":          {m.deliveries, len(outcomes)},
		"fanout_route_delivery_duration_seconds": {m.duration, 1},
		"fanout_route_queue_wait_seconds":        {m.queueWait, 1},
		"fanout_partition_pauses_total":          {m.pauses, 2}, // crm, inflight_window
		"fanout_records_consumed_total":          {m.consumed, 1},
		"fanout_offset_commits_total":            {m.commits, 2},
		"fanout_rebalance_events_total":          {m.rebalances, 3},
	} {
		if got := testutil.CollectAndCount(tc.c); got != tc.want {
			t.Errorf("%s: %d series after Route, want %d", name, got, tc.want)
		}
	}
}

func TestRouteObserverDelivered(t *testing.T) {
	m, reg := newTestMetrics(t)
	ro := m.Route("orders", "crm")
	other := m.Route("orders", "audit")

	ro.Delivered(fanout.OutcomeSuccess, 15625*time.Microsecond) // 1/64 s: the sum stays exact
	ro.Delivered(fanout.OutcomeSuccess, 1500*time.Millisecond)
	ro.Delivered(fanout.OutcomeRetry, 3*time.Second)
	ro.Delivered(fanout.OutcomeDeadLetter, 40*time.Second)
	ro.Delivered(fanout.OutcomeFiltered, 0)
	ro.Delivered(fanout.OutcomeFiltered, 0)
	other.Delivered(fanout.OutcomeSuccess, time.Millisecond)

	want := `
# HELP fanout_route_deliveries_total Delivery attempts per route, by outcome (success, retry, dead_letter, filtered).
# TYPE fanout_route_deliveries_total counter
fanout_route_deliveries_total{outcome="dead_letter",route="audit",topic="orders"} 0
fanout_route_deliveries_total{outcome="filtered",route="audit",topic="orders"} 0
fanout_route_deliveries_total{outcome="retry",route="audit",topic="orders"} 0
fanout_route_deliveries_total{outcome="success",route="audit",topic="orders"} 1
fanout_route_deliveries_total{outcome="dead_letter",route="crm",topic="orders"} 1
fanout_route_deliveries_total{outcome="filtered",route="crm",topic="orders"} 2
fanout_route_deliveries_total{outcome="retry",route="crm",topic="orders"} 1
fanout_route_deliveries_total{outcome="success",route="crm",topic="orders"} 2
`
	if err := testutil.CollectAndCompare(m.deliveries, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	// Filtered records are counted, never timed. The alert threshold (2s)
	// is a bucket bound.
	want = `
# HELP fanout_route_delivery_duration_seconds Duration of one delivery attempt to a route; filtered records are not observed.
# TYPE fanout_route_delivery_duration_seconds histogram
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="0.001"} 0
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="0.0025"} 0
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="0.005"} 0
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="0.01"} 0
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="0.025"} 1
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="0.05"} 1
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="0.1"} 1
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="0.25"} 1
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="0.5"} 1
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="1"} 1
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="2"} 2
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="2.5"} 2
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="5"} 3
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="5.5"} 3
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="10"} 3
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="11"} 3
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="30"} 3
fanout_route_delivery_duration_seconds_bucket{route="crm",topic="orders",le="+Inf"} 4
fanout_route_delivery_duration_seconds_sum{route="crm",topic="orders"} 44.515625
fanout_route_delivery_duration_seconds_count{route="crm",topic="orders"} 4
`
	only := prometheus.NewPedanticRegistry()
	only.MustRegister(prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		ch <- m.duration.with("orders", "crm").metric(m.duration.desc, m.duration.upper)
	}))
	if err := testutil.GatherAndCompare(only, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := histogramCount(t, reg, "fanout_route_delivery_duration_seconds", "route", "audit"); n != 1 {
		t.Errorf("audit duration count = %d, want 1", n)
	}
}

func TestRouteObserverQueueWait(t *testing.T) {
	m, reg := newTestMetrics(t)
	ro := m.Route("orders", "crm")
	ro.QueueWait(2 * time.Millisecond)
	ro.QueueWait(90 * time.Second)
	if n := histogramCount(t, reg, "fanout_route_queue_wait_seconds", "route", "crm"); n != 2 {
		t.Errorf("queue wait count = %d, want 2", n)
	}
}

func TestRouteObserverUnknownOutcomeCounted(t *testing.T) {
	m, _ := newTestMetrics(t)
	m.Route("orders", "crm").Delivered("timeout", time.Second)
	if v := testutil.ToFloat64(m.deliveries.WithLabelValues("orders", "crm", "timeout")); v != 1 {
		t.Errorf("deliveries{outcome=timeout} = %v, want 1", v)
	}
}

func TestRouteObserverDoesNotAllocate(t *testing.T) {
	m, _ := newTestMetrics(t)
	ro := m.Route("orders", "crm")
	allocs := testing.AllocsPerRun(1000, func() {
		ro.Delivered(fanout.OutcomeSuccess, time.Millisecond)
		ro.Delivered(fanout.OutcomeRetry, time.Millisecond)
		ro.Delivered(fanout.OutcomeDeadLetter, time.Millisecond)
		ro.Delivered(fanout.OutcomeFiltered, 0)
		ro.QueueWait(time.Millisecond)
	})
	if allocs != 0 {
		t.Errorf("RouteObserver allocates %v times per call set, want 0", allocs)
	}
}

func TestPartitionPausedCountsCause(t *testing.T) {
	m, _ := newTestMetrics(t)
	m.PartitionPaused("orders", 0, "crm")
	m.PartitionPaused("orders", 1, "crm")
	m.PartitionPaused("orders", 1, "")
	m.PartitionResumed("orders", 1)

	want := `
# HELP fanout_partition_pauses_total Partition pauses, by the congested route that caused them (inflight_window when the partition's in-flight window or the receiver's byte budget was full).
# TYPE fanout_partition_pauses_total counter
fanout_partition_pauses_total{route="crm",topic="orders"} 2
fanout_partition_pauses_total{route="inflight_window",topic="orders"} 1
`
	if err := testutil.CollectAndCompare(m.pauses, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestConsumerHooks(t *testing.T) {
	m, _ := newTestMetrics(t)
	if v := testutil.ToFloat64(m.ready); v != 0 {
		t.Errorf("fanout_ready before Ready = %v, want 0", v)
	}

	m.Consumed("orders", 5)
	m.Consumed("orders", 2)
	m.Consumed("orders", 0)
	m.Committed("orders", 0, 10, nil)
	m.Committed("orders", 1, 11, nil)
	m.Committed("orders", 1, 11, errors.New("coordinator unavailable"))
	m.Rebalanced("orders", "assigned", 3)
	m.Rebalanced("orders", "revoked", 1)
	m.Rebalanced("orders", "lost", 0)

	for name, tc := range map[string]struct {
		c    prometheus.Collector
		want float64
	}{
		"consumed":         {m.consumed.WithLabelValues("orders"), 7},
		"commits success":  {m.commits.WithLabelValues("orders", "success"), 2},
		"commits error":    {m.commits.WithLabelValues("orders", "error"), 1},
		"rebalance assign": {m.rebalances.WithLabelValues("orders", "assigned"), 3},
		"rebalance revoke": {m.rebalances.WithLabelValues("orders", "revoked"), 1},
		"rebalance lost":   {m.rebalances.WithLabelValues("orders", "lost"), 0},
	} {
		if got := testutil.ToFloat64(tc.c); got != tc.want {
			t.Errorf("%s = %v, want %v", name, got, tc.want)
		}
	}
	// Rebalanced with n=0 still creates the series.
	if n := testutil.CollectAndCount(m.rebalances); n != 3 {
		t.Errorf("rebalance series = %d, want 3", n)
	}

	m.Ready(true)
	if v := testutil.ToFloat64(m.ready); v != 1 {
		t.Errorf("fanout_ready after Ready(true) = %v", v)
	}
	m.Ready(false)
	if v := testutil.ToFloat64(m.ready); v != 0 {
		t.Errorf("fanout_ready after Ready(false) = %v", v)
	}
}

// stateMetrics are the names computed from the snapshot.
var stateMetrics = []string{
	"fanout_route_queue_depth", "fanout_route_queue_capacity", "fanout_route_congested",
	"fanout_route_oldest_pending_age_seconds", "fanout_route_workers", "fanout_route_workers_busy",
	"fanout_partition_paused", "fanout_partition_inflight_records", "fanout_partition_lag_records",
	"fanout_partition_lag_seconds", "fanout_partition_committed_offset", "fanout_partition_high_watermark",
	"fanout_assigned_partitions",
}

func TestStateFromSnapshot(t *testing.T) {
	m, reg := newTestMetrics(t)
	calls := 0
	m.CollectFrom(func() consumer.Snapshot { calls++; return sampleSnapshot() })

	// Partition 1 has neither committed offset nor high watermark (-1), and
	// payments, with no partition here, reports 0 assigned.
	want := `
# HELP fanout_assigned_partitions Partitions of a receiver's topic assigned to this process.
# TYPE fanout_assigned_partitions gauge
fanout_assigned_partitions{topic="orders"} 2
fanout_assigned_partitions{topic="payments"} 0
# HELP fanout_partition_committed_offset Committed offset of an assigned partition; absent until known.
# TYPE fanout_partition_committed_offset gauge
fanout_partition_committed_offset{partition="0",topic="orders"} 40
# HELP fanout_partition_high_watermark Latest known high watermark of an assigned partition; absent until known.
# TYPE fanout_partition_high_watermark gauge
fanout_partition_high_watermark{partition="0",topic="orders"} 100
# HELP fanout_partition_inflight_records Records of an assigned partition accepted by the engine and not yet acknowledged by every route.
# TYPE fanout_partition_inflight_records gauge
fanout_partition_inflight_records{partition="0",topic="orders"} 7
fanout_partition_inflight_records{partition="1",topic="orders"} 0
# HELP fanout_partition_lag_records High watermark minus committed offset of an assigned partition, 0 while either is unknown.
# TYPE fanout_partition_lag_records gauge
fanout_partition_lag_records{partition="0",topic="orders"} 60
fanout_partition_lag_records{partition="1",topic="orders"} 0
# HELP fanout_partition_lag_seconds Now minus the timestamp of the oldest record of an assigned partition not yet committed, fetched or not (one still in Kafka is read from it, or dated from sightings of the end offset), 0 when none waits.
# TYPE fanout_partition_lag_seconds gauge
fanout_partition_lag_seconds{partition="0",topic="orders"} 90
fanout_partition_lag_seconds{partition="1",topic="orders"} 0
# HELP fanout_partition_paused 1 while fetching from an assigned partition is paused.
# TYPE fanout_partition_paused gauge
fanout_partition_paused{partition="0",topic="orders"} 1
fanout_partition_paused{partition="1",topic="orders"} 0
# HELP fanout_route_congested 1 while a route's queue is congested: it filled up and has not yet drained to half.
# TYPE fanout_route_congested gauge
fanout_route_congested{route="audit",topic="orders"} 0
fanout_route_congested{route="crm",topic="orders"} 1
fanout_route_congested{route="ledger",topic="payments"} 0
# HELP fanout_route_oldest_pending_age_seconds Age of the oldest record a route has not acknowledged, 0 when none; the largest per receiver names the route holding its commits back.
# TYPE fanout_route_oldest_pending_age_seconds gauge
fanout_route_oldest_pending_age_seconds{route="audit",topic="orders"} 0
fanout_route_oldest_pending_age_seconds{route="crm",topic="orders"} 1.5
fanout_route_oldest_pending_age_seconds{route="ledger",topic="payments"} 0
# HELP fanout_route_queue_capacity Size of a route's queue (its buffer).
# TYPE fanout_route_queue_capacity gauge
fanout_route_queue_capacity{route="audit",topic="orders"} 50
fanout_route_queue_capacity{route="crm",topic="orders"} 100
fanout_route_queue_capacity{route="ledger",topic="payments"} 10
# HELP fanout_route_queue_depth Records waiting in a route's queue for a worker.
# TYPE fanout_route_queue_depth gauge
fanout_route_queue_depth{route="audit",topic="orders"} 0
fanout_route_queue_depth{route="crm",topic="orders"} 90
fanout_route_queue_depth{route="ledger",topic="payments"} 0
# HELP fanout_route_workers Workers configured for a route.
# TYPE fanout_route_workers gauge
fanout_route_workers{route="audit",topic="orders"} 2
fanout_route_workers{route="crm",topic="orders"} 4
fanout_route_workers{route="ledger",topic="payments"} 1
# HELP fanout_route_workers_busy Workers of a route delivering a record now.
# TYPE fanout_route_workers_busy gauge
fanout_route_workers_busy{route="audit",topic="orders"} 0
fanout_route_workers_busy{route="crm",topic="orders"} 4
fanout_route_workers_busy{route="ledger",topic="payments"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), stateMetrics...); err != nil {
		t.Error(err)
	}
	if calls != 1 {
		t.Errorf("one gather called the snapshot %d times, want 1", calls)
	}
}

func TestStateLagSecondsFollowsClock(t *testing.T) {
	m, reg := newTestMetrics(t)
	pending := scrapeTime.Add(-10 * time.Second)
	m.CollectFrom(func() consumer.Snapshot {
		return consumer.Snapshot{
			Receivers: []fanout.ReceiverStats{{Topic: "orders"}},
			Partitions: []consumer.PartitionStats{
				{Topic: "orders", Partition: 3, Committed: 5, End: 5, OldestPending: pending},
				// A producer clock ahead of ours.
				{Topic: "orders", Partition: 4, Committed: 5, End: 5, OldestPending: scrapeTime.Add(time.Minute)},
			},
		}
	})
	lag := func() string { return gatherText(t, reg, "fanout_partition_lag_seconds") }
	if got := lag(); !strings.Contains(got, `{partition="3",topic="orders"} 10`+"\n") ||
		!strings.Contains(got, `{partition="4",topic="orders"} 0`+"\n") {
		t.Errorf("lag at scrapeTime:\n%s", got)
	}
	m.now = func() time.Time { return scrapeTime.Add(50 * time.Second) }
	if got := lag(); !strings.Contains(got, `{partition="3",topic="orders"} 60`+"\n") {
		t.Errorf("lag 50s later:\n%s", got)
	}
}

func TestStateRevokedPartitionDisappears(t *testing.T) {
	m, reg := newTestMetrics(t)
	var mu sync.Mutex
	snap := sampleSnapshot()
	m.CollectFrom(func() consumer.Snapshot { mu.Lock(); defer mu.Unlock(); return snap })
	if n, err := testutil.GatherAndCount(reg, "fanout_partition_paused"); err != nil || n != 2 {
		t.Fatalf("partition_paused series = %d, %v; want 2", n, err)
	}

	mu.Lock()
	snap.Partitions = nil // every partition revoked
	mu.Unlock()
	for _, name := range []string{"fanout_partition_paused", "fanout_partition_lag_seconds", "fanout_partition_committed_offset"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != 0 {
			t.Errorf("%s after revoke: %d series, %v; want 0", name, n, err)
		}
	}
	if out := gatherText(t, reg, "fanout_assigned_partitions"); !strings.Contains(out, `fanout_assigned_partitions{topic="orders"} 0`) {
		t.Errorf("assigned after revoke:\n%s", out)
	}

	m.CollectFrom(nil)
	if n, err := testutil.GatherAndCount(reg, stateMetrics...); err != nil || n != 0 {
		t.Errorf("state series after CollectFrom(nil): %d, %v; want 0", n, err)
	}
}

// TestExportsEveryRuleMetric checks, against a registry fed like a running
// worker (Kafka clients included), that every metric the rules, their
// tests and the dashboard query is exported, and that the exported
// fanout_* names, those of franz-go's kprom plugin aside, are exactly
// knownMetrics.
func TestExportsEveryRuleMetric(t *testing.T) {
	m, reg := newTestMetrics(t)
	callEveryHook(m)
	m.CollectFrom(spillSnapshot)
	driveKafkaClients(t, reg)
	exported := gatheredNames(t, reg, "fanout_")

	used, err := MetricNames(rulesFile, rulesTestFile, dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range used {
		if !slices.Contains(exported, n) {
			t.Errorf("%s is used by the rules or the dashboard but not exported", n)
		}
	}
	exported = slices.DeleteFunc(exported, isKafkaClientMetric)
	want := slices.DeleteFunc(slices.Sorted(slices.Values(knownMetrics)), isKafkaClientMetric)
	if !slices.Equal(exported, want) {
		t.Errorf("exported fanout_* metrics differ from knownMetrics:\n got %q\nwant %q", exported, want)
	}
}

// TestConcurrentHooksAndScrapes is for the race detector.
func TestConcurrentHooksAndScrapes(t *testing.T) {
	m, reg := newTestMetrics(t)
	m.CollectFrom(sampleSnapshot)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			ro := m.Route("orders", fmt.Sprintf("r%d", i%2))
			for range 200 {
				ro.Delivered(fanout.OutcomeSuccess, time.Millisecond)
				ro.QueueWait(time.Millisecond)
				m.PartitionPaused("orders", int32(i), "")
				m.Consumed("orders", 1)
				m.Committed("orders", int32(i), 1, nil)
				m.Ready(i%2 == 0)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	if v := testutil.ToFloat64(m.consumed.WithLabelValues("orders")); v != 800 {
		t.Errorf("consumed = %v, want 800", v)
	}
}

// gatheredNames returns the sorted names of the families reg gathers that
// start with prefix.
func gatheredNames(t *testing.T, reg prometheus.Gatherer, prefix string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), prefix) {
			names = append(names, mf.GetName())
		}
	}
	slices.Sort(names)
	return names
}

// gatherText returns the text exposition of the named families.
func gatherText(t *testing.T, reg prometheus.Gatherer, names ...string) string {
	t.Helper()
	b, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, names...)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// histogramCount returns the observation count of the named histogram's
// series whose label name has the given value.
func histogramCount(t *testing.T, reg prometheus.Gatherer, name, label, value string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return s.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	t.Fatalf("%s{%s=%q} not gathered", name, label, value)
	return 0
}

// ExampleNewMetrics shows main's wiring: one registry, the metrics as the
// engine's and the consumer's observer, and the consumer's Stats as the
// snapshot read at each scrape.
func ExampleNewMetrics() {
	reg := NewRegistry()
	m, err := NewMetrics(reg, "v1.0.0")
	if err != nil {
		panic(err)
	}
	// fanout.Config{Observer: m, ...} and consumer.Config{Observer: m, ...};
	// then m.CollectFrom(c.Stats). Here a fixed snapshot stands in.
	m.CollectFrom(func() consumer.Snapshot {
		return consumer.Snapshot{Receivers: []fanout.ReceiverStats{{Topic: "orders"}}}
	})
	m.Route("orders", "crm").Delivered(fanout.OutcomeSuccess, 40*time.Millisecond)

	b, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, "fanout_assigned_partitions")
	if err != nil {
		panic(err)
	}
	fmt.Print(string(b))
	// Output:
	// # HELP fanout_assigned_partitions Partitions of a receiver's topic assigned to this process.
	// # TYPE fanout_assigned_partitions gauge
	// fanout_assigned_partitions{topic="orders"} 0
}
