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
	// pauseFrom..pauseTo is a run of samples during which orders had
	// paused partitions while orders/congested was congested.
	pauseFrom, pauseTo int
	paused             bool
	// paymentsDuringPause is how many deliveries payments made meanwhile.
	paymentsDuringPause int64
	// recoveredAt is a later sample where orders flows again.
	recoveredAt int
	recovered   bool
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
	ordersPaused := func(i int) bool { return figs[i].Receiver(topicOrders).Paused() > 0 }
	for a := 0; a < len(figs); a++ {
		if !ordersPaused(a) {
			continue
		}
		b, congested := a, false
		for ; b+1 < len(figs) && ordersPaused(b+1); b++ {
		}
		for i := a; i <= b; i++ {
			rt := figs[i].Receiver(topicOrders).Route(routeCongested)
			congested = congested || (figs[i].Phase.Congested && rt.Congested())
		}
		grew := figs[b].Receiver(topicPayments).Delivered() - figs[a].Receiver(topicPayments).Delivered()
		if congested && grew > s.paymentsDuringPause {
			s.paused, s.pauseFrom, s.pauseTo, s.paymentsDuringPause = true, a, b, grew
		}
		a = b
	}
	if !s.paused {
		return s
	}
	consumedThen := figs[s.pauseTo].Receiver(topicOrders).Consumed
	for j := s.pauseTo + 1; j < len(figs); j++ {
		o := figs[j].Receiver(topicOrders)
		if figs[j].Phase.Over && o.Paused() == 0 && o.Consumed > consumedThen {
			s.recovered, s.recoveredAt = true, j
			break
		}
	}
	return s
}

func (s story) done() bool {
	return s.everyRouteDelivered && s.paused && s.paymentsDuringPause > 0 && s.recovered
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

// TestCongestionPausesOnlyItsReceiver runs the plain demo without
// --duration on a compressed timeline (congestion 1s after the join, for
// 4s; the monitor's clock 75 times faster) and checks what it shows:
// records reach every route, orders pauses while its congested route is
// stuck and recovers after, payments keeps delivering meanwhile, and the
// demo stops by itself once orders has recovered. The alerts: a critical
// one for orders fires once its condition held for its for: (both read
// from alerting/rules.yml here), payments raises none but on the route that
// fails by design, and promtool, given the series the demo scraped, reports
// the very alerts the demo showed, at every tick.
func TestCongestionPausesOnlyItsReceiver(t *testing.T) {
	rec := &recorder{}
	var mon *monitor // set when Run has returned
	o := Options{
		HTTPAddr: "127.0.0.1:0", Plain: true, Rate: 100, Version: "test",
		congestAfter: time.Second, congestFor: 4 * time.Second, congestDelay: 500 * time.Millisecond,
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
		t.Fatalf("Run stopped before the story was told: every route delivering, orders pausing and recovering while payments flows:\n%s", rec.describe())
	}
	if last := figs[len(figs)-1]; !recovered(last) || last.Elapsed-figs[s.recoveredAt].Elapsed < settle {
		t.Errorf("Run stopped at t=%s, want %s after orders recovered at t=%s", last.Elapsed, settle, figs[s.recoveredAt].Elapsed)
	}
	from, to := figs[s.pauseFrom], figs[s.pauseTo]
	t.Logf("orders paused t=%s–%s (congestion t=%s–%s); payments delivered %d meanwhile; orders flowing again at t=%s",
		from.Elapsed.Round(time.Millisecond), to.Elapsed.Round(time.Millisecond),
		to.Phase.Start.Round(time.Millisecond), to.Phase.End.Round(time.Millisecond),
		s.paymentsDuringPause, figs[s.recoveredAt].Elapsed.Round(time.Millisecond))

	page := checkAlerts(t, figs, "../alerting/rules.yml", replayStep)
	promtoolAgrees(t, "../alerting/rules.yml", mon, replayStep, ticksOf(figs))

	// The flaky route retried and dead-lettered.
	last := figs[len(figs)-1]
	for _, topic := range receiverTopics() {
		fl := last.Receiver(topic).Route(routeFlaky)
		if fl.Retries == 0 || fl.DeadLetters == 0 {
			t.Errorf("%s/flaky: %d retries, %d dead letters; want some of each", topic, fl.Retries, fl.DeadLetters)
		}
	}

	// The plain output: the intro, a status line a second, the summary.
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
	if !strings.Contains(out, "[congested]") || !strings.Contains(out, "CONGESTED") {
		t.Errorf("no status line shows the congestion:\n%s", out)
	}
	if l := lines[len(lines)-1]; !strings.HasPrefix(l, "fanout demo: stopping after") {
		t.Errorf("last line %q, want the summary", l)
	}
	for _, want := range []string{"  stops 3s after orders has resumed and caught up", "fanout demo: orders resumed and caught up at t=", "[recovered]"} {
		if !strings.Contains(out, want) {
			t.Errorf("the plain output lacks %q:\n%s", want, out)
		}
	}

	// The live view renders the same figures (no terminal: no colours):
	// the sample of the pause with the most orders partitions paused.
	most := from
	for _, f := range figs[s.pauseFrom : s.pauseTo+1] {
		if f.Receiver(topicOrders).Paused() > most.Receiver(topicOrders).Paused() {
			most = f
		}
	}
	m := newModel(lipgloss.NewRenderer(io.Discard), "127.0.0.1:8080", replayStep)
	next, _ := m.Update(figuresMsg(most))
	view := next.View()
	paused := fmt.Sprintf("%d/%d paused", most.Receiver(topicOrders).Paused(), receiverParts)
	for _, want := range []string{"GOALS", "orders", "payments", "CONGESTED", paused, "rules.yml every 15s"} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %q:\n%s", want, view)
		}
	}
	// The view of the tick the page fired shows it firing, against its for:.
	next, _ = m.Update(tea.WindowSizeMsg{Width: 80, Height: 40})
	next, _ = next.Update(figuresMsg(page.at))
	view = next.View()
	for _, want := range []string{page.alert.Name, "FIRING", "for " + dur(page.alert.For)} {
		if !strings.Contains(view, want) {
			t.Errorf("view of t=%s lacks %q:\n%s", page.at.Elapsed, want, view)
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
// rule's for: and fires only once its condition held that long; while
// orders is congested, one of the alerts the other rules step aside for
// (their expressions read its ALERTS series) fires for orders, and while
// such an alert fires, none of the rules that step aside for it is active
// for the same receiver; no alert of payments begins to hold during the
// congestion but on its flaky route, which fails by design. (Alerts of
// the first ticks may still be pending then: before the first commit,
// FanoutPartitionStalled's condition holds.) step is how far the
// monitor's clock moved a tick. It returns the first tick that alert fired.
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
	var page *fired
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
			if page == nil && (f.Phase.Congested || f.Phase.Over) && a.State == AlertFiring && sources[a.Name] && topic == topicOrders {
				page = &fired{at: f, alert: a}
			}
			if f.Phase.Congested && topic == topicPayments && a.Labels.Get("route") != routeFlaky && now-a.Held >= congestedAt {
				t.Errorf("t=%s: while orders is congested, payments raises %s{%s} (%s)", f.Elapsed, a.Name, a.Target(), alertStatus(&a))
			}
		}
	}
	if page == nil {
		t.Fatalf("none of %v fired for orders once the congestion began", slices.Sorted(maps.Keys(sources)))
	}
	t.Logf("%s{%s} fired at t=%s of the demo, its condition held %s (for: %s) on the monitor's clock",
		page.alert.Name, page.alert.Target(), page.at.Elapsed.Round(time.Millisecond), page.alert.Held, page.alert.For)
	return *page
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
// every route congested, large counts, long details and every alert.
func busiestFigures(t *testing.T) Figures {
	parts := make([]PartitionFigures, receiverParts)
	for i := range parts {
		parts[i] = PartitionFigures{ID: int32(i), Paused: true}
	}
	route := func(name string) RouteFigures {
		return RouteFigures{Name: name, Delivered: 123456789, Rate: 12345, P99: 2500 * time.Millisecond,
			Retries: 9876543, DeadLetters: 98765, Depth: 200, Capacity: 200, State: RouteCongested}
	}
	f := Figures{
		Elapsed: 3599 * time.Second, Ready: true,
		Phase: Phase{Joined: true, JoinedAt: time.Second, Start: 9 * time.Second, End: 19 * time.Second, Congested: true},
		Receivers: []ReceiverFigures{
			{Topic: topicOrders, ProduceRate: 12345, IngestRate: 12345, LagRecords: 123456789, LagSeconds: 12345.6, Partitions: parts,
				Routes: []RouteFigures{route(routeFast), route(routeSlow), route(routeFlaky), route(routeCongested), route(routeAudit)}},
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
			for _, want := range []string{"GOALS", "ALERTS", "metrics 127.0.0.1:8080", "  audit ", "123456789", "CONGESTED", "4/4 paused", "payments", first, "FIRING", "pending"} {
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

// TestGoals checks the goals on hand-made figures: orders paused by its
// congested route, payments at full rate; then payments falling behind.
func TestGoals(t *testing.T) {
	partitions := func(paused bool) []PartitionFigures {
		var ps []PartitionFigures
		for i := range int32(receiverParts) {
			ps = append(ps, PartitionFigures{ID: i, Paused: paused})
		}
		return ps
	}
	f := Figures{
		Tick: 20, Elapsed: 20 * time.Second, Ready: true,
		Phase: Phase{Joined: true, JoinedAt: time.Second, Start: 9 * time.Second, End: 19 * time.Second, Congested: true},
		Receivers: []ReceiverFigures{
			{Topic: topicOrders, ProduceRate: 400, Partitions: partitions(true), LagSeconds: 400, Routes: []RouteFigures{
				{Name: routeFast, P99: time.Millisecond, Capacity: 200},
				{Name: routeSlow, P99: 50 * time.Millisecond, Capacity: 200},
				{Name: routeCongested, Depth: 200, Capacity: 200, State: RouteCongested, P99: 2500 * time.Millisecond},
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
	for i, g := range mem.goals(&f) {
		if g.State != GoalMet {
			t.Errorf("goal %d %q: state %d (%s), want met", i+1, g.Title, g.State, g.Detail)
		}
	}
	if d := mem.goals(&f)[0].Detail; !strings.Contains(d, "orders paused, not judged") {
		t.Errorf("goal 1 judges the paused receiver: %s", d)
	}

	// Payments falling behind while orders is paused breaks goals 2 and 3.
	f.Receivers[1].IngestRate = 100
	goals := mem.goals(&f)
	for _, i := range []int{1, 2} {
		if goals[i].State != GoalFailing {
			t.Errorf("goal %d with payments at 100/s of 400/s: state %d (%s), want failing", i+1, goals[i].State, goals[i].Detail)
		}
	}
}
