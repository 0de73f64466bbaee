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

// Goal is one of the three goals of the design, checked live.
type Goal struct {
	Title  string
	State  GoalState
	Detail string
}

// keepUp is the share of a rate that counts as keeping up with it: rates
// are measured over a few seconds of bursty batches.
const keepUp = 0.9

// detachSlack is how much longer than its spill.after orders/congested
// may be seen congested during the scripted congestion before goal 3
// fails: the worker looks at its routes every 100ms, the figures once a
// tick.
const detachSlack = 2 * time.Second

// verdictMemory is what the goals remember between ticks.
type verdictMemory struct {
	joinedAt   int            // the first tick the worker was ready; -1 before
	lastPaused map[string]int // per topic: the last tick it had a paused partition
	// congestedSince is when each congested route was first seen so
	// since it last was not.
	congestedSince   map[routeKey]time.Duration
	held             bool // goal 3 was seen to hold
	heldFrom, heldTo time.Duration
	heldRoutes       []string // the routes that were detached meanwhile
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
		m.lastPaused, m.joinedAt, m.congestedSince = map[string]int{}, -1, map[routeKey]time.Duration{}
	}
	if m.joinedAt < 0 && f.Ready {
		m.joinedAt = f.Tick
	}
	for i := range f.Receivers {
		r := &f.Receivers[i]
		if r.Paused() > 0 {
			m.lastPaused[r.Topic] = f.Tick
		}
		for _, rt := range r.Routes {
			k := routeKey{r.Topic, rt.Name}
			if _, ok := m.congestedSince[k]; !rt.Congested() {
				delete(m.congestedSince, k)
			} else if !ok {
				m.congestedSince[k] = f.Elapsed
			}
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

// Goal 3: a slow destination holds back only its route. A route with
// spill that stays congested detaches after its spill.after; while it is
// detached its receiver ingests at the rate events arrive and the
// receiver's other routes deliver at that rate, its own records waiting in
// its spill topic. Whether it detached in time is judged during the
// scripted congestion only, when the route cannot drain at all: other
// congestion (a catch-up at full speed) may clear between two ticks,
// unseen, and start its spill.after anew.
func (m *verdictMemory) contained(f *Figures) Goal {
	g := Goal{Title: "congestion stays inside its route", State: GoalWaiting}
	var parts, waiting []string
	for i := range f.Receivers {
		r := &f.Receivers[i]
		for j := range r.Routes {
			rt := &r.Routes[j]
			if rt.Spill == nil {
				continue
			}
			name := r.Topic + "/" + rt.Name
			switch {
			case rt.Congested():
				since := m.congestedSince[routeKey{r.Topic, rt.Name}]
				if scripted := f.Phase.Congested && r.Topic == topicOrders && rt.Name == routeCongested; scripted &&
					f.Elapsed-max(since, f.Phase.Start) > rt.Spill.After+detachSlack {
					g.State = GoalFailing
					parts = append(parts, fmt.Sprintf("%s congested since t=%s and not detached (spill.after %s)",
						name, secs(max(since, f.Phase.Start)), short(rt.Spill.After)))
				} else {
					waiting = append(waiting, fmt.Sprintf("%s congested, detaches after spill.after %s of it", name, short(rt.Spill.After)))
				}
			case rt.Detached():
				if why := m.unsteady(f, r); why != "" {
					waiting = append(waiting, fmt.Sprintf("%s detached, %s %s, not judged", name, r.Topic, why))
					continue
				}
				ok, others := siblingsKeepUp(r, rt)
				g.State = worse(g.State, ok)
				parts = append(parts, fmt.Sprintf("%s detached; %s in %s of %s, %s; backlog %d (%.1fs)",
					name, r.Topic, perSec(r.IngestRate), perSec(r.ProduceRate), others, rt.Spill.Backlog, rt.Spill.BacklogAge))
				if ok {
					if !m.held {
						m.held, m.heldFrom = true, f.Elapsed
					}
					m.heldTo = f.Elapsed
					if !slices.Contains(m.heldRoutes, name) {
						m.heldRoutes = append(m.heldRoutes, name)
					}
				}
			}
		}
	}
	switch {
	case len(parts) > 0 || len(waiting) > 0:
		g.Detail = strings.Join(append(parts, waiting...), " · ")
	case m.held:
		g.State = GoalMet
		g.Detail = fmt.Sprintf("held t=%s–%s while %s was detached; attached again", secs(m.heldFrom), secs(m.heldTo), strings.Join(m.heldRoutes, ", "))
	default:
		g.Detail = "nothing detached yet"
		if f.Phase.Joined && !f.Phase.Over {
			g.Detail += fmt.Sprintf(": orders/%s congests at t=%s", routeCongested, secs(f.Phase.Start))
		}
	}
	return g
}

// siblingsKeepUp tells whether r ingests at the rate events arrive and
// each of its routes but detached delivers at that rate, and says how
// the slowest of them does.
func siblingsKeepUp(r *ReceiverFigures, detached *RouteFigures) (bool, string) {
	ok := r.IngestRate >= keepUp*r.ProduceRate
	slowest := -1.0
	for i := range r.Routes {
		rt := &r.Routes[i]
		if rt.Name == detached.Name {
			continue
		}
		if slowest < 0 || rt.Rate < slowest {
			slowest = rt.Rate
		}
		ok = ok && rt.Rate >= keepUp*r.ProduceRate
	}
	if slowest < 0 {
		return ok, "no other route"
	}
	return ok, "other routes ≥ " + perSec(slowest)
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
	switch r.State {
	case RouteCongested:
		return "CONGESTED"
	case RouteDetached:
		return "DETACHED"
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
