package demo

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Without --duration the plain output tells the whole story and stops:
// once orders has stayed recovered from the congestion (caught up, its
// congested route re-attached) for settle, or giveUp after the congestion
// ended if it never does.
const (
	settle = 3 * time.Second
	giveUp = time.Minute
)

// runPlain prints a few lines about the setup, then one status line a
// second until ctx ends or the worker stops; without --duration, until
// orders has recovered from the congestion (see recovered).
func runPlain(ctx context.Context, d *running, out io.Writer) error {
	auto := d.opts.Duration == 0
	for _, line := range d.intro() {
		fmt.Fprintln(out, line)
	}
	if auto {
		fmt.Fprintf(out, "  stops %s after %s has caught up with every route attached (about %s from now); --duration D runs for D instead\n",
			short(settle), topicOrders, short(d.expectedLength()))
	}
	tick := time.NewTicker(d.opts.tick)
	defer tick.Stop()
	every := max(1, int(time.Second/d.opts.tick))
	var last Figures
	// announced: orders was seen recovered; steady: since when it has
	// stayed so (-1: it is not now). The demo stops once it stayed so for
	// settle. spells: the detachments told so far.
	announced, steady := false, time.Duration(-1)
	spells := map[string][2]time.Duration{}
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, summary(last))
			return nil
		case <-d.workerExited:
			return nil // stop reports why
		case <-tick.C:
			last = d.sample()
			for _, line := range spillNews(last, spells) {
				fmt.Fprintln(out, line)
			}
			if n%every == 0 {
				fmt.Fprintln(out, statusLine(last))
			}
			if !auto {
				continue
			}
			switch ok := recovered(last); {
			case !ok:
				steady = -1
			case steady < 0:
				steady = last.Elapsed
			}
			if steady >= 0 && !announced {
				announced = true
				fmt.Fprintf(out, "fanout demo: %s caught up with every route attached at t=%s\n", topicOrders, secs(steady))
			}
			switch {
			case steady >= 0 && last.Elapsed-steady >= settle:
				fmt.Fprintln(out, summary(last))
				return nil
			case last.Phase.Over && last.Elapsed-last.Phase.End >= giveUp:
				fmt.Fprintf(out, "fanout demo: %s had not stayed caught up for %s, %s after the congestion ended\n", topicOrders, short(settle), short(giveUp))
				fmt.Fprintln(out, summary(last))
				return nil
			}
		}
	}
}

// recovered tells whether the congestion is over and orders flows again:
// no partition of any receiver paused and no route detached, records
// consumed, and the oldest record waiting younger than two seconds.
func recovered(f Figures) bool {
	o := f.Receiver(topicOrders)
	if !f.Phase.Over || o == nil || o.IngestRate <= 0 || o.LagSeconds >= 2 {
		return false
	}
	for i := range f.Receivers {
		if f.Receivers[i].Paused() > 0 || f.Receivers[i].anyDetached() {
			return false
		}
	}
	return true
}

// spillNews are the lines that tell a route detached or re-attached since
// told tells (which it updates).
func spillNews(f Figures, told map[string][2]time.Duration) []string {
	var lines []string
	for _, r := range f.Receivers {
		for _, rt := range r.Routes {
			sp := rt.Spill
			if sp == nil {
				continue
			}
			name := r.Topic + "/" + rt.Name
			was, ok := told[name]
			if !ok {
				was = [2]time.Duration{-1, -1}
			}
			if sp.DetachedAt >= 0 && sp.DetachedAt != was[0] {
				lines = append(lines, fmt.Sprintf("fanout demo: %s detached at t=%s: its records go to %s, %s is no longer held back by it",
					name, secs(sp.DetachedAt), sp.Topic, r.Topic))
			}
			if sp.ReattachedAt >= 0 && sp.ReattachedAt != was[1] {
				lines = append(lines, fmt.Sprintf("fanout demo: %s re-attached at t=%s: %s drained, %d records parked and %d delivered from it",
					name, secs(sp.ReattachedAt), sp.Topic, sp.Spilled, sp.Delivered))
			}
			told[name] = [2]time.Duration{sp.DetachedAt, sp.ReattachedAt}
		}
	}
	return lines
}

// expectedLength is roughly how long a plain run without --duration takes
// from now: the timeline, a catch-up (the spill backlog's drain) and the
// settling.
func (d *running) expectedLength() time.Duration {
	return d.opts.congestAfter + d.opts.congestFor + 10*time.Second + settle
}

// intro says what runs where, for both views.
func (d *running) intro() []string {
	lines := []string{
		fmt.Sprintf("fanout demo: embedded Kafka at %s, metrics at %s", strings.Join(d.cluster.addrs, ","), d.metricsURL()),
	}
	if d.notice != "" {
		lines = append(lines, "  note: "+d.notice)
	}
	var recv []string
	for _, r := range d.file.Receivers {
		var names []string
		for _, rt := range r.Routes {
			names = append(names, rt.Name)
		}
		recv = append(recv, fmt.Sprintf("%s (%d partitions) → %s", r.Topic, receiverParts, strings.Join(names, ", ")))
	}
	lines = append(lines,
		fmt.Sprintf("  %s; %d events/s each", strings.Join(recv, "; "), d.opts.Rate),
		fmt.Sprintf("  %s/%s takes %s a request from %s after the group is joined, for %s",
			topicOrders, routeCongested, short(d.opts.congestDelay), short(d.opts.congestAfter), short(d.opts.congestFor)),
	)
	for _, r := range d.file.Receivers {
		for _, rt := range r.Routes {
			if rt.Spill != nil {
				lines = append(lines, fmt.Sprintf("  %s/%s has spill: congested for %s, it detaches to %s and re-attaches once that is drained",
					r.Topic, rt.Name, short(rt.Spill.After), rt.Spill.Topic))
			}
		}
	}
	return lines
}

// statusLine is one compact line of figures:
//
//	t=12s [congested] orders: in 0/s lag 2345 (5.9s) paused 4/4 | fast 0/s p99 – q 0% | ... || payments: ... || goals 1:ok 2:ok 3:ok || alerts: FanoutRouteCongested{orders/congested} ...
func statusLine(f Figures) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t=%s [%s]", secs(f.Elapsed), phaseTag(f))
	for _, r := range f.Receivers {
		fmt.Fprintf(&b, " %s: in %s lag %d (%.1fs) paused %d/%d", r.Topic, perSec(r.IngestRate), r.LagRecords, r.LagSeconds, r.Paused(), len(r.Partitions))
		for _, rt := range r.Routes {
			fmt.Fprintf(&b, " | %s %s p99 %s q %.0f%%", rt.Name, perSec(rt.Rate), ms(rt.P99), 100*rt.Fill())
			if rt.Retries > 0 || rt.DeadLetters > 0 {
				fmt.Fprintf(&b, " r %d dl %d", rt.Retries, rt.DeadLetters)
			}
			if flag := routeFlag(&rt); flag != "" {
				b.WriteString(" " + flag)
			}
			if sp := rt.Spill; sp != nil && (rt.Detached() || sp.Spilled > 0) {
				fmt.Fprintf(&b, " backlog %d (%.1fs) spilled %d", sp.Backlog, sp.BacklogAge, sp.Spilled)
			}
		}
		b.WriteString(" ||")
	}
	b.WriteString(" goals")
	for i, g := range f.Goals {
		fmt.Fprintf(&b, " %d:%s", i+1, [...]string{"wait", "ok", "FAIL"}[g.State])
	}
	b.WriteString(" || alerts:")
	if len(f.Alerts) == 0 {
		b.WriteString(" none")
	}
	for i := range f.Alerts {
		fmt.Fprintf(&b, " %s{%s} %s", f.Alerts[i].Name, f.Alerts[i].Target(), alertStatus(&f.Alerts[i]))
	}
	if f.Problem != "" {
		b.WriteString(" || problem: " + f.Problem)
	}
	return b.String()
}

// alertStatus says where an alert stands against its for: (pending) or
// keep_firing_for: (cleared).
func alertStatus(a *Alert) string {
	switch {
	case a.State == AlertPending:
		return fmt.Sprintf("pending %s/%s", dur(a.Held), dur(a.For))
	case a.Kept:
		return fmt.Sprintf("FIRING cleared %s/%s", dur(a.Cleared), dur(a.KeepFiringFor))
	}
	return "FIRING " + dur(a.Held)
}

// phaseTag names where the timeline stands, in a word.
func phaseTag(f Figures) string {
	switch p := f.Phase; {
	case !p.Joined:
		return "joining"
	case p.Congested:
		return "congested"
	case p.Over:
		for i := range f.Receivers {
			if f.Receivers[i].Paused() > 0 {
				return "recovering"
			}
		}
		for i := range f.Receivers {
			if f.Receivers[i].anyDetached() {
				return "draining"
			}
		}
		return "recovered"
	}
	return "normal"
}

// summary is the last line: totals, and how the goals stood.
func summary(f Figures) string {
	var b strings.Builder
	fmt.Fprintf(&b, "fanout demo: stopping after %s:", secs(f.Elapsed))
	for _, r := range f.Receivers {
		fmt.Fprintf(&b, " %s %d produced, %d consumed, %d delivered;", r.Topic, r.Produced, r.Consumed, r.Delivered())
	}
	for i, g := range f.Goals {
		fmt.Fprintf(&b, " goal %d %s;", i+1, [...]string{"not judged", "met", "FAILING"}[g.State])
	}
	return strings.TrimSuffix(b.String(), ";")
}

// tail keeps the last lines written to it (the worker's log while the live
// view owns the terminal). Safe for concurrent use.
type tail struct {
	mu    sync.Mutex
	lines []string
	n     int
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		t.lines = append(t.lines, line)
		if len(t.lines) > t.n {
			t.lines = t.lines[1:]
		}
	}
	return len(p), nil
}

// flush writes the kept lines to w.
func (t *tail) flush(w io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, line := range t.lines {
		fmt.Fprintln(w, line)
	}
}
