package consumer

import (
	"context"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fakeClock is a settable clock for the sightings.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.set(t)
	return c
}
func (c *fakeClock) now() time.Time  { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) add(d time.Duration) time.Time {
	return time.Unix(0, c.ns.Add(int64(d)))
}

func TestLagState_estimate(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	k := tp{"orders", 0}
	// Sightings: end 10 at t0, 30 at t0+10s, 40 at t0+20s: records
	// [10,30) appended in (t0, t0+10s], [30,40) in (t0+10s, t0+20s].
	seen := []sighting{{end: 10, at: t0}, {end: 30, at: t0.Add(10 * time.Second)}, {end: 40, at: t0.Add(20 * time.Second)}}
	cases := []struct {
		name      string
		probe     *probed
		committed int64
		wantTS    time.Time
		wantSrc   LagSource
		wantProbe bool
	}{
		{name: "first record of a gap", committed: 10, wantTS: t0.Add(500 * time.Millisecond), wantSrc: LagInterpolated},
		{name: "last record of a gap is dated at its sighting", committed: 29, wantTS: t0.Add(10 * time.Second), wantSrc: LagInterpolated},
		{name: "second gap", committed: 34, wantTS: t0.Add(15 * time.Second), wantSrc: LagInterpolated},
		{name: "older than every sighting: a lower bound, and a probe", committed: 3, wantTS: t0, wantSrc: LagBound, wantProbe: true},
		{name: "probed exactly", probe: &probed{from: 3, offset: 3, ts: t0.Add(-time.Hour)}, committed: 3, wantTS: t0.Add(-time.Hour), wantSrc: LagProbed},
		{name: "probed across a gap in the offsets", probe: &probed{from: 2, offset: 5, ts: t0.Add(-time.Hour)}, committed: 4, wantTS: t0.Add(-time.Hour), wantSrc: LagProbed},
		{name: "probe of an earlier offset stands in while a new one is asked", probe: &probed{from: 2, offset: 2, ts: t0.Add(-time.Hour)}, committed: 4, wantTS: t0.Add(-time.Hour), wantSrc: LagProbed, wantProbe: true},
		{name: "a probe does not override the sightings", probe: &probed{from: 2, offset: 2, ts: t0.Add(-time.Hour)}, committed: 20, wantTS: t0.Add(5500 * time.Millisecond), wantSrc: LagInterpolated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock(t0.Add(time.Minute))
			l := &lagState{now: clk.now, seen: map[tp][]sighting{k: append([]sighting(nil), seen...)}}
			if tc.probe != nil {
				l.probes = map[tp]probed{k: *tc.probe}
			}
			ts, src, probe := l.estimate(k, tc.committed)
			if !ts.Equal(tc.wantTS) || src != tc.wantSrc || probe != tc.wantProbe {
				t.Fatalf("estimate(%d) = %s, %q, probe %v; want %s, %q, probe %v",
					tc.committed, ts.Sub(t0), src, probe, tc.wantTS.Sub(t0), tc.wantSrc, tc.wantProbe)
			}
		})
	}
}

func TestLagState_failedProbeBacksOff(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	clk := newFakeClock(t0)
	k := tp{"orders", 0}
	l := &lagState{now: clk.now, seen: map[tp][]sighting{k: {{end: 100, at: t0}}},
		failures: map[tp]probeFailure{k: {offset: 7, at: t0}}}
	if _, _, probe := l.estimate(k, 7); probe {
		t.Error("asks again for an offset whose probe just failed")
	}
	if l.needsProbe(k, 7) {
		t.Error("committer asks again for an offset whose probe just failed")
	}
	if _, _, probe := l.estimate(k, 8); !probe {
		t.Error("does not ask for a new offset")
	}
	clk.add(probeRetry)
	if _, _, probe := l.estimate(k, 7); !probe {
		t.Errorf("does not retry after %s", probeRetry)
	}
}

func TestLagState_sightingsMergeAndThinWithinRelativeError(t *testing.T) {
	// Half an hour of a partition whose production rate swings between 10
	// and 1000 records a second, its end sighted every 50ms (merged to
	// 100ms gaps): the table stays bounded and dates every record within
	// 10% of its age (plus the merge gap).
	t0 := time.Unix(1_000_000, 0)
	clk := newFakeClock(t0)
	k := tp{"orders", 0}
	l := &lagState{now: clk.now}
	var truth []sighting // the end after each step, and when
	end := int64(0)
	const step = 50 * time.Millisecond
	for i := 0; i < int(30*time.Minute/step); i++ {
		now := clk.add(step)
		rate := 505 + 495*math.Sin(float64(i)/2000)
		end += int64(rate * step.Seconds())
		truth = append(truth, sighting{end: end, at: now})
		l.sight(k, end)
		if n := len(l.seen[k]); n > maxSightings {
			t.Fatalf("%d sightings kept, bound %d", n, maxSightings)
		}
	}
	// appended is when offset off was appended: the step that passed it.
	appended := func(off int64) time.Time {
		return truth[sort.Search(len(truth), func(i int) bool { return truth[i].end > off })].at
	}
	s := l.seen[k]
	if s[0].at.After(t0.Add(step)) {
		t.Errorf("first sighting moved to %s: what it bounds is lost", s[0].at.Sub(t0))
	}
	for i := 1; i < len(s); i++ {
		if s[i].end <= s[i-1].end || !s[i].at.After(s[i-1].at) {
			t.Fatalf("sightings out of order at %d: %+v then %+v", i, s[i-1], s[i])
		}
	}
	now := clk.now()
	worst := 0.0
	for off := s[0].end; off < end; off += 997 {
		ts, src, _ := l.estimate(k, off)
		if src != LagInterpolated {
			t.Fatalf("offset %d: source %q", off, src)
		}
		age := now.Sub(appended(off))
		errAbs := ts.Sub(appended(off)).Abs()
		if errAbs > age/10+2*sightingMerge {
			t.Fatalf("offset %d appended %s ago: estimate off by %s", off, age, errAbs)
		}
		worst = max(worst, errAbs.Seconds()/max(age.Seconds(), 1))
	}
	t.Logf("%d sightings over 30m; worst error %.1f%% of the age", len(s), 100*worst)
}

func TestLagState_tidyKeepsTheGapOfTheCommittedOffset(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	a, b := tp{"orders", 0}, tp{"orders", 1}
	l := &lagState{now: newFakeClock(t0).now,
		seen:   map[tp][]sighting{a: {{end: 10, at: t0}, {end: 20, at: t0.Add(time.Second)}, {end: 30, at: t0.Add(2 * time.Second)}, {end: 40, at: t0.Add(3 * time.Second)}}, b: {{end: 5, at: t0}}},
		probes: map[tp]probed{b: {from: 1, offset: 1, ts: t0}},
	}
	l.tidy(map[tp]int64{a: 25})
	if got := l.seen[a]; len(got) != 3 || got[0].end != 20 {
		t.Errorf("sightings of a after tidy at 25: %+v, want from end 20 on", got)
	}
	if ts, src, _ := l.estimate(a, 25); src != LagInterpolated || !ts.Equal(t0.Add(1600*time.Millisecond)) {
		t.Errorf("estimate after tidy: %s %q", ts.Sub(t0), src)
	}
	if _, ok := l.seen[b]; ok {
		t.Error("sightings of a partition no longer owned kept")
	}
	if _, ok := l.probes[b]; ok {
		t.Error("probe of a partition no longer owned kept")
	}
}

// backlog produces n records to each partition of topic, record i of a
// partition stamped at base + i ms, and returns the timestamps by partition
// and offset (as Kafka keeps them, in milliseconds).
func backlog(tb testing.TB, addrs []string, topic string, partitions int32, n int, base time.Time) map[tp]map[int64]time.Time {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	out := make(map[tp]map[int64]time.Time)
	for p := range partitions {
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: topic, Partition: p, Value: []byte("v"), Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
		}
		res := cl.ProduceSync(context.Background(), recs...)
		if err := res.FirstErr(); err != nil {
			tb.Fatal(err)
		}
		m := make(map[int64]time.Time, n)
		for _, r := range res {
			m[r.Record.Offset] = time.UnixMilli(r.Record.Timestamp.UnixMilli())
		}
		out[tp{topic, p}] = m
	}
	return out
}

// precommit commits offset at for every partition of topic for group, as
// a previous run of the group would have.
func precommit(tb testing.TB, addrs []string, group, topic string, partitions int32, at int64) {
	tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	var offs kadm.Offsets
	for p := range partitions {
		offs.Add(kadm.Offset{Topic: topic, Partition: p, At: at, LeaderEpoch: -1})
	}
	resp, err := kadm.NewClient(cl).CommitOffsets(context.Background(), group, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// lagCheck asserts, at every snapshot it is given, what the lag in seconds
// promises: a partition with records waiting (Lag > 0) has an
// OldestPending within bound of the timestamp of the record at its
// committed offset.
type lagCheck struct {
	t       *testing.T
	ts      map[tp]map[int64]time.Time
	bound   time.Duration
	checked int
	sources map[LagSource]int
}

func (lc *lagCheck) check(s Snapshot) (waiting int) {
	lc.t.Helper()
	if lc.sources == nil {
		lc.sources = make(map[LagSource]int)
	}
	for _, p := range s.Partitions {
		if p.Lag <= 0 {
			continue
		}
		waiting++
		lc.checked++
		lc.sources[p.OldestSource]++
		want, ok := lc.ts[tp{p.Topic, p.Partition}][p.Committed]
		if !ok {
			lc.t.Fatalf("%s/%d: committed %d end %d: no record produced there", p.Topic, p.Partition, p.Committed, p.End)
		}
		if p.OldestPending.IsZero() {
			lc.t.Fatalf("%s/%d: %d records wait (committed %d, end %d), no oldest pending: lag in seconds 0", p.Topic, p.Partition, p.Lag, p.Committed, p.End)
		}
		if d := p.OldestPending.Sub(want); d > lc.bound || d < -lc.bound {
			lc.t.Fatalf("%s/%d: committed %d (record of %s), oldest pending %s from %q: off by %s, bound %s",
				p.Topic, p.Partition, p.Committed, want.Format(time.RFC3339Nano), p.OldestPending.Format(time.RFC3339Nano), p.OldestSource, d, lc.bound)
		}
	}
	return waiting
}

// A stalled route: its partitions pause with records waiting in Kafka
// behind them; once it is released they catch up. At every scrape the lag
// in seconds is that of the record at the committed offset, within the
// bound (the records are an hour old, 1 ms apart).
func TestLag_pausedPartitionWithBacklogThenCatchUp(t *testing.T) {
	c := newCluster(t, 3, "orders")
	addrs := c.ListenAddrs()
	const n = 400
	ts := backlog(t, addrs, "orders", 3, n, time.Now().Add(-time.Hour))
	precommit(t, addrs, "lag-paused", "orders", 3, 20)
	stuck, release := stalledSink("stuck")
	defer release()
	run := start(t, testConfig(addrs, "lag-paused"),
		fanout.ReceiverConfig{Topic: "orders", Routes: []fanout.RouteConfig{{Route: stuck, Workers: 1, Buffer: 4}}})
	lc := &lagCheck{t: t, ts: ts, bound: 2 * time.Second}
	paused := 0
	wait(t, guard, "partitions paused, 50 scrapes with records waiting", func() bool {
		s := run.c.Stats()
		lc.check(s)
		for _, p := range s.Partitions {
			if p.Paused {
				paused++
			}
		}
		return paused > 0 && lc.checked >= 50
	})
	if lc.sources[LagFetched] == 0 {
		t.Errorf("no partition dated from its fetched records while stalled: %v", lc.sources)
	}
	t.Logf("stalled: %d checks, sources %v", lc.checked, lc.sources)
	release()
	wait(t, guard, "caught up", func() bool {
		s := run.c.Stats()
		if lc.check(s) > 0 {
			return false
		}
		for _, p := range s.Partitions {
			if p.Committed != n {
				return false
			}
		}
		return len(s.Partitions) == 3
	})
	t.Logf("overall: %d checks, sources %v", lc.checked, lc.sources)
}

// The hardest case: a process (re)starts with a backlog; it has joined and
// knows the committed and end offsets, and its first fetch has not
// returned. Nothing it fetched dates the backlog and it has watched
// nothing: the prober reads the record at the committed offset. Then the
// fetch returns and it catches up.
func TestLag_restartWithBacklogBeforeTheFirstFetch(t *testing.T) {
	c := newCluster(t, 3, "orders")
	addrs := c.ListenAddrs()
	const n = 300
	ts := backlog(t, addrs, "orders", 3, n, time.Now().Add(-time.Hour))
	precommit(t, addrs, "lag-restart", "orders", 3, 50)

	// The prober's fetches pass.
	held, unblock := holdGroupFetches(t, c)

	s := newSink("fast")
	run := start(t, testConfig(addrs, "lag-restart"),
		fanout.ReceiverConfig{Topic: "orders", Routes: []fanout.RouteConfig{{Route: s, Workers: 2, Buffer: 16}}})
	lc := &lagCheck{t: t, ts: ts, bound: 2 * time.Second}
	wait(t, guard, "30 scrapes with every partition waiting, the group's fetch held", func() bool {
		if lc.check(run.c.Stats()) == 3 && held.Load() > 0 {
			return lc.checked >= 90
		}
		return false
	})
	if s.Distinct("orders") != 0 {
		t.Fatalf("%d records delivered while the fetch was held", s.Distinct("orders"))
	}
	if lc.sources[LagProbed] != lc.checked {
		t.Errorf("before the first fetch every check should be dated by the prober: %v", lc.sources)
	}
	unblock()
	wait(t, guard, "caught up", func() bool {
		st := run.c.Stats()
		if lc.check(st) > 0 {
			return false
		}
		for _, p := range st.Partitions {
			if p.Committed != n {
				return false
			}
		}
		return len(st.Partitions) == 3
	})
	if got := s.Distinct("orders"); got != 3*(n-50) {
		t.Fatalf("%d records delivered, want %d", got, 3*(n-50))
	}
	t.Logf("%d checks, sources %v", lc.checked, lc.sources)
}

// Records appended while the process watched, delivered and not yet
// committed: nothing fetched waits and the record at the committed offset
// is dated from the sightings of the end offset, within the gap between
// the two sightings around it.
func TestLag_deliveredNotCommittedIsInterpolated(t *testing.T) {
	c := newCluster(t, 2, "orders")
	addrs := c.ListenAddrs()
	precommit(t, addrs, "lag-seen", "orders", 2, 0)
	clk := newFakeClock(time.Now().Add(-2 * time.Hour))
	cfg := testConfig(addrs, "lag-seen")
	cfg.CommitInterval = time.Hour // nothing is committed while the test looks
	s := newSink("fast")
	cons, err := build(cfg, fanout.Options{}, fanout.ReceiverConfig{Topic: "orders", Routes: []fanout.RouteConfig{{Route: s, Workers: 2, Buffer: 16}}})
	if err != nil {
		t.Fatal(err)
	}
	cons.lag.now = clk.now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	wait(t, guard, "ready", cons.Ready)
	f0 := clk.now()
	cons.refreshEnds(context.Background()) // the committer's listing: ends 0 seen at f0
	prod, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const per = 10
	for burst := 1; burst <= 4; burst++ {
		at := clk.add(time.Minute)
		for p := range int32(2) {
			recs := make([]*kgo.Record, per)
			for i := range recs {
				recs[i] = &kgo.Record{Topic: "orders", Partition: p, Value: []byte("v"), Timestamp: at}
			}
			if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		wait(t, guard, "burst fetched and delivered", func() bool {
			if s.Distinct("orders") != 2*per*burst {
				return false
			}
			for _, p := range cons.Stats().Partitions {
				if p.End != int64(per*burst) || p.Inflight != 0 {
					return false
				}
			}
			return true
		})
		for _, p := range cons.Stats().Partitions {
			// Record 0 was appended with the first burst, in (f0, f0+1m].
			if p.Committed != 0 || p.Lag != int64(per*burst) || p.OldestSource != LagInterpolated {
				t.Fatalf("burst %d: %+v", burst, p)
			}
			if !p.OldestPending.After(f0) || p.OldestPending.After(f0.Add(time.Minute)) {
				t.Fatalf("burst %d: record 0 dated %s after f0, want within (0, 1m]", burst, p.OldestPending.Sub(f0))
			}
		}
	}
}

// holdGroupFetches holds every fetch of the group client (read committed)
// until the returned release is called; the prober's (read uncommitted)
// pass. held counts the fetches held.
func holdGroupFetches(t *testing.T, c *kfake.Cluster) (held *atomic.Int32, release func()) {
	released := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(released) }) }
	t.Cleanup(release) // before the cluster closes
	held = new(atomic.Int32)
	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if f, ok := req.(*kmsg.FetchRequest); ok && f.IsolationLevel == 1 {
			select {
			case <-released:
			default:
				held.Add(1)
				c.SleepControl(func() { <-released })
			}
		}
		return nil, nil, false
	})
	return held, release
}

// Retention removed the records at the committed offset: the oldest record
// waiting is the first one left, and the prober dates the lag from it.
func TestLag_probeBelowTheLogStartReadsTheFirstRecordLeft(t *testing.T) {
	c := newCluster(t, 1, "orders")
	addrs := c.ListenAddrs()
	ts := backlog(t, addrs, "orders", 1, 100, time.Now().Add(-time.Hour))
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var below kadm.Offsets
	below.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 50})
	if resp, err := kadm.NewClient(cl).DeleteRecords(context.Background(), below); err != nil || resp.Error() != nil {
		t.Fatalf("delete records: %v %v", err, resp.Error())
	}
	precommit(t, addrs, "lag-retention", "orders", 1, 10)
	held, release := holdGroupFetches(t, c)
	defer release()
	run := start(t, testConfig(addrs, "lag-retention"),
		fanout.ReceiverConfig{Topic: "orders", Routes: []fanout.RouteConfig{{Route: newSink("fast"), Workers: 1, Buffer: 4}}})
	var p PartitionStats
	wait(t, guard, "records waiting, dated by the prober", func() bool {
		s := run.c.Stats()
		if len(s.Partitions) != 1 {
			return false
		}
		p = s.Partitions[0]
		return p.Lag > 0 && p.OldestSource == LagProbed
	})
	if want := ts[tp{"orders", 0}][50]; !p.OldestPending.Equal(want) || p.Committed != 10 {
		t.Fatalf("committed %d below the log start 50: oldest pending %s, want the record at 50 (%s)", p.Committed, p.OldestPending, want)
	}
	if held.Load() == 0 {
		t.Fatal("the group's fetch was not held: the record may have come from it")
	}
}

// A partition idle at one end offset, then a record: the record is dated
// from the last time the end was seen unchanged, not from when the end
// first reached it (which would age it by the whole idle time).
func TestLagState_idleEndDatesTheNextRecordFromItsLastSighting(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	clk := newFakeClock(t0)
	k := tp{"orders", 0}
	l := &lagState{now: clk.now}
	l.sight(k, 3000)
	for range 100 { // 10 s idle, sighted every 100 ms
		clk.add(100 * time.Millisecond)
		l.sight(k, 3000)
	}
	idleEnd := clk.now()
	clk.add(100 * time.Millisecond)
	l.sight(k, 3020)
	ts, src, _ := l.estimate(k, 3000)
	if src != LagInterpolated {
		t.Fatalf("source %q, want %q", src, LagInterpolated)
	}
	if ts.Before(idleEnd) || ts.After(clk.now()) {
		t.Fatalf("record 3000 dated %s after the end first reached it, want between %s and %s",
			ts.Sub(t0), idleEnd.Sub(t0), clk.now().Sub(t0))
	}
}
