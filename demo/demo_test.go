package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/receiver-fanout/fanout/internal/testkit"
	"go.uber.org/goleak"
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
			congested = congested || (figs[i].Phase.Congested && rt.Congested)
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

// TestCongestionPausesOnlyItsReceiver runs the plain demo without
// --duration on a compressed timeline (congestion 1s after the join, for
// 4s) and checks what it shows: records reach every route, orders pauses
// while its congested route is stuck and recovers after, payments keeps
// delivering meanwhile, and the demo stops by itself once orders has
// recovered.
func TestCongestionPausesOnlyItsReceiver(t *testing.T) {
	rec := &recorder{}
	o := Options{
		HTTPAddr: "127.0.0.1:0", Plain: true, Rate: 100, Version: "test",
		congestAfter: time.Second, congestFor: 4 * time.Second, congestDelay: 500 * time.Millisecond,
		tick: 100 * time.Millisecond, observe: rec.add,
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

	// The alert conditions named the congested route and its receiver.
	var sawAlert, sawReceiverAlert bool
	for _, f := range figs[s.pauseFrom : s.pauseTo+1] {
		for _, a := range f.Alerts {
			sawAlert = sawAlert || (a.Name == alertRouteCongested && a.Target == "orders/congested")
			sawReceiverAlert = sawReceiverAlert || (a.Name == alertReceiverPaused && a.Target == topicOrders)
		}
	}
	if !sawAlert {
		t.Error("FanoutRouteCongested{orders/congested} never held while orders was paused")
	}
	if !sawReceiverAlert {
		t.Error("FanoutReceiverPaused{orders} never held while orders was paused")
	}
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
	m := newModel(lipgloss.NewRenderer(io.Discard), "127.0.0.1:8080")
	next, _ := m.Update(figuresMsg(most))
	view := next.View()
	paused := fmt.Sprintf("%d/%d paused", most.Receiver(topicOrders).Paused(), receiverParts)
	for _, want := range []string{"GOALS", "orders", "payments", "CONGESTED", paused, alertPartitionPaused, "for: durations not applied"} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %q:\n%s", want, view)
		}
	}
}

// busiestFigures is the fullest the live view gets: both receivers with
// every route congested, large counts, long details and every alert.
func busiestFigures() Figures {
	parts := make([]PartitionFigures, receiverParts)
	for i := range parts {
		parts[i] = PartitionFigures{ID: int32(i), Paused: true}
	}
	route := func(name string) RouteFigures {
		return RouteFigures{Name: name, Delivered: 123456789, Rate: 12345, P99: 2500 * time.Millisecond,
			Retries: 9876543, DeadLetters: 98765, Depth: 200, Capacity: 200, Congested: true}
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
	for _, name := range alertNames {
		f.Alerts = append(f.Alerts, Alert{Name: name, Severity: "critical", Target: "payments/congested,0,1,2,3", Value: strings.Repeat("v", 40)})
	}
	return f
}

// TestLiveViewFits80x24: the live view of the busiest moment fits the
// classic 80×24 terminal, which it also assumes before the terminal's size
// is known; a smaller terminal gets a cut view that says what it needs.
func TestLiveViewFits80x24(t *testing.T) {
	f := busiestFigures()
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
			var mdl tea.Model = newModel(lipgloss.NewRenderer(io.Discard), "127.0.0.1:8080")
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
			for _, want := range []string{"GOALS", "ALERTS", "metrics 127.0.0.1:8080", "  audit ", "123456789", "CONGESTED", "4/4 paused", "payments", alertNames[0]} {
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

// TestVerdicts checks the goals and alert conditions on hand-made
// figures: orders paused by its congested route, payments at full rate.
func TestVerdicts(t *testing.T) {
	partitions := func(paused bool) []PartitionFigures {
		var ps []PartitionFigures
		for i := range int32(receiverParts) {
			ps = append(ps, PartitionFigures{ID: i, Paused: paused})
		}
		return ps
	}
	f := Figures{
		Elapsed: 20 * time.Second, Ready: true,
		Phase: Phase{Joined: true, JoinedAt: time.Second, Start: 9 * time.Second, End: 19 * time.Second, Congested: true},
		Receivers: []ReceiverFigures{
			{Topic: topicOrders, ProduceRate: 400, Partitions: partitions(true), LagSeconds: 400, Routes: []RouteFigures{
				{Name: routeFast, P99: time.Millisecond, Capacity: 200},
				{Name: routeSlow, P99: 50 * time.Millisecond, Capacity: 200},
				{Name: routeCongested, Depth: 200, Capacity: 200, Congested: true, P99: 2500 * time.Millisecond},
			}},
			{Topic: topicPayments, ProduceRate: 400, IngestRate: 398, Partitions: partitions(false), Routes: []RouteFigures{
				{Name: routeFast, Rate: 398, P99: time.Millisecond, Capacity: 200},
				{Name: routeSlow, Rate: 398, P99: 50 * time.Millisecond, Capacity: 200},
				{Name: routeFlaky, Rate: 360, Capacity: 200, RecentDeadLetters: 3, ErrorRatio: 0.1, AttemptRate: 400},
			}},
		},
	}
	var mem verdictMemory
	goals := mem.goals(&f)
	for i, g := range goals {
		if g.State != GoalMet {
			t.Errorf("goal %d %q: state %d (%s), want met", i+1, g.Title, g.State, g.Detail)
		}
	}
	got := map[string]bool{}
	for _, a := range alerts(&f) {
		got[a.Name+"{"+a.Target+"}"] = true
	}
	for _, want := range []string{
		"FanoutReceiverPaused{orders}", "FanoutPartitionPaused{orders/0,1,2,3}", "FanoutConsumerLagHigh{orders}",
		"FanoutRouteCongested{orders/congested}", "FanoutRouteLatencyHigh{orders/congested}",
		"FanoutRouteErrorRatioHigh{payments/flaky}", "FanoutDeadLetters{payments/flaky}",
	} {
		if !got[want] {
			t.Errorf("alert %s does not hold; got %v", want, got)
		}
	}
	if len(got) != 7 {
		t.Errorf("alerts %v, want exactly 7", got)
	}

	// Payments falling behind while orders is paused breaks goal 3.
	f.Receivers[1].IngestRate = 100
	if g := mem.goals(&f)[2]; g.State != GoalFailing {
		t.Errorf("goal 3 with payments at 100/s of 400/s: state %d (%s), want failing", g.State, g.Detail)
	}
}

// TestAlertNamesAreShipped: every alert the demo evaluates is a rule of
// alerting/rules.yml.
func TestAlertNamesAreShipped(t *testing.T) {
	rules, err := os.ReadFile("../alerting/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range alertNames {
		if !strings.Contains(string(rules), "- alert: "+name+"\n") {
			t.Errorf("alert %s is not in alerting/rules.yml", name)
		}
	}
}

// TestP99 interpolates within buckets as histogram_quantile does.
func TestP99(t *testing.T) {
	was := &routeCounters{}
	now := &routeCounters{count: 100, buckets: []bucket{{0.001, 0}, {0.0025, 50}, {0.005, 100}}}
	if got := p99(was, now); got < 4900*time.Microsecond || got > 5*time.Millisecond {
		t.Errorf("p99 = %s, want just under 5ms", got)
	}
	if got := p99(now, now); got != -1 {
		t.Errorf("p99 without observations = %s, want -1", got)
	}
}
