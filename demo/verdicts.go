package demo

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	prommodel "github.com/prometheus/common/model"
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

// verdictMemory is what the goals remember between ticks.
type verdictMemory struct {
	joinedAt         int            // the first tick the worker was ready; -1 before
	lastPaused       map[string]int // per topic: the last tick it had a paused partition
	held             bool           // goal 3 was seen to hold
	heldFrom, heldTo time.Duration
	heldTopics       []string // the receivers that were paused meanwhile
}

// unsteady says why r's rates do not describe normal operation now, or ""
// when r has flowed freely for a whole rate window.
func (m *verdictMemory) unsteady(f *Figures, r *ReceiverFigures) string {
	switch {
	case m.joinedAt < 0:
		return "joining"
	case f.Tick-m.joinedAt < rateTicks:
		return "warming up"
	case r.Paused() > 0 || congestedRoutes(r) != "":
		return "paused"
	}
	if last, ok := m.lastPaused[r.Topic]; ok && f.Tick-last < rateTicks {
		return "just resumed"
	}
	return ""
}

// goals checks the three goals on f.
func (m *verdictMemory) goals(f *Figures) []Goal {
	if m.lastPaused == nil {
		m.lastPaused, m.joinedAt = map[string]int{}, -1
	}
	if m.joinedAt < 0 && f.Ready {
		m.joinedAt = f.Tick
	}
	for i := range f.Receivers {
		if f.Receivers[i].Paused() > 0 {
			m.lastPaused[f.Receivers[i].Topic] = f.Tick
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
		if rt.Congested() {
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

// dur formats a duration as the rules file does: 45s, 1m30s, 5m.
func dur(d time.Duration) string { return prommodel.Duration(d.Round(time.Second)).String() }

// routeFlag is what the views write after a route that does not flow.
func routeFlag(r *RouteFigures) string {
	if r.State == RouteCongested {
		return "CONGESTED"
	}
	return ""
}

// secs formats a duration in whole seconds: 12s, 1m (exact minutes).
func secs(d time.Duration) string {
	s := d.Round(time.Second)
	if s >= time.Minute && s%time.Minute == 0 {
		return fmt.Sprintf("%dm", s/time.Minute)
	}
	return fmt.Sprintf("%ds", s/time.Second)
}
