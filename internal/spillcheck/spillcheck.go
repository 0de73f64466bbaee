// Package spillcheck runs the spill scenario (issue 12) against a Kafka
// cluster with the built fanout binary: a receiver with a fast route and a
// slow one whose endpoint stalls. The slow route detaches to its spill
// topic; the check measures that the fast route keeps its pace, that the
// slow one receives every record (original coordinates and body, in key
// order) once the stall ends, that both groups commit to the ends, and
// that the route re-attaches and stops spilling. Variants SIGKILL the
// worker, or start a second one, while the route is detached: detachment
// lives in Kafka, so a new owner keeps spilling.
//
// The root package's tests run it on kfake, the integration tests against
// Apache Kafka.
package spillcheck

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/receiver-fanout/fanout/internal/testkit"
	"github.com/receiver-fanout/fanout/worker"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Variant is what happens while the route is detached.
type Variant string

// The variants.
const (
	Plain Variant = "plain" // nothing: one worker throughout
	Kill  Variant = "kill"  // the worker is SIGKILLed and another started
	Join  Variant = "join"  // a second worker joins the group
)

// Config is one run.
type Config struct {
	Brokers []string
	Binary  string // the built fanout binary
	Variant Variant
	// Stall is how long /slow stalls, from when the records start.
	Stall time.Duration
	// Prefix makes topic and group names unique to the run.
	Prefix string
	Dir    string // scratch space (the receivers file)
	Logf   func(format string, args ...any)
}

// The run's shape.
const (
	ordersPartitions = 3
	spillPartitions  = 2
	rate             = 300 // records a second while the stall lasts
	finalRecords     = 300 // produced after re-attaching, over finalSpread
	finalSpread      = time.Second
	shutdownWait     = 5 * time.Second // FANOUT_SHUTDOWN_TIMEOUT
	// fastWithin and fastShare: that share of the records produced while
	// the route is detached reaches the fast route within fastWithin of
	// the produce's acknowledgement.
	fastWithin = time.Second
	fastShare  = 0.95
	// minJudged is how many records the fast-route figure needs to mean
	// anything.
	minJudged = 300
	// settleAfterReady is how long after the new worker is ready its
	// records still count as the rebalance's.
	settleAfterReady = 2 * time.Second
)

// Bounds of the waits; none is what the check asserts.
const (
	readyWait    = 90 * time.Second
	detachWait   = 30 * time.Second
	drainWait    = 2 * time.Minute
	commitWait   = 60 * time.Second
	finalWait    = 60 * time.Second
	newOwnerWait = 20 * time.Second
)

// Report is what a run measured and found. Problems empty means every
// promise held.
type Report struct {
	Variant  Variant
	Problems []string

	Produced int // records acknowledged by the broker, final batch included
	Final    int // of them, produced after re-attaching
	Spilled  int // records in the spill topic (its end offsets, summed)
	// DetachedAfter is from the first record until the worker reported
	// the route detached.
	DetachedAfter time.Duration
	// Rebalance is, for kill and join, from the kill or join until the
	// new worker was ready plus settleAfterReady: the records
	// acknowledged in it are not judged for the fast route's pace.
	Rebalance time.Duration
	// NewOwnerDetached is from the new worker being ready until it
	// reported the route detached (kill and join).
	NewOwnerDetached time.Duration

	// The fast route while detached: Judged records, FastOnTime of them
	// within fastWithin; FastP50, FastP99 and FastMax their latencies
	// from the acknowledgement (a record that never arrived counts as
	// the longest).
	Judged, FastOnTime        int
	FastP50, FastP99, FastMax time.Duration

	// SlowAnswered is the /slow requests answered (repeats included);
	// SlowUnanswered the ones that ended first (detach, worker killed).
	SlowAnswered, SlowUnanswered int
	// Reattached is from the gate's release until every worker reported
	// the route attached; Drained until the spill group had committed
	// up to the spill topic's ends.
	Reattached, Drained time.Duration
	SIGTERMs            []time.Duration // how long each SIGTERMed worker took to exit
	Took                time.Duration
}

// FastShare is the share of judged records that reached the fast route in
// time.
func (r *Report) FastShare() float64 {
	if r.Judged == 0 {
		return 0
	}
	return float64(r.FastOnTime) / float64(r.Judged)
}

// never is the latency of a record that did not arrive.
const never = time.Duration(1<<63 - 1)

func latency(d time.Duration) string {
	if d == never {
		return "never"
	}
	return d.Round(time.Millisecond).String()
}

func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// String summarises the report.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "spill %s: %d records (%d after re-attaching), %d spilled, detached %.1fs after the first record, run %.1fs\n",
		r.Variant, r.Produced, r.Final, r.Spilled, r.DetachedAfter.Seconds(), r.Took.Seconds())
	fmt.Fprintf(&b, "  fast route while detached: %.2f%% of %d within %s (p50 %s, p99 %s, max %s)\n",
		100*r.FastShare(), r.Judged, fastWithin, latency(r.FastP50), latency(r.FastP99), latency(r.FastMax))
	if r.Variant != Plain {
		fmt.Fprintf(&b, "  rebalance window %.1fs (not judged); new owner detached %.1fs after ready\n", r.Rebalance.Seconds(), r.NewOwnerDetached.Seconds())
	}
	fmt.Fprintf(&b, "  slow route: %d answered, %d unanswered requests; re-attached %.1fs and spill drained %.1fs after the stall ended; SIGTERM exits %v\n",
		r.SlowAnswered, r.SlowUnanswered, r.Reattached.Seconds(), r.Drained.Seconds(), r.SIGTERMs)
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  PROBLEM: %s\n", p)
	}
	return b.String()
}

// run is one run's state.
type run struct {
	cfg     Config
	rep     *Report
	sink    *sink
	prod    *producer
	admCl   *kgo.Client
	adm     *kadm.Client
	orders  string
	spill   string
	group   string
	env     []string
	workers []*testkit.Worker
	mu      sync.Mutex // protects workers against close
	nextID  int

	start      time.Time // the first record
	detachedAt time.Time
	// excludeFrom, excludeTo: the rebalance window of kill and join.
	excludeFrom, excludeTo time.Time
	releasedAt             time.Time
}

// Run executes the scenario and reports what it found. The error is for a
// run that could not be set up; broken promises are the report's Problems.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	switch cfg.Variant {
	case Plain, Kill, Join:
	default:
		return nil, fmt.Errorf("spillcheck: unknown variant %q", cfg.Variant)
	}
	began := time.Now()
	r := &run{cfg: cfg, rep: &Report{Variant: cfg.Variant}, sink: newSink(),
		orders: cfg.Prefix + "orders", spill: cfg.Prefix + "spill", group: cfg.Prefix + "group"}
	defer r.sink.close()
	defer r.close()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	r.scenario(ctx)
	r.stopAll()
	r.verify()
	r.checkLogs()
	r.rep.Took = time.Since(began)
	for _, w := range r.workers {
		if lines := warnings(w.Stderr()); lines != "" {
			cfg.Logf("worker %s warnings and errors:\n%s", w.Name, lines)
		}
		if len(r.rep.Problems) > 0 {
			cfg.Logf("worker %s stderr (last 4 KiB):\n%s", w.Name, tail(w.Stderr(), 4096))
		}
	}
	return r.rep, nil
}

// checkLogs reads the workers' logs for a route that started re-attaching
// while it was still stalled (the stall lasts until the route drains, so
// every re-attach should complete): it then took no records, paused its
// partitions and detached again After later.
func (r *run) checkLogs() {
	for _, w := range r.workers {
		if n := strings.Count(w.Stderr(), `"why":"congested again while re-attaching"`); n > 0 {
			r.rep.problem("worker %s detached the slow route again %d times after it had begun re-attaching while the stall lasted: meanwhile it took no records and its partitions paused", w.Name, n)
		}
	}
}

// warnings returns the log lines of level warn and above (detaching says
// why at warn), at most 40.
func warnings(stderr string) string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) || strings.Contains(line, "re-attached") {
			out = append(out, line)
		}
	}
	if len(out) > 40 {
		out = append(out[:40], fmt.Sprintf("... and %d more", len(out)-40))
	}
	return strings.Join(out, "\n")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// close kills any worker still running (after a failure) and releases the
// clients.
func (r *run) close() {
	r.mu.Lock()
	for _, w := range r.workers {
		select {
		case <-w.Exited():
		default:
			w.Kill()
		}
	}
	r.mu.Unlock()
	if r.prod != nil {
		r.prod.close()
	}
	if r.admCl != nil {
		r.admCl.Close()
	}
}

func (r *run) setup(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.cfg.Brokers...))
	if err != nil {
		return err
	}
	r.admCl, r.adm = cl, kadm.NewClient(cl)
	for topic, n := range map[string]int32{r.orders: ordersPartitions, r.spill: spillPartitions} {
		resp, err := r.adm.CreateTopics(ctx, n, 1, nil, topic)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	// A broker answers for a new topic a moment after creating it; the
	// worker refuses to start on a topic it cannot describe yet.
	var notYet error
	if !r.waitFor(ctx, 30*time.Second, func() bool { notYet = r.described(ctx); return notYet == nil }) {
		return fmt.Errorf("the new topics: %w", notYet)
	}
	if r.prod, err = newProducer(r.cfg.Brokers, r.orders); err != nil {
		return err
	}
	yaml := fmt.Sprintf(`receivers:
  - topic: %s
    routes:
      - {name: fast, type: http, workers: 16, http: {url: %q, timeout: 5s}}
      - name: slow
        type: http
        workers: 4
        buffer: 64
        http: {url: %q, timeout: 60s}
        spill: {topic: %s, after: 1s}
`, r.orders, r.sink.url(routeFast), r.sink.url(routeSlow), r.spill)
	path := filepath.Join(r.cfg.Dir, "spill.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		return err
	}
	r.env = []string{
		"FANOUT_BROKERS=" + strings.Join(r.cfg.Brokers, ","),
		"FANOUT_GROUP=" + r.group,
		"FANOUT_CONFIG=" + path,
		"FANOUT_COMMIT_INTERVAL=200ms",
		"FANOUT_SHUTDOWN_TIMEOUT=" + shutdownWait.String(),
		"FANOUT_SESSION_TIMEOUT=6s",
		"FANOUT_REBALANCE_TIMEOUT=10s",
		"FANOUT_REVOKE_TIMEOUT=3s",
		"FANOUT_LOG_LEVEL=info",
	}
	return nil
}

// described returns why the topics cannot be described and their end
// offsets listed yet, nil once they can.
func (r *run) described(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	configs, err := r.adm.DescribeTopicConfigs(ctx, r.orders, r.spill)
	if err != nil {
		return err
	}
	for _, c := range configs {
		if c.Err != nil {
			return fmt.Errorf("%s: %w", c.Name, c.Err)
		}
	}
	for _, topic := range []string{r.orders, r.spill} {
		if _, err := r.ends(ctx, topic); err != nil {
			return fmt.Errorf("%s: %w", topic, err)
		}
	}
	return nil
}

// startWorker starts a worker and waits until it is ready; the time is
// when it was seen ready (zero when it was not).
func (r *run) startWorker(ctx context.Context) (*testkit.Worker, time.Time) {
	r.mu.Lock()
	r.nextID++
	name := fmt.Sprintf("spill-%s-%d", r.cfg.Variant, r.nextID)
	w, err := testkit.StartWorker(r.cfg.Binary, name, r.env, r.cfg.Logf)
	if err == nil {
		r.workers = append(r.workers, w)
	}
	r.mu.Unlock()
	if err != nil {
		r.rep.problem("start worker %s: %v", name, err)
		return nil, time.Time{}
	}
	ok := r.waitFor(ctx, readyWait, func() bool {
		select {
		case <-w.Exited():
			return true
		default:
		}
		return w.Ready()
	})
	select {
	case <-w.Exited():
		code, _, _ := w.Exit()
		r.rep.problem("worker %s exited %d before it was ready:\n%s", name, code, tail(w.Stderr(), 4096))
		return nil, time.Time{}
	default:
	}
	if !ok {
		r.rep.problem("worker %s not ready within %s", name, readyWait)
		return w, time.Time{}
	}
	return w, time.Now()
}

// waitFor polls cond every 50ms until it holds (true) or d passes or ctx
// ends (false).
func (r *run) waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// live returns the workers running and not told to stop.
func (r *run) live() []*testkit.Worker {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*testkit.Worker
	for _, w := range r.workers {
		if w.Alive() {
			out = append(out, w)
		}
	}
	return out
}

// detached reads w's fanout_route_detached of the slow route; ok is false
// when w does not answer or has no such series.
func (r *run) detached(w *testkit.Worker) (v float64, ok bool) {
	samples, err := w.Metric("fanout_route_detached")
	if err != nil {
		return 0, false
	}
	for labels, v := range samples {
		if strings.Contains(labels, `route="slow"`) && strings.Contains(labels, `topic="`+r.orders+`"`) {
			return v, true
		}
	}
	return 0, false
}

// scenario runs the records, the stall, the variant's event, the release
// and the final batch, checking as it goes.
func (r *run) scenario(ctx context.Context) {
	first, readyAt := r.startWorker(ctx)
	if first == nil || readyAt.IsZero() {
		return
	}
	prodCtx, stopProducing := context.WithCancel(ctx)
	produced := make(chan struct{})
	r.start = time.Now()
	go func() { defer close(produced); r.prod.steadily(prodCtx, rate) }()
	defer func() { stopProducing(); <-produced }()

	if !r.waitFor(ctx, detachWait, func() bool { v, ok := r.detached(first); return ok && v == 1 }) {
		r.rep.problem("the slow route did not detach within %s of the first record (stalled, buffer 64, after 1s)", detachWait)
		return
	}
	r.detachedAt = time.Now()
	r.rep.DetachedAfter = r.detachedAt.Sub(r.start)
	r.cfg.Logf("spill %s: route detached %.1fs after the first record", r.cfg.Variant, r.rep.DetachedAfter.Seconds())

	if r.cfg.Variant != Plain {
		if !r.sleepUntil(ctx, r.detachedAt.Add(time.Second)) {
			return
		}
		r.excludeFrom = time.Now()
		if r.cfg.Variant == Kill {
			first.Kill()
			r.cfg.Logf("spill kill: worker %s SIGKILLed while detached", first.Name)
		}
		next, readyAt := r.startWorker(ctx)
		if next == nil || readyAt.IsZero() {
			return
		}
		r.excludeTo = readyAt.Add(settleAfterReady)
		r.rep.Rebalance = r.excludeTo.Sub(r.excludeFrom)
		// The new worker owns partitions while the spill topic holds
		// records: it must spill too.
		if r.waitFor(ctx, newOwnerWait, func() bool { v, ok := r.detached(next); return ok && v == 1 }) {
			r.rep.NewOwnerDetached = time.Since(readyAt)
		} else {
			r.rep.problem("the new worker %s did not report the slow route detached within %s of being ready, while its spill topic held records", next.Name, newOwnerWait)
		}
	}

	stallEnd := r.start.Add(r.cfg.Stall)
	if r.cfg.Variant != Plain && stallEnd.Before(r.excludeTo.Add(3*time.Second)) {
		r.rep.problem("the stall (%s) ended before the rebalance window did plus 3s (%.1fs after the first record): too short to judge the fast route after it",
			r.cfg.Stall, r.excludeTo.Add(3*time.Second).Sub(r.start).Seconds())
	}
	if !r.sleepUntil(ctx, stallEnd) {
		return
	}
	for _, w := range r.live() {
		if v, ok := r.detached(w); !ok || v != 1 {
			r.rep.problem("worker %s reported the slow route detached=%v (answered %v) at the end of the stall", w.Name, v, ok)
		}
	}
	stopProducing()
	<-produced
	if err := r.prod.flush(ctx); err != nil {
		r.rep.problem("produce: %v", err)
	}
	r.sink.release()
	r.releasedAt = time.Now()
	r.cfg.Logf("spill %s: stall released, records stopped", r.cfg.Variant)

	if !r.drain(ctx) {
		return
	}
	r.final(ctx)
}

// sleepUntil waits until t; false when ctx ended first.
func (r *run) sleepUntil(ctx context.Context, t time.Time) bool {
	select {
	case <-time.After(time.Until(t)):
		return true
	case <-ctx.Done():
		r.rep.problem("cancelled: %v", ctx.Err())
		return false
	}
}

// keysOf returns the Idempotency-Keys of the ledger's records (only the
// final batch's, with finalOnly).
func (r *run) keysOf(finalOnly bool) []string {
	cs, ledger := r.prod.records()
	var out []string
	for _, c := range cs {
		if !finalOnly || ledger[c].final {
			out = append(out, r.idem(c))
		}
	}
	return out
}

func (r *run) idem(c coord) string { return fmt.Sprintf("%s/%d/%d", r.orders, c.partition, c.offset) }

// drain waits, after the release, until the route re-attached on every
// worker, /slow answered every record, and both groups committed to the
// ends of their topics.
func (r *run) drain(ctx context.Context) bool {
	attached := func() bool {
		ws := r.live()
		for _, w := range ws {
			if v, ok := r.detached(w); !ok || v != 0 {
				return false
			}
		}
		return len(ws) > 0
	}
	if !r.waitFor(ctx, drainWait, attached) {
		r.rep.problem("the slow route did not re-attach on every worker within %s of the stall's end", drainWait)
		return false
	}
	r.rep.Reattached = time.Since(r.releasedAt)
	all := r.keysOf(false)
	if !r.waitFor(ctx, commitWait, func() bool { n, _ := r.sink.missing(routeSlow, all); return n == 0 }) {
		n, some := r.sink.missing(routeSlow, all)
		r.rep.problem("%d of %d records never answered at /slow (for example %v)", n, len(all), some)
	}
	if !r.waitFor(ctx, commitWait, func() bool { _, ok := r.atEnd(ctx, worker.SpillGroup(r.group), r.spill); return ok }) {
		d, _ := r.atEnd(ctx, worker.SpillGroup(r.group), r.spill)
		r.rep.problem("the spill group's commits did not reach the spill topic's ends within %s: %s", commitWait, d)
	} else {
		r.rep.Drained = time.Since(r.releasedAt)
	}
	if !r.waitFor(ctx, commitWait, func() bool { _, ok := r.atEnd(ctx, r.group, r.orders); return ok }) {
		d, _ := r.atEnd(ctx, r.group, r.orders)
		r.rep.problem("the group's commits did not reach the ends of %s within %s: %s", r.orders, commitWait, d)
	}
	return true
}

// final produces a batch after re-attaching: both routes get it, the
// spill topic does not grow, and the group commits it.
func (r *run) final(ctx context.Context) {
	before, err := r.ends(ctx, r.spill)
	if err != nil {
		r.rep.problem("spill topic's end offsets: %v", err)
		return
	}
	if err := r.prod.batch(ctx, finalRecords, finalSpread); err != nil {
		r.rep.problem("produce the final batch: %v", err)
		return
	}
	batch := r.keysOf(true)
	for _, route := range []string{routeFast, routeSlow} {
		if !r.waitFor(ctx, finalWait, func() bool { n, _ := r.sink.missing(route, batch); return n == 0 }) {
			n, some := r.sink.missing(route, batch)
			r.rep.problem("%d of the %d records produced after re-attaching never answered at /%s (for example %v)", n, len(batch), route, some)
		}
	}
	if !r.waitFor(ctx, commitWait, func() bool { _, ok := r.atEnd(ctx, r.group, r.orders); return ok }) {
		d, _ := r.atEnd(ctx, r.group, r.orders)
		r.rep.problem("after the final batch, the group's commits did not reach the ends of %s within %s: %s", r.orders, commitWait, d)
	}
	after, err := r.ends(ctx, r.spill)
	if err != nil {
		r.rep.problem("spill topic's end offsets: %v", err)
		return
	}
	r.rep.Spilled = 0
	for _, n := range after {
		r.rep.Spilled += int(n)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		r.rep.problem("the spill topic grew after re-attaching: end offsets %v, then %v", before, after)
	}
	for _, w := range r.live() {
		if v, ok := r.detached(w); !ok || v != 0 {
			r.rep.problem("after the final batch worker %s reports the slow route detached=%v (answered %v)", w.Name, v, ok)
		}
	}
}

// ends returns topic's end offsets by partition.
func (r *run) ends(ctx context.Context, topic string) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := r.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = l.Error()
	}
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// atEnd reports whether group's commits equal topic's end offsets (a
// partition with no records needs no commit), and describes both.
func (r *run) atEnd(ctx context.Context, group, topic string) (string, bool) {
	ends, err := r.ends(ctx, topic)
	if err != nil {
		return err.Error(), false
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	offs, err := r.adm.FetchOffsets(fctx, group)
	if err != nil {
		return err.Error(), false
	}
	ok := true
	committed := map[int32]int64{}
	for p, end := range ends {
		c, found := offs.Lookup(topic, p)
		committed[p] = -1
		if found && c.Err == nil {
			committed[p] = c.At
		}
		if end > 0 && committed[p] != end {
			ok = false
		}
	}
	return fmt.Sprintf("ends %v, committed %v", ends, committed), ok
}

// stopAll SIGTERMs every running worker and checks each exits 0 within
// its shutdown budget.
func (r *run) stopAll() {
	r.mu.Lock()
	ws := append([]*testkit.Worker(nil), r.workers...)
	r.mu.Unlock()
	for _, w := range ws {
		if w.Alive() {
			w.Term()
		}
	}
	for _, w := range ws {
		select {
		case <-w.Exited():
		case <-time.After(shutdownWait + 30*time.Second):
			r.rep.problem("worker %s did not exit within %s of SIGTERM", w.Name, shutdownWait+30*time.Second)
			w.Kill()
		}
		code, took, termed := w.Exit()
		if !termed {
			continue // killed by the scenario
		}
		r.rep.SIGTERMs = append(r.rep.SIGTERMs, took.Round(time.Millisecond))
		if code != 0 {
			r.rep.problem("worker %s exited %d after SIGTERM:\n%s", w.Name, code, tail(w.Stderr(), 4096))
		}
		if took > shutdownWait+time.Second {
			r.rep.problem("worker %s took %s from SIGTERM to exit (budget %s + 1s)", w.Name, took, shutdownWait)
		}
	}
}
