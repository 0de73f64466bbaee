package soak

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receiver-fanout/fanout/config"
	"github.com/receiver-fanout/fanout/internal/testkit"
	"github.com/receiver-fanout/fanout/routes"
	"github.com/receiver-fanout/fanout/worker"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is one soak run.
type Config struct {
	Brokers []string
	// Restart restarts the broker keeping its data; nil when it cannot be
	// restarted (kfake), so the schedule has no broker restarts.
	Restart func() error
	Binary  string // the built fanout binary
	Seed    uint64
	// Faults is how long faults keep coming; Settle bounds how long after
	// the last one every partition may take to commit up to its end.
	Faults, Settle time.Duration
	// Rate is data records a second, over all receivers.
	Rate int
	// Prefix makes topic and group names unique to the run.
	Prefix string
	Dir    string // scratch space (config file)
	Logf   func(format string, args ...any)
}

// The run's shape.
const (
	receivers    = 3
	partitions   = 4
	maxWorkers   = 3
	shutdownWait = 5 * time.Second // FANOUT_SHUTDOWN_TIMEOUT of the workers
	largeBytes   = 600 << 10
	txnBatch     = 20
	// The spill route: a small buffer, so that a stall congests it at
	// once, and a short spill.after (see spillStallMin).
	spillBuffer     = 32
	spillAfter      = time.Second
	spillPartitions = 2 // fewer than the receivers': original partition mod 2

	abortedPrefix = "aborted-"
)

// Report is what a run found. Problems empty means every promise held.
type Report struct {
	Schedule  Schedule
	Problems  []string
	Records   int           // committed data records checked at every route
	Aborted   int           // records of aborted transactions produced
	Spilled   int           // records parked in the spill topics, each checked at the spill route
	Detaches  int           // times a worker detached the spill route (its log says so)
	Converged time.Duration // from the last fault until every commit reached its end
	// SIGTERMs is how long each SIGTERMed worker took to exit.
	SIGTERMs  []time.Duration
	PeakRSS   int64 // the largest peak RSS of any worker, bytes
	WorstCase int64 // the configuration's worst case, bytes
	Workers   int   // worker processes started
}

func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// String summarises the report.
func (r *Report) String() string {
	var b strings.Builder
	maxTerm := time.Duration(0)
	for _, d := range r.SIGTERMs {
		maxTerm = max(maxTerm, d)
	}
	fmt.Fprintf(&b, "soak seed %d: %d events, %d workers started, %d committed records checked at every route, %d records of aborted transactions produced\n",
		r.Schedule.Seed, len(r.Schedule.Events), r.Workers, r.Records, r.Aborted)
	fmt.Fprintf(&b, "  the spill route detached %d times and parked %d records in its spill topics (each checked at the route)\n", r.Detaches, r.Spilled)
	fmt.Fprintf(&b, "  converged %.1fs after the last fault; %d SIGTERMs, slowest exit %.2fs (budget %s + 1s); peak RSS %d MiB of a worst case of %d MiB\n",
		r.Converged.Seconds(), len(r.SIGTERMs), maxTerm.Seconds(), shutdownWait, r.PeakRSS>>20, r.WorstCase>>20)
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  PROBLEM: %s\n", p)
	}
	return b.String()
}

// run is one soak run's state.
type run struct {
	cfg      Config
	rep      *Report
	sinks    *sinks
	topics   []string
	spills   []string // the spill route's spill topic, per receiver
	copy     string
	group    string
	cfgPath  string
	worstEnv []string

	mu      sync.Mutex // protects workers and the report's exit figures
	workers []*testkit.Worker
	nextID  int

	data   *kgo.Client // steady producer
	admCl  *kgo.Client
	adm    *kadm.Client
	txnN   int
	dataN  atomic.Int64
	txn    *kgo.Client
	lastAt time.Time // the last fault
}

// Run executes a soak run and reports what it found. The error is for a
// run that could not be set up; broken promises are the report's Problems.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 300
	}
	sched := NewSchedule(cfg.Seed, Options{Faults: cfg.Faults, Restarts: cfg.Restart != nil, MaxWorkers: maxWorkers})
	r := &run{cfg: cfg, rep: &Report{Schedule: sched}, sinks: newSinks(), group: cfg.Prefix + "-group"}
	defer r.sinks.close()
	cfg.Logf("%s", sched)
	defer r.close()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { defer close(watched); r.watchOffsets(watchCtx) }()
	prodCtx, stopProducing := context.WithCancel(ctx)
	produced := make(chan struct{})
	go func() { defer close(produced); r.produceSteadily(prodCtx) }()

	start := time.Now()
	for _, e := range sched.Events {
		if d := time.Until(start.Add(e.At)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		r.apply(ctx, e)
	}
	stopProducing()
	<-produced
	r.sinks.endStall("")
	r.sinks.burst.Store(false)
	if err := r.data.Flush(ctx); err != nil {
		r.rep.problem("flush the steady producer: %v", err)
	}
	r.lastAt = time.Now()
	r.settle(ctx)
	stopWatch()
	<-watched
	r.stopAll()
	r.verify(ctx)
	return r.rep, nil
}

// close releases the run's clients, and kills any worker still running
// after a setup failure.
func (r *run) close() {
	r.mu.Lock()
	for _, w := range r.workers {
		if w.Alive() {
			w.Kill()
		}
	}
	r.mu.Unlock()
	for _, cl := range []*kgo.Client{r.data, r.txn, r.admCl} {
		if cl != nil {
			cl.Close()
		}
	}
}

func (r *run) setup(ctx context.Context) error {
	for i := range receivers {
		r.topics = append(r.topics, fmt.Sprintf("%s-r%d", r.cfg.Prefix, i))
		r.spills = append(r.spills, fmt.Sprintf("%s-r%d-spill", r.cfg.Prefix, i))
	}
	r.copy = r.topics[0] + "-copy"
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.cfg.Brokers...))
	if err != nil {
		return err
	}
	r.admCl, r.adm = cl, kadm.NewClient(cl)
	for _, c := range []struct {
		n      int32
		topics []string
	}{{partitions, append([]string{r.copy}, r.topics...)}, {spillPartitions, r.spills}} {
		resp, err := r.adm.CreateTopics(ctx, c.n, 1, nil, c.topics...)
		if err != nil {
			return fmt.Errorf("create topics: %w", err)
		}
		for _, t := range resp.Sorted() {
			if t.Err != nil {
				return fmt.Errorf("create topic %s: %w", t.Topic, t.Err)
			}
		}
	}
	r.data, err = kgo.NewClient(kgo.SeedBrokers(r.cfg.Brokers...), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(2<<20), kgo.MaxBufferedRecords(10000))
	if err != nil {
		return err
	}
	if err := r.newTxn(); err != nil {
		return err
	}
	var yaml strings.Builder
	yaml.WriteString("receivers:\n")
	for i, t := range r.topics {
		fmt.Fprintf(&yaml, "  - topic: %s\n    max_inflight: 500\n    max_inflight_mib: 8\n    routes:\n", t)
		for _, route := range []string{RouteFast, RouteSlow, RouteStall, RouteFlaky} {
			workers := map[string]int{RouteFast: 4, RouteSlow: 8, RouteStall: 2, RouteFlaky: 4}[route]
			fmt.Fprintf(&yaml, "      - {name: %s, type: http, workers: %d, buffer: 256, retry: {initial_backoff: 20ms, max_backoff: 500ms}, http: {url: %q, timeout: 2s}}\n",
				route, workers, r.sinks.url(route))
		}
		fmt.Fprintf(&yaml, "      - {name: %s, type: http, workers: 2, buffer: %d, retry: {initial_backoff: 20ms, max_backoff: 500ms}, http: {url: %q, timeout: 2s}, spill: {topic: %s, after: %s}}\n",
			RouteSpill, spillBuffer, r.sinks.url(RouteSpill), r.spills[i], spillAfter)
		if i == 0 {
			fmt.Fprintf(&yaml, "      - {name: copy, type: kafka, kafka: {topic: %s}}\n", r.copy)
		}
	}
	r.cfgPath = filepath.Join(r.cfg.Dir, "soak.yaml")
	if err := os.WriteFile(r.cfgPath, []byte(yaml.String()), 0o600); err != nil {
		return err
	}
	env := []string{
		"FANOUT_BROKERS=" + strings.Join(r.cfg.Brokers, ","),
		"FANOUT_GROUP=" + r.group,
		"FANOUT_CONFIG=" + r.cfgPath,
		"FANOUT_COMMIT_INTERVAL=200ms",
		"FANOUT_SHUTDOWN_TIMEOUT=" + shutdownWait.String(),
		"FANOUT_SESSION_TIMEOUT=6s",
		"FANOUT_REBALANCE_TIMEOUT=10s",
		"FANOUT_REVOKE_TIMEOUT=3s",
		"FANOUT_FETCH_MAX_BYTES=4194304",
		"FANOUT_LOG_LEVEL=warn",
	}
	e, f, err := loadConfig(env, r.cfgPath)
	if err != nil {
		return fmt.Errorf("soak configuration: %w", err)
	}
	r.rep.WorstCase = worker.WorstCase(e, f).Total()
	r.worstEnv = append(env, "GOMEMLIMIT="+strconv.FormatInt(r.rep.WorstCase, 10))
	return nil
}

// loadConfig reads the workers' configuration as the worker would.
func loadConfig(env []string, path string) (config.Env, *config.File, error) {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return config.Env{}, nil, err
		}
		defer os.Unsetenv(k)
	}
	e, err := config.LoadEnv()
	if err != nil {
		return e, nil, err
	}
	f, err := config.LoadFile(path, os.LookupEnv)
	return e, f, err
}

func (r *run) newTxn() error {
	if r.txn != nil {
		r.txn.Close()
	}
	var err error
	r.txn, err = kgo.NewClient(kgo.SeedBrokers(r.cfg.Brokers...), kgo.TransactionalID(r.cfg.Prefix+"-txn"),
		kgo.TransactionTimeout(10*time.Second))
	return err
}

// produceSteadily produces data records round-robin over the receivers at
// the configured rate until ctx ends.
func (r *run) produceSteadily(ctx context.Context) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	per := max(1, r.cfg.Rate/20)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for range per {
			n := r.dataN.Add(1)
			topic := r.topics[n%receivers]
			r.data.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte("k" + strconv.FormatInt(n%17, 10)),
				Value: []byte("d-" + strconv.FormatInt(n, 10))}, nil)
		}
	}
}

func (r *run) apply(ctx context.Context, e Event) {
	r.cfg.Logf("soak %7.2fs %s", e.At.Seconds(), e.Kind)
	switch e.Kind {
	case Join:
		if r.running() < maxWorkers {
			r.start()
		}
	case Term, Kill:
		r.mu.Lock()
		var live []*testkit.Worker
		for _, w := range r.workers {
			if w.Alive() {
				live = append(live, w)
			}
		}
		r.mu.Unlock()
		if len(live) == 0 {
			return
		}
		w := live[e.Pick%len(live)]
		if e.Kind == Kill {
			w.Kill()
		} else {
			w.Term()
		}
	case BrokerRestart:
		if err := r.cfg.Restart(); err != nil {
			r.rep.problem("broker restart at %.1fs: %v", e.At.Seconds(), err)
		}
	case StallStart:
		r.sinks.startStall(RouteStall)
	case StallEnd:
		r.sinks.endStall(RouteStall)
	case SpillStallStart:
		r.sinks.startStall(RouteSpill)
	case SpillStallEnd:
		r.sinks.endStall(RouteSpill)
	case BurstStart:
		r.sinks.burst.Store(true)
	case BurstEnd:
		r.sinks.burst.Store(false)
	case TxnCommit, TxnAbort:
		r.transaction(ctx, e.Kind == TxnCommit, r.topics[e.Pick%receivers])
	case Large:
		v := make([]byte, largeBytes)
		copy(v, "d-large-"+strconv.FormatInt(r.dataN.Add(1), 10)+"-")
		r.data.Produce(ctx, &kgo.Record{Topic: r.topics[e.Pick%receivers], Value: v}, nil)
	}
}

// transaction produces a batch in a transaction and commits or aborts it.
// A batch whose commit failed is simply not committed: the checks read
// what the log holds.
func (r *run) transaction(ctx context.Context, commit bool, topic string) {
	fail := func(err error) {
		r.cfg.Logf("soak transaction: %v (new producer)", err)
		_ = r.txn.EndTransaction(ctx, kgo.TryAbort)
		if err := r.newTxn(); err != nil {
			r.rep.problem("transactional producer: %v", err)
		}
	}
	if err := r.txn.BeginTransaction(); err != nil {
		fail(err)
		return
	}
	for range txnBatch {
		r.txnN++
		v := "t-" + strconv.Itoa(r.txnN)
		if !commit {
			v = abortedPrefix + strconv.Itoa(r.txnN)
			r.rep.Aborted++
		}
		tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := r.txn.ProduceSync(tctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr()
		cancel()
		if err != nil {
			fail(err)
			return
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := r.txn.EndTransaction(tctx, kgo.TransactionEndTry(commit)); err != nil {
		fail(err)
	}
}

func (r *run) running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, w := range r.workers {
		if w.Alive() {
			n++
		}
	}
	return n
}

func (r *run) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	w, err := testkit.StartWorker(r.cfg.Binary, "soak-"+strconv.Itoa(r.nextID), r.worstEnv, func(format string, args ...any) {
		r.cfg.Logf("soak "+format, args...)
	})
	if err != nil {
		r.rep.problem("start worker %d: %v", r.nextID, err)
		return
	}
	r.workers = append(r.workers, w)
	r.rep.Workers++
}

// watchOffsets reads the committed offsets of the group and of its spill
// group until ctx ends and reports any that went backwards.
func (r *run) watchOffsets(ctx context.Context) {
	last := map[string]int64{}
	for ctx.Err() == nil {
		for _, group := range []string{r.group, worker.SpillGroup(r.group)} {
			offs, err := r.adm.FetchOffsets(ctx, group)
			if err != nil {
				continue
			}
			offs.Each(func(o kadm.OffsetResponse) {
				k := fmt.Sprintf("%s %s/%d", group, o.Topic, o.Partition)
				if o.Err == nil && o.At >= 0 {
					if o.At < last[k] {
						r.rep.problem("committed offset of %s went backwards: %d after %d", k, o.At, last[k])
					}
					last[k] = max(last[k], o.At)
				}
			})
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// settle makes sure a worker runs and waits, within Settle, until every
// receiver partition's committed offset reaches its end offset, and every
// spill topic partition's the same in the spill group, and then until no
// running worker has a route detached.
func (r *run) settle(ctx context.Context) {
	for r.running() < 2 {
		r.start()
	}
	deadline := r.lastAt.Add(r.cfg.Settle)
	atEnd := false
	for {
		var why string
		if !atEnd {
			var ok bool
			why, ok = r.atEnd(ctx)
			if ok {
				atEnd = true
				r.rep.Converged = time.Since(r.lastAt)
			}
		}
		if atEnd {
			detached := r.detached(ctx)
			if len(detached) == 0 {
				return
			}
			why = fmt.Sprintf("the spill topics are drained, yet routes are still detached: %v", detached)
		}
		if time.Now().After(deadline) {
			if !atEnd {
				why = "commits have not reached the end offsets: " + why
			}
			r.rep.problem("%s after the last fault, %s", r.cfg.Settle, why)
			return
		}
		select {
		case <-ctx.Done():
			r.rep.problem("cancelled while settling")
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// atEnd tells whether every receiver partition's committed offset in the
// group, and every spill topic partition's in the spill group, is its end
// offset; if not, it says which are not.
func (r *run) atEnd(ctx context.Context) (string, bool) {
	var behind []string
	for _, c := range []struct {
		group  string
		topics []string
	}{{r.group, r.topics}, {worker.SpillGroup(r.group), r.spills}} {
		ends, err := r.adm.ListEndOffsets(ctx, c.topics...)
		if err != nil {
			return err.Error(), false
		}
		offs, err := r.adm.FetchOffsets(ctx, c.group)
		if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return err.Error(), false
		}
		ends.Each(func(o kadm.ListedOffset) {
			got, found := offs.Lookup(o.Topic, o.Partition)
			// An empty spill partition has nothing to commit.
			if (found && got.At == o.Offset) || (!found && o.Offset == 0) {
				return
			}
			behind = append(behind, fmt.Sprintf("%s %s/%d at %d of %d", c.group, o.Topic, o.Partition, got.At, o.Offset))
		})
	}
	sort.Strings(behind)
	return strings.Join(behind, ", "), len(behind) == 0
}

// detached lists the routes a running worker reports detached
// (fanout_route_detached 1 on its /metrics), as worker topic/route.
func (r *run) detached(ctx context.Context) []string {
	r.mu.Lock()
	ws := append([]*testkit.Worker(nil), r.workers...)
	r.mu.Unlock()
	var out []string
	for _, w := range ws {
		if !w.Alive() {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.Addr+"/metrics", nil)
		if err != nil {
			continue
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out = append(out, w.Name+" (no /metrics: "+err.Error()+")")
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "fanout_route_detached{") && strings.HasSuffix(line, " 1") {
				out = append(out, w.Name+" "+strings.TrimSuffix(line, " 1"))
			}
		}
		resp.Body.Close()
	}
	return out
}

// stopAll SIGTERMs every running worker and waits for all to exit.
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
		code, took, termed := w.Exit()
		if !termed {
			continue // killed
		}
		r.rep.SIGTERMs = append(r.rep.SIGTERMs, took)
		if code != 0 {
			r.rep.problem("worker %s exited %d after SIGTERM:\n%s", w.Name, code, w.Stderr())
		}
		if took > shutdownWait+time.Second {
			r.rep.problem("worker %s took %s from SIGTERM to exit (budget %s + 1s)", w.Name, took, shutdownWait)
		}
	}
	for _, w := range ws {
		r.rep.Detaches += strings.Count(w.Stderr(), "route detached:")
		rss := w.PeakRSS()
		if rss == 0 {
			r.rep.problem("worker %s: no VmHWM read from /proc: its peak RSS is unknown", w.Name)
		}
		r.rep.PeakRSS = max(r.rep.PeakRSS, rss)
		if rss > r.rep.WorstCase {
			r.rep.problem("worker %s peak RSS %d MiB, over the worst case of %d MiB", w.Name, rss>>20, r.rep.WorstCase>>20)
		}
	}
}

// verify reads every receiver, the copy topic and the spill topics to
// their ends and checks that each committed record reached every route,
// each parked record is a committed record of its receiver and reached the
// spill route, and no aborted record reached any.
func (r *run) verify(ctx context.Context) {
	copied := map[string]bool{}
	for _, rec := range r.readAll(ctx, r.copy) {
		copied[string(rec.Value[:min(len(rec.Value), 32)])] = true
	}
	missing := map[string]int{}
	var examples []string
	miss := func(what, key string) {
		missing[what]++
		if len(examples) < 5 {
			examples = append(examples, what+" "+key)
		}
	}
	committed := map[string]bool{}
	for i, topic := range r.topics {
		for _, rec := range r.readAll(ctx, topic) {
			if rec.Attrs.IsControl() {
				continue
			}
			r.rep.Records++
			key := fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)
			if strings.HasPrefix(string(rec.Value), abortedPrefix) {
				r.rep.problem("record %s of an aborted transaction is in the committed log", key)
			} else {
				committed[key] = true
			}
			for _, route := range httpRoutes {
				if !r.sinks.received(route, key) {
					miss(route, key)
				}
			}
			if i == 0 && !copied[string(rec.Value[:min(len(rec.Value), 32)])] {
				miss("copy", key)
			}
		}
	}
	// A parked record names its original: it must be a committed record
	// of its receiver, and have reached the spill route (from the spill
	// topic, or directly before or after the detachment).
	for _, topic := range r.spills {
		for _, rec := range r.readAll(ctx, topic) {
			if rec.Attrs.IsControl() {
				continue
			}
			r.rep.Spilled++
			key, ok := parkedKey(rec)
			switch {
			case !ok:
				r.rep.problem("record %s/%d/%d of spill topic %s has no spill headers", rec.Topic, rec.Partition, rec.Offset, topic)
			case !committed[key]:
				r.rep.problem("spill topic %s parks %s, which is no committed record of a receiver", topic, key)
			case !r.sinks.received(RouteSpill, key):
				miss("spill (parked)", key)
			}
		}
	}
	if len(missing) > 0 {
		r.rep.problem("committed records that never reached a route: %v (for example %v)", missing, examples)
	}
	for v := range copied {
		if strings.HasPrefix(v, abortedPrefix) {
			r.rep.problem("an aborted record reached the copy route: %s", v)
		}
	}
	if seen := r.sinks.abortedSeen(); len(seen) > 0 {
		r.rep.problem("%d deliveries of aborted records, first %s", len(seen), seen[0])
	}
}

// parkedKey is the topic/partition/offset a record of a spill topic was
// parked from (its Idempotency-Key at the route).
func parkedKey(rec *kgo.Record) (string, bool) {
	var topic, part, off string
	for _, h := range rec.Headers {
		switch h.Key {
		case routes.SpillHeaderTopic:
			topic = string(h.Value)
		case routes.SpillHeaderPartition:
			part = string(h.Value)
		case routes.SpillHeaderOffset:
			off = string(h.Value)
		}
	}
	if topic == "" || part == "" || off == "" {
		return "", false
	}
	return topic + "/" + part + "/" + off, true
}

// readAll reads topic from the start to its end offsets, read committed,
// markers included (so the last offset of every partition is seen).
func (r *run) readAll(ctx context.Context, topic string) []*kgo.Record {
	ends, err := r.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		r.rep.problem("list end offsets of %s: %v", topic, err)
		return nil
	}
	want := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			parts[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.cfg.Brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		r.rep.problem("read %s: %v", topic, err)
		return nil
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			r.rep.problem("reading %s: %d partitions not read to their end", topic, len(want))
			break
		}
		fs.EachRecord(func(rec *kgo.Record) {
			out = append(out, rec)
			if end, ok := want[rec.Partition]; ok && rec.Offset >= end-1 {
				delete(want, rec.Partition)
			}
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out
}
