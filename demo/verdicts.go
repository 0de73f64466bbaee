package demo

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// GoalState is how one goal of the design stands right now.
type GoalState int

// The goal states.
const (
	GoalWaiting GoalState = iota // nothing to judge yet
	GoalMet
	GoalFailing
)

// Goal is one of the three goals of DESIGN.md, checked live.
type Goal struct {
	Title  string
	State  GoalState
	Detail string
}

// keepUp is the share of a rate that counts as keeping up with it: rates
// are measured over a few seconds of bursty batches.
const keepUp = 0.9

// verdictMemory is what the goals remember between samples.
type verdictMemory struct {
	lastPaused       map[string]time.Duration // per topic: when it last had a paused partition
	held             bool                     // goal 3 was seen to hold
	heldFrom, heldTo time.Duration
	heldTopics       []string // the receivers that were paused meanwhile
}

// unsteady says why r's rates do not describe normal operation now, or ""
// when r has flowed freely for a whole rate window.
func (m *verdictMemory) unsteady(f *Figures, r *ReceiverFigures) string {
	switch {
	case !f.Phase.Joined:
		return "joining"
	case f.Elapsed-f.Phase.JoinedAt < rateWindow:
		return "warming up"
	case r.Paused() > 0 || congestedRoutes(r) != "":
		return "paused"
	}
	if last, ok := m.lastPaused[r.Topic]; ok && f.Elapsed-last < rateWindow {
		return "just resumed"
	}
	return ""
}

// goals checks the three goals on f.
func (m *verdictMemory) goals(f *Figures) []Goal {
	if m.lastPaused == nil {
		m.lastPaused = map[string]time.Duration{}
	}
	for i := range f.Receivers {
		if f.Receivers[i].Paused() > 0 {
			m.lastPaused[f.Receivers[i].Topic] = f.Elapsed
		}
	}
	return []Goal{m.fastUnaffected(f), m.fullRate(f), m.contained(f)}
}

// Goal 1: a slower route never slows a faster route. The fast route
// delivers as fast as its receiver ingests, whatever the slow one does.
func (m *verdictMemory) fastUnaffected(f *Figures) Goal {
	g := Goal{Title: "a slow route never slows the fast one", State: GoalWaiting}
	var parts []string
	for i := range f.Receivers {
		r := &f.Receivers[i]
		fast, slow := r.Route(routeFast), r.Route(routeSlow)
		if fast == nil || slow == nil {
			continue
		}
		if why := m.unsteady(f, r); why != "" || r.IngestRate < 1 {
			parts = append(parts, fmt.Sprintf("%s %s, not judged", r.Topic, cmp.Or(why, "idle")))
			continue
		}
		ok := fast.Rate >= keepUp*r.IngestRate
		g.State = worse(g.State, ok)
		parts = append(parts, fmt.Sprintf("%s fast %s of %s in, p99 %s vs slow %s",
			r.Topic, perSec(fast.Rate), perSec(r.IngestRate), ms(fast.P99), ms(slow.P99)))
	}
	g.Detail = detail(parts, "no receiver has a fast and a slow route")
	return g
}

// Goal 2: a receiver ingests at the optimal rate, the rate events arrive.
func (m *verdictMemory) fullRate(f *Figures) Goal {
	g := Goal{Title: "ingestion keeps up with arrivals", State: GoalWaiting}
	var parts []string
	for i := range f.Receivers {
		r := &f.Receivers[i]
		if why := m.unsteady(f, r); why != "" {
			parts = append(parts, fmt.Sprintf("%s %s, not judged", r.Topic, why))
			continue
		}
		ok := r.IngestRate >= keepUp*r.ProduceRate
		g.State = worse(g.State, ok)
		parts = append(parts, fmt.Sprintf("%s %s of %s", r.Topic, perSec(r.IngestRate), perSec(r.ProduceRate)))
	}
	g.Detail = detail(parts, "no receiver")
	return g
}

// Goal 3: a congested route pauses its own receiver only; the others keep
// their rate.
func (m *verdictMemory) contained(f *Figures) Goal {
	g := Goal{Title: "congestion stays inside its receiver", State: GoalWaiting}
	var paused, others []string
	ok := true
	for i := range f.Receivers {
		r := &f.Receivers[i]
		if n := r.Paused(); n > 0 {
			paused = append(paused, fmt.Sprintf("%s paused %d/%d%s", r.Topic, n, len(r.Partitions), congestedRoutes(r)))
			continue
		}
		good := r.IngestRate >= keepUp*r.ProduceRate
		ok = ok && good
		others = append(others, fmt.Sprintf("%s %s of %s, 0 paused", r.Topic, perSec(r.IngestRate), perSec(r.ProduceRate)))
	}
	switch {
	case len(paused) == 0 && m.held:
		g.State = GoalMet
		g.Detail = fmt.Sprintf("held t=%s–%s while %s paused; nothing paused now", secs(m.heldFrom), secs(m.heldTo), strings.Join(m.heldTopics, ", "))
	case len(paused) == 0:
		g.Detail = "nothing paused yet"
		if f.Phase.Joined && !f.Phase.Over {
			g.Detail += fmt.Sprintf(": orders/%s congests at t=%s", routeCongested, secs(f.Phase.Start))
		}
	case len(others) == 0:
		g.State = GoalFailing
		g.Detail = strings.Join(paused, " · ") + " · no receiver keeps flowing"
	default:
		g.State = worse(GoalWaiting, ok)
		g.Detail = strings.Join(append(paused, others...), " · ")
		if ok {
			if !m.held {
				m.held, m.heldFrom = true, f.Elapsed
			}
			m.heldTo = f.Elapsed
			for i := range f.Receivers {
				if t := f.Receivers[i].Topic; f.Receivers[i].Paused() > 0 && !slices.Contains(m.heldTopics, t) {
					m.heldTopics = append(m.heldTopics, t)
				}
			}
		}
	}
	return g
}

func congestedRoutes(r *ReceiverFigures) string {
	var names []string
	for _, rt := range r.Routes {
		if rt.Congested {
			names = append(names, rt.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return " by " + strings.Join(names, ", ")
}

// worse folds one check into a goal's state: failing wins over met, met
// over waiting.
func worse(s GoalState, ok bool) GoalState {
	switch {
	case !ok:
		return GoalFailing
	case s == GoalWaiting:
		return GoalMet
	}
	return s
}

func detail(parts []string, none string) string {
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, " · ")
}

// Alert is a condition of a shipped alert rule that holds now.
type Alert struct {
	Name     string // the alert's name in alerting/rules.yml
	Severity string // its severity label
	Target   string // topic, topic/route or topic/partitions
	Value    string // the figure that makes it true
}

// The alerts of alerting/rules.yml whose conditions the demo evaluates.
const (
	alertInstanceNotReady = "FanoutInstanceNotReady"
	alertReceiverPaused   = "FanoutReceiverPaused"
	alertPartitionPaused  = "FanoutPartitionPaused"
	alertLagHigh          = "FanoutConsumerLagHigh"
	alertRouteCongested   = "FanoutRouteCongested"
	alertErrorRatioHigh   = "FanoutRouteErrorRatioHigh"
	alertDeadLetters      = "FanoutDeadLetters"
	alertLatencyHigh      = "FanoutRouteLatencyHigh"
)

var alertNames = []string{
	alertInstanceNotReady, alertReceiverPaused, alertPartitionPaused, alertLagHigh,
	alertRouteCongested, alertErrorRatioHigh, alertDeadLetters, alertLatencyHigh,
}

// alerts evaluates Go equivalents of the rules' conditions on f, now: the
// rules' for: durations are not applied and their windows are shortened
// (rates over alertWindow, p99 over p99Window).
func alerts(f *Figures) []Alert {
	var out []Alert
	add := func(name, severity, target, format string, args ...any) {
		out = append(out, Alert{Name: name, Severity: severity, Target: target, Value: fmt.Sprintf(format, args...)})
	}
	if !f.Ready {
		add(alertInstanceNotReady, "warning", "demo", "not joined to the group")
	}
	for i := range f.Receivers {
		r := &f.Receivers[i]
		if n, of := r.Paused(), len(r.Partitions); of > 0 && float64(n)/float64(of) >= 0.8 {
			add(alertReceiverPaused, "critical", r.Topic, "%d/%d partitions paused", n, of)
		}
		var paused []string
		for _, p := range r.Partitions {
			if p.Paused {
				paused = append(paused, fmt.Sprint(p.ID))
			}
		}
		if len(paused) > 0 {
			add(alertPartitionPaused, "warning", r.Topic+"/"+strings.Join(paused, ","), "paused")
		}
		switch {
		case r.LagSeconds > 1800:
			add(alertLagHigh, "critical", r.Topic, "%s behind", secs(time.Duration(r.LagSeconds*float64(time.Second))))
		case r.LagSeconds > 300:
			add(alertLagHigh, "warning", r.Topic, "%s behind", secs(time.Duration(r.LagSeconds*float64(time.Second))))
		}
		for j := range r.Routes {
			rt := &r.Routes[j]
			target := r.Topic + "/" + rt.Name
			if rt.Congested || rt.Fill() >= 0.9 {
				add(alertRouteCongested, "warning", target, "queue %.0f%%", 100*rt.Fill())
			}
			if rt.ErrorRatio > 0.05 && rt.AttemptRate >= 0.02 {
				add(alertErrorRatioHigh, "warning", target, "%.0f%% of attempts failed", 100*rt.ErrorRatio)
			}
			if rt.RecentDeadLetters > 0 {
				add(alertDeadLetters, "warning", target, "%d in %s", rt.RecentDeadLetters, secs(alertWindow))
			}
			if rt.P99 > 2*time.Second {
				add(alertLatencyHigh, "info", target, "p99 %s", ms(rt.P99))
			}
		}
	}
	rank := map[string]int{"critical": 0, "warning": 1, "info": 2}
	slices.SortStableFunc(out, func(a, b Alert) int {
		if d := rank[a.Severity] - rank[b.Severity]; d != 0 {
			return d
		}
		return slices.Index(alertNames, a.Name) - slices.Index(alertNames, b.Name)
	})
	return out
}

// perSec formats a rate: 400/s.
func perSec(v float64) string { return fmt.Sprintf("%.0f/s", v) }

// ms formats a latency compactly: 0.8ms, 12ms, 2.3s; "–" when unknown.
func ms(d time.Duration) string {
	switch {
	case d < 0:
		return "–"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// secs formats a duration in whole seconds: 12s, 1m (exact minutes).
func secs(d time.Duration) string {
	s := d.Round(time.Second)
	if s >= time.Minute && s%time.Minute == 0 {
		return fmt.Sprintf("%dm", s/time.Minute)
	}
	return fmt.Sprintf("%ds", s/time.Second)
}
