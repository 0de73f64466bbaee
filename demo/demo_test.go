package demo

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/goccy/go-yaml"
	"github.com/prometheus/client_golang/prometheus"
	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.uber.org/goleak"

	"github.com/receiver-fanout/fanout/alerting"
	"github.com/receiver-fanout/fanout/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds every wait: generous, since the race detector on a busy
// machine slows everything; the waits end as soon as what they wait for
// happens.
const guard = 2 * time.Minute

// recorder keeps every sample of figures the demo takes.
type recorder struct {
	mu   sync.Mutex
	figs []Figures
}

func (r *recorder) add(f Figures) {
	r.mu.Lock()
	r.figs = append(r.figs, f)
	r.mu.Unlock()
}

func (r *recorder) all() []Figures {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Figures(nil), r.figs...)
}

// describe tells what the figures say, for a failure message: the story
// and a status line every second.
func (r *recorder) describe() string {
	figs := r.all()
	var b strings.Builder
	fmt.Fprintf(&b, "%+v\n", readStory(figs))
	for i, f := range figs {
		if i%10 == 0 || i == len(figs)-1 {
			b.WriteString(statusLine(f) + "\n")
		}
	}
	return b.String()
}

// story is what the figures tell about the congestion of orders.
type story struct {
	everyRouteDelivered bool
	// detachFrom..detachTo is the first run of samples in which
	// orders/congested was detached, from one during the congestion.
	detachFrom, detachTo int
	detached             bool
	// Over that run: the records produced to orders and consumed from
	// it, and the fewest any other route of orders delivered (slowest).
	produced, consumed, siblings int64
	slowest                      string
	// metAt is a sample of the run, or after it while the route was
	// still detached, at which goal 3 was met.
	metAt int
	met   bool
	// reattachedAt is the first later sample, once the congestion is
	// over, in which the route is attached again.
	reattachedAt int
	reattached   bool
}

func readStory(figs []Figures) story {
	var s story
	if len(figs) == 0 {
		return s
	}
	last := figs[len(figs)-1]
	s.everyRouteDelivered = len(last.Receivers) == 2
	for _, r := range last.Receivers {
		for _, rt := range r.Routes {
			s.everyRouteDelivered = s.everyRouteDelivered && rt.Delivered > 0
		}
	}
	congested := func(i int) *RouteFigures { return figs[i].Receiver(topicOrders).Route(routeCongested) }
	a := slices.IndexFunc(figs, func(f Figures) bool {
		return f.Phase.Congested && f.Receiver(topicOrders).Route(routeCongested).Detached()
	})
	if a < 0 {
		return s
	}
	b := a
	for ; b+1 < len(figs) && congested(b+1).Detached(); b++ {
	}
	s.detached, s.detachFrom, s.detachTo = true, a, b
	from, to := figs[a].Receiver(topicOrders), figs[b].Receiver(topicOrders)
	s.produced, s.consumed, s.siblings = to.Produced-from.Produced, to.Consumed-from.Consumed, -1
	for _, rt := range to.Routes {
		if rt.Name == routeCongested {
			continue
		}
		if n := rt.Delivered - from.Route(rt.Name).Delivered; s.siblings < 0 || n < s.siblings {
			s.siblings, s.slowest = n, rt.Name
		}
	}
	for j := a; j <= b; j++ {
		if !s.met && figs[j].Goals[2].State == GoalMet {
			s.met, s.metAt = true, j
		}
	}
	for j := b + 1; j < len(figs); j++ {
		if figs[j].Phase.Over && !congested(j).Detached() {
			s.reattached, s.reattachedAt = true, j
			break
		}
	}
	return s
}

func (s story) done() bool {
	return s.everyRouteDelivered && s.detached && s.reattached
}

// The compressed demo ticks every replayTick; the monitor's clock moves
// replayStep a tick, Prometheus's default scrape interval: 75 times the
// wall clock, so that the rules' for: durations pass within the
// congestion. (Much faster, and the worker's commit interval of 500ms
// looks like minutes without a commit to the rules.)
const (
	replayTick = 200 * time.Millisecond
	replayStep = 15 * time.Second
)

// TestCongestionStaysInsideItsRoute runs the plain demo without
// --duration on a compressed timeline (congestion 1s after the join, for
// 6s; orders/congested's spill.after 500ms; the monitor's clock 75 times
// faster) and checks what it shows: records reach every route;
// orders/congested detaches during the congestion, and as long as it is
// detached orders ingests what arrives and its other routes deliver it,
// while the route's records wait in its spill topic; goal 3 is met then;
// once the congestion is over the backlog drains, every parked record
// reaches the route and the route re-attaches; the demo stops by itself
// after that. The alerts:
// the rule on fanout_route_detached fires for orders/congested once it
// held its for: (read from alerting/rules.yml here), payments raises none
// but on the route that fails by design, and promtool, given the series
// the demo scraped, reports the very alerts the demo showed, at every
// tick.
func TestCongestionStaysInsideItsRoute(t *testing.T) {
	rec := &recorder{}
	var mon *monitor // set when Run has returned
	o := Options{
		HTTPAddr: "127.0.0.1:0", Plain: true, Rate: 100, Version: "test",
		// At 100 events a second orders/congested's queue (200) fills in
		// about 2s once each request takes 2s; it detaches 500ms later.
		congestAfter: time.Second, congestFor: 6 * time.Second, congestDelay: 2 * time.Second, spillAfter: 500 * time.Millisecond,
		tick: replayTick, virtualStep: replayStep, observe: rec.add, inspect: func(m *monitor) { mon = m },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout bytes.Buffer // written by Run's goroutine only, read after it returned
	var stderr testkit.LockedBuffer
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o, &stdout, &stderr) }()

	// Without --duration the plain output stops by itself once orders has
	// recovered.
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(guard):
		t.Fatalf("Run did not stop by itself within %s; figures:\n%s", guard, rec.describe())
	}

	figs := rec.all()
	s := readStory(figs)
	if !s.done() {
		t.Fatalf("Run stopped before the story was told: every route delivering, orders/congested detaching during the congestion and re-attaching after:\n%s", rec.describe())
	}
	last := figs[len(figs)-1]
	if !recovered(last) || last.Elapsed-figs[s.reattachedAt].Elapsed < settle {
		t.Errorf("Run stopped at t=%s, want %s after orders/congested re-attached at t=%s", last.Elapsed, settle, figs[s.reattachedAt].Elapsed)
	}
	from, to := figs[s.detachFrom], figs[s.detachTo]
	t.Logf("orders/congested detached t=%s–%s (the congestion t=%s–%s): orders produced %d, consumed %d, its slowest other route (%s) delivered %d meanwhile; goal 3 met at t=%v; re-attached at t=%s",
		from.Elapsed.Round(time.Millisecond), to.Elapsed.Round(time.Millisecond),
		to.Phase.Start.Round(time.Millisecond), to.Phase.End.Round(time.Millisecond),
		s.produced, s.consumed, s.slowest, s.siblings, figs[s.metAt].Elapsed.Round(time.Millisecond), figs[s.reattachedAt].Elapsed.Round(time.Millisecond))
	// While the route is detached orders keeps flowing: it consumes what
	// arrives and its other routes deliver it. (A paused receiver would
	// consume and deliver nothing; the bound leaves room for the records
	// in flight at either end of the window.)
	const flowing = 0.75
	if s.detachTo-s.detachFrom < 2 || s.produced <= 0 || float64(s.consumed) < flowing*float64(s.produced) || float64(s.siblings) < flowing*float64(s.produced) {
		t.Errorf("while orders/congested was detached (%d samples) orders consumed %d and %s delivered %d of %d produced, want at least %.0f%% each:\n%s",
			s.detachTo-s.detachFrom+1, s.consumed, s.slowest, s.siblings, s.produced, 100*flowing, rec.describe())
	}
	if !s.met {
		t.Errorf("goal 3 never met while orders/congested was detached:\n%s", rec.describe())
	}
	// Parked while detached, and every parked record delivered from the
	// spill topic once the route is attached again.
	sp := to.Receiver(topicOrders).Route(routeCongested).Spill
	if sp.Topic != spillTopic() || sp.DetachedAt < to.Phase.Start || sp.ReattachedAt >= 0 || sp.Spilled == 0 {
		t.Errorf("orders/congested's spill while detached: %+v", sp)
	}
	end := last.Receiver(topicOrders).Route(routeCongested).Spill
	if end.Spilled == 0 || end.Delivered < end.Spilled || end.Backlog != 0 || end.ReattachedAt < last.Phase.End {
		t.Errorf("orders/congested's spill at the end: %+v; want records parked, each delivered from %s, no backlog, re-attached after the congestion", end, spillTopic())
	}
	if g := last.Goals[2]; g.State != GoalMet {
		t.Errorf("at the end goal 3 is %d: %s", g.State, g.Detail)
	}

	detach := checkAlerts(t, figs, "../alerting/rules.yml", replayStep)
	promtoolAgrees(t, "../alerting/rules.yml", mon, replayStep, ticksOf(figs))

	// The flaky route retried and dead-lettered.
	for _, topic := range receiverTopics() {
		fl := last.Receiver(topic).Route(routeFlaky)
		if fl.Retries == 0 || fl.DeadLetters == 0 {
			t.Errorf("%s/flaky: %d retries, %d dead letters; want some of each", topic, fl.Retries, fl.DeadLetters)
		}
	}

	// The plain output: the intro, a status line a second, what the
	// spill did, the summary.
	out := stdout.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	status := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "t=") {
			status++
			if !strings.Contains(l, " orders: in ") || !strings.Contains(l, " payments: in ") || !strings.Contains(l, "alerts:") {
				t.Errorf("status line lacks a receiver or the alerts: %q", l)
			}
		}
	}
	if status < 3 {
		t.Errorf("%d status lines over %s, want one a second:\n%s", status, last.Elapsed, out)
	}
	if !strings.HasPrefix(lines[0], "fanout demo: embedded Kafka at 127.0.0.1:") {
		t.Errorf("first line %q", lines[0])
	}
	if l := lines[len(lines)-1]; !strings.HasPrefix(l, "fanout demo: stopping after") {
		t.Errorf("last line %q, want the summary", l)
	}
	// In this order: the intro, the congestion, the detachment and the
	// status lines that show it, the re-attachment, the recovery.
	at, prev := 0, "the start"
	for _, want := range []string{
		"  orders/congested has spill: congested for 500ms, it detaches to orders.spill.congested",
		"  stops 3s after orders has caught up with every route attached",
		"[congested]",
		"fanout demo: orders/congested detached at t=",
		" | congested ", " DETACHED backlog ",
		"fanout demo: orders/congested re-attached at t=",
		"fanout demo: orders caught up with every route attached at t=",
		"[recovered]",
	} {
		i := strings.Index(out[at:], want)
		if i < 0 {
			t.Errorf("the plain output lacks %q after %q:\n%s", want, prev, out)
			continue
		}
		at, prev = at+i+len(want), want
	}

	// The live view renders the same figures (no terminal: no colours):
	// the last sample of the detachment, then the last one.
	if !strings.Contains(statusLine(to), " | congested ") || !strings.Contains(statusLine(to), " DETACHED backlog ") {
		t.Errorf("the status line of a detached route: %s", statusLine(to))
	}
	m := newModel(lipgloss.NewRenderer(io.Discard), "127.0.0.1:8080", replayStep)
	next, _ := m.Update(figuresMsg(to))
	view := next.View()
	for _, want := range []string{"GOALS", "congestion stays inside its route", "orders", "payments", "DETACHED",
		fmt.Sprintf("↳ DETACHED since t=%s · backlog %d records, %.1fs old", secs(sp.DetachedAt), sp.Backlog, sp.BacklogAge),
		fmt.Sprintf("%d/%d paused", to.Receiver(topicOrders).Paused(), receiverParts), "rules.yml every 15s"} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %q:\n%s", want, view)
		}
	}
	next, _ = m.Update(figuresMsg(last))
	view = next.View()
	for _, want := range []string{fmt.Sprintf("↳ re-attached t=%s · was detached t=%s–%s · %d parked, %d delivered",
		secs(end.ReattachedAt), secs(end.DetachedAt), secs(end.ReattachedAt), end.Spilled, end.Delivered)} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %q:\n%s", want, view)
		}
	}
	// The view of the tick the detachment's alert fired shows it firing,
	// against its for:.
	next, _ = m.Update(tea.WindowSizeMsg{Width: 80, Height: 40})
	next, _ = next.Update(figuresMsg(detach.at))
	view = next.View()
	for _, want := range []string{detach.alert.Name, "FIRING", "for " + dur(detach.alert.For)} {
		if !strings.Contains(view, want) {
			t.Errorf("view of t=%s lacks %q:\n%s", detach.at.Elapsed, want, view)
		}
	}
}

// fired is the first tick at which an alert fired.
type fired struct {
	at    Figures
	alert Alert
}

// checkAlerts checks the alerts the compressed demo showed against the
// rules file, read here on its own: no rule failed; every alert has its
// rule's for: and fires only once its condition held that long; once
// orders is congested, an alert of a rule on fanout_route_detached fires
// for orders/congested; while one of the alerts the other rules step
// aside for (their expressions read its ALERTS series) fires, none of the
// rules that step aside for it is active for the same receiver; no alert
// of payments begins to hold during the congestion but on its flaky
// route, which fails by design. (Alerts of the first ticks may still be
// pending then: before the first commit, FanoutPartitionStalled's
// condition holds.) step is how far the monitor's clock moved a tick. It
// returns the first tick the detachment's alert fired.
func checkAlerts(t *testing.T, figs []Figures, rulesFile string, step time.Duration) fired {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
				For   string `yaml:"for"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	forOf := map[string]time.Duration{}
	mutedBy := map[string]map[string]bool{} // rule → the alerts it steps aside for
	sources := map[string]bool{}
	onDetached := map[string]bool{} // the rules that read fanout_route_detached
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			d, err := prommodel.ParseDuration(cmp.Or(r.For, "0s"))
			if err != nil {
				t.Fatalf("%s: rule %s: for: %v", rulesFile, r.Alert, err)
			}
			forOf[r.Alert] = time.Duration(d)
			e, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr)
			if err != nil {
				t.Fatalf("%s: rule %s: %v", rulesFile, r.Alert, err)
			}
			parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok && vs.Name == "fanout_route_detached" {
					onDetached[r.Alert] = true
				}
				if vs, ok := n.(*parser.VectorSelector); ok && vs.Name == alertsName {
					for _, m := range vs.LabelMatchers {
						if m.Name == labels.AlertName && m.Type == labels.MatchEqual {
							if mutedBy[r.Alert] == nil {
								mutedBy[r.Alert] = map[string]bool{}
							}
							mutedBy[r.Alert][m.Value], sources[m.Value] = true, true
						}
					}
				}
				return nil
			})
		}
	}
	if len(onDetached) == 0 {
		t.Fatalf("%s has no rule on fanout_route_detached", rulesFile)
	}
	var detach *fired
	congestedAt := time.Duration(-1) // on the monitor's clock
	for _, f := range figs {
		now := time.Duration(f.Tick) * step
		if f.Phase.Congested && congestedAt < 0 {
			congestedAt = now
		}
		if f.Problem != "" {
			t.Errorf("t=%s: %s", f.Elapsed, f.Problem)
		}
		firingSources := map[string]bool{} // name/topic
		for _, a := range f.Alerts {
			if a.State == AlertFiring && sources[a.Name] {
				firingSources[a.Name+"/"+a.Labels.Get("topic")] = true
			}
		}
		for _, a := range f.Alerts {
			topic := a.Labels.Get("topic")
			if want, ok := forOf[a.Name]; !ok || a.For != want {
				t.Errorf("t=%s: alert %s with for: %s; rules.yml has %v (%s)", f.Elapsed, a.Name, a.For, ok, want)
			}
			if a.State == AlertFiring && a.Held < a.For {
				t.Errorf("t=%s: %s{%s} fires after %s, before its for: %s", f.Elapsed, a.Name, a.Target(), a.Held, a.For)
			}
			for src := range mutedBy[a.Name] {
				if firingSources[src+"/"+topic] {
					t.Errorf("t=%s: %s{%s} is %s while %s fires for %s", f.Elapsed, a.Name, a.Target(), a.State, src, topic)
				}
			}
			if detach == nil && (f.Phase.Congested || f.Phase.Over) && a.State == AlertFiring && onDetached[a.Name] &&
				topic == topicOrders && a.Labels.Get("route") == routeCongested {
				detach = &fired{at: f, alert: a}
			}
			if f.Phase.Congested && topic == topicPayments && a.Labels.Get("route") != routeFlaky && now-a.Held >= congestedAt {
				t.Errorf("t=%s: while orders is congested, payments raises %s{%s} (%s)", f.Elapsed, a.Name, a.Target(), alertStatus(&a))
			}
		}
	}
	if detach == nil {
		t.Fatalf("none of %v fired for orders/%s once the congestion began", slices.Sorted(maps.Keys(onDetached)), routeCongested)
	}
	t.Logf("%s{%s} fired at t=%s of the demo, its condition held %s (for: %s) on the monitor's clock",
		detach.alert.Name, detach.alert.Target(), detach.at.Elapsed.Round(time.Millisecond), detach.alert.Held, detach.alert.For)
	return *detach
}

// ticksOf maps each tick to the alerts the demo showed then.
func ticksOf(figs []Figures) map[int][]Alert {
	out := map[int][]Alert{}
	for _, f := range figs {
		out[f.Tick] = f.Alerts
	}
	return out
}

// busiestFigures is the fullest the live view gets: both receivers with
// every route congested but orders/congested, detached with a large
// backlog, large counts, long details and every alert.
func busiestFigures(t *testing.T) Figures {
	parts := make([]PartitionFigures, receiverParts)
	for i := range parts {
		parts[i] = PartitionFigures{ID: int32(i), Paused: true}
	}
	route := func(name string) RouteFigures {
		return RouteFigures{Name: name, Delivered: 123456789, Rate: 12345, P99: 2500 * time.Millisecond,
			Retries: 9876543, DeadLetters: 98765, Depth: 200, Capacity: 200, State: RouteCongested}
	}
	detached := route(routeCongested)
	detached.State = RouteDetached
	detached.Spill = &SpillFigures{Topic: spillTopic(), After: 3 * time.Second, Spilled: 123456789, Delivered: 123456789,
		Backlog: 123456789, BacklogAge: 12345.6, DetachedAt: 3000 * time.Second, ReattachedAt: -1}
	f := Figures{
		Elapsed: 3599 * time.Second, Ready: true,
		Phase: Phase{Joined: true, JoinedAt: time.Second, Start: 9 * time.Second, End: 19 * time.Second, Congested: true},
		Receivers: []ReceiverFigures{
			{Topic: topicOrders, ProduceRate: 12345, IngestRate: 12345, LagRecords: 123456789, LagSeconds: 12345.6, Partitions: parts,
				Routes: []RouteFigures{route(routeFast), route(routeSlow), route(routeFlaky), detached, route(routeAudit)}},
			{Topic: topicPayments, ProduceRate: 12345, IngestRate: 12345, LagRecords: 123456789, LagSeconds: 12345.6, Partitions: parts,
				Routes: []RouteFigures{route(routeFast), route(routeSlow), route(routeFlaky), route(routeAudit)}},
		},
	}
	for i := range 3 {
		f.Goals = append(f.Goals, Goal{Title: strings.Repeat("t", 38), Detail: strings.Repeat("detail ", 20), State: GoalState(i % 3)})
	}
	for i, r := range shippedAlerts(t) {
		f.Alerts = append(f.Alerts, Alert{
			Name: r.name, Severity: r.labels.Get("severity"), State: AlertState(i % 2), For: r.forDur,
			Held: 59*time.Minute + 59*time.Second, Kept: i%3 == 0, Cleared: time.Hour, KeepFiringFor: 2 * time.Hour,
			Labels: labels.FromStrings(labels.AlertName, r.name, "topic", "payments-and-more", "route", "congested-route", "partition", "12"),
		})
	}
	f.Problem = strings.Repeat("a rule failed ", 10)
	return f
}

// TestLiveViewFits80x24: the live view of the busiest moment fits the
// classic 80×24 terminal, which it also assumes before the terminal's size
// is known; a smaller terminal gets a cut view that says what it needs.
func TestLiveViewFits80x24(t *testing.T) {
	f := busiestFigures(t)
	first := shippedAlerts(t)[0].name
	for _, tc := range []struct {
		name          string
		width, height int
		wantTooSmall  bool
	}{
		{"size unknown", 0, 0, false},
		{"80x24", 80, 24, false},
		{"120x40", 120, 40, false},
		{"60x20", 60, 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mdl tea.Model = newModel(lipgloss.NewRenderer(io.Discard), "127.0.0.1:8080", time.Second)
			if tc.width > 0 {
				mdl, _ = mdl.Update(tea.WindowSizeMsg{Width: tc.width, Height: tc.height})
			}
			mdl, _ = mdl.Update(figuresMsg(f))
			view := mdl.View()
			lines := strings.Split(view, "\n")
			maxW, maxH := 80, 24
			if tc.width > 0 {
				maxW, maxH = tc.width, tc.height
			}
			if len(lines) > maxH {
				t.Errorf("%d lines, want at most %d:\n%s", len(lines), maxH, view)
			}
			for i, l := range lines {
				if w := lipgloss.Width(l); w > maxW {
					t.Errorf("line %d is %d columns wide, want at most %d: %q", i+1, w, maxW, l)
				}
			}
			if got := strings.Contains(view, "this view needs 80×24"); got != tc.wantTooSmall {
				t.Errorf("says it needs 80×24: %v, want %v:\n%s", got, tc.wantTooSmall, view)
			}
			if tc.wantTooSmall {
				return
			}
			for _, want := range []string{"GOALS", "ALERTS", "metrics 127.0.0.1:8080", "  audit ", "123456789", "CONGESTED", "DETACHED", "↳ DETACHED since t=50m · backlog 123456789 records", "4/4 paused", "payments", first, "FIRING", "pending"} {
				if !strings.Contains(view, want) {
					t.Errorf("view lacks %q:\n%s", want, view)
				}
			}
			// What does not fit of the alerts is counted, never cut silently.
			if cut := strings.Contains(view, "… and "); cut != (maxH < 30) {
				t.Errorf("alerts counted as cut: %v on %d rows:\n%s", cut, maxH, view)
			}
		})
	}
}

// TestBusyPortFallsBack: when --http-addr is taken the demo serves on a
// free port and says so; --duration ends it.
func TestBusyPortFallsBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout bytes.Buffer
	var stderr testkit.LockedBuffer
	o := Options{HTTPAddr: ln.Addr().String(), Plain: true, Duration: 1500 * time.Millisecond, tick: 100 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), o, &stdout, &stderr) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(guard):
		t.Fatal("Run did not stop after --duration")
	}
	out := stdout.String()
	if !strings.Contains(out, ln.Addr().String()+" is busy") {
		t.Errorf("no fallback notice:\n%s", out)
	}
	if strings.Contains(strings.Split(out, "\n")[0], "http://"+ln.Addr().String()) {
		t.Errorf("claims to serve on the busy address:\n%s", out)
	}
}

// shippedAlerts are the alerting rules of alerting/rules.yml, as the demo
// loads them.
func shippedAlerts(t *testing.T) []*rule {
	t.Helper()
	m, err := newMonitor(alerting.RulesYAML, prometheus.NewRegistry(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var out []*rule
	for _, g := range m.groups {
		for _, r := range g {
			if !r.record {
				out = append(out, r)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("alerting/rules.yml has no alerting rule")
	}
	return out
}

// TestGoals checks the goals on hand-made figures: orders/congested
// detached while orders and its other routes keep their rate, payments at
// full rate; then another route of orders falling behind, and payments
// falling behind; the route attached again; and a congested route that
// does not detach in time during the scripted congestion (but may take
// its time before it).
func TestGoals(t *testing.T) {
	partitions := func(paused bool) []PartitionFigures {
		var ps []PartitionFigures
		for i := range int32(receiverParts) {
			ps = append(ps, PartitionFigures{ID: i, Paused: paused})
		}
		return ps
	}
	spill := func() *SpillFigures {
		return &SpillFigures{Topic: spillTopic(), After: 3 * time.Second, Spilled: 1000, Backlog: 900, BacklogAge: 4.5,
			DetachedAt: 12 * time.Second, ReattachedAt: -1}
	}
	f := Figures{
		Tick: 20, Elapsed: 20 * time.Second, Ready: true,
		Phase: Phase{Joined: true, JoinedAt: time.Second, Start: 9 * time.Second, End: 19 * time.Second, Congested: true},
		Receivers: []ReceiverFigures{
			{Topic: topicOrders, ProduceRate: 400, IngestRate: 400, Partitions: partitions(false), LagSeconds: 0.2, Routes: []RouteFigures{
				{Name: routeFast, Rate: 400, P99: time.Millisecond, Capacity: 200},
				{Name: routeSlow, Rate: 399, P99: 50 * time.Millisecond, Capacity: 200},
				{Name: routeFlaky, Rate: 396, Capacity: 200},
				{Name: routeCongested, Rate: 2, Capacity: 200, State: RouteDetached, P99: 2 * time.Second, Spill: spill()},
				{Name: routeAudit, Rate: 400, Capacity: 200},
			}},
			{Topic: topicPayments, ProduceRate: 400, IngestRate: 398, Partitions: partitions(false), Routes: []RouteFigures{
				{Name: routeFast, Rate: 398, P99: time.Millisecond, Capacity: 200},
				{Name: routeSlow, Rate: 398, P99: 50 * time.Millisecond, Capacity: 200},
				{Name: routeFlaky, Rate: 360, Capacity: 200},
			}},
		},
	}
	var mem verdictMemory
	start := f
	start.Tick = 1
	mem.goals(&start) // joined at tick 1
	goals := mem.goals(&f)
	for i, g := range goals {
		if g.State != GoalMet {
			t.Errorf("goal %d %q: state %d (%s), want met", i+1, g.Title, g.State, g.Detail)
		}
	}
	if want := "orders/congested detached; orders in 400/s of 400/s, other routes ≥ 396/s; backlog 900 (4.5s)"; goals[2].Detail != want {
		t.Errorf("goal 3: %q, want %q", goals[2].Detail, want)
	}

	// Another route of orders falling behind breaks goal 3; payments
	// falling behind breaks goal 2, not goal 3.
	orders, payments := &f.Receivers[0], &f.Receivers[1]
	orders.Route(routeSlow).Rate = 100
	if g := mem.goals(&f)[2]; g.State != GoalFailing || !strings.Contains(g.Detail, "other routes ≥ 100/s") {
		t.Errorf("goal 3 with orders/slow at 100/s: state %d (%s), want failing", g.State, g.Detail)
	}
	orders.Route(routeSlow).Rate = 399
	payments.IngestRate = 100
	goals = mem.goals(&f)
	if goals[1].State != GoalFailing || goals[2].State != GoalMet {
		t.Errorf("with payments at 100/s of 400/s: goal 2 %d (%s), goal 3 %d (%s); want failing, met", goals[1].State, goals[1].Detail, goals[2].State, goals[2].Detail)
	}
	payments.IngestRate = 398

	// Attached again: goal 3 says when it held.
	after := f
	after.Tick, after.Elapsed = 30, 30*time.Second
	after.Phase.Congested, after.Phase.Over = false, true
	after.Receivers = slices.Clone(f.Receivers)
	after.Receivers[0].Routes = slices.Clone(orders.Routes)
	back := after.Receivers[0].Route(routeCongested)
	back.State, back.Rate, back.Spill = RouteFlowing, 400, spill()
	back.Spill.Backlog, back.Spill.ReattachedAt = 0, 29*time.Second
	if g := mem.goals(&after)[2]; g.State != GoalMet || g.Detail != "held t=20s–20s while orders/congested was detached; attached again" {
		t.Errorf("goal 3 once attached again: state %d (%s), want met", g.State, g.Detail)
	}

	// Congested and not detached: waiting before the scripted congestion
	// and during its first spill.after plus detachSlack, failing after.
	var fresh verdictMemory
	fresh.goals(&start)
	stuck := after
	stuck.Receivers = slices.Clone(after.Receivers)
	stuck.Receivers[0].Routes = slices.Clone(after.Receivers[0].Routes)
	rt := stuck.Receivers[0].Route(routeCongested)
	rt.State, rt.Spill = RouteCongested, spill()
	rt.Spill.DetachedAt = -1
	stuck.Receivers[0].Partitions = partitions(true)
	for _, tc := range []struct {
		at        time.Duration
		congested bool
		want      GoalState
	}{
		{5 * time.Second, false, GoalWaiting}, // a catch-up before the script: congested since t=5s
		{9 * time.Second, false, GoalWaiting}, // still
		{10 * time.Second, true, GoalWaiting}, // the script's congestion began at t=9s
		{14 * time.Second, true, GoalWaiting}, // 5s into it: spill.after 3s plus detachSlack
		{14500 * time.Millisecond, true, GoalFailing},
	} {
		stuck.Tick, stuck.Elapsed = int(tc.at/time.Second), tc.at
		stuck.Phase = Phase{Joined: true, JoinedAt: time.Second, Start: 9 * time.Second, End: 19 * time.Second, Congested: tc.congested}
		if g := fresh.goals(&stuck)[2]; g.State != tc.want {
			t.Errorf("t=%s, congested since t=5s, the script's congestion on: %v: goal 3 state %d (%s), want %d", tc.at, tc.congested, g.State, g.Detail, tc.want)
		}
	}
}
