package demo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// The monitor is a small Prometheus inside the demo. Every tick it scrapes
// the worker's registry into an in-memory store, as a Prometheus scrape of
// /metrics would (job and instance labels, an `up` series, staleness
// markers for series that went away), then evaluates the groups of
// alerting/rules.yml on it, rule by rule, with Prometheus's own PromQL
// engine, and keeps each alert's pending and firing state as Prometheus's
// rule manager does: `for:`, `keep_firing_for:`, and ALERTS series written
// back so that a later rule reads the alerts of an earlier one in the same
// evaluation. The demo's figures are PromQL queries on the same store.

// The demo's scrape target, as Prometheus would label it.
const (
	scrapeJob  = "fanout"
	alertsName = "ALERTS" // the series Prometheus writes for active alerts
)

// maxSamples bounds each series of the store: an hour at one tick a second.
// The rules read at most 1d (fanout_build_info), which the demo never runs
// for; what is older than the store keeps does not exist for them.
const maxSamples = 3600

// AlertState is where an alert stands.
type AlertState int

// The states of an active alert, as in Prometheus.
const (
	AlertPending AlertState = iota // its condition holds, not yet for its whole `for:`
	AlertFiring
)

func (s AlertState) String() string { return [...]string{"pending", "firing"}[s] }

// Alert is one active alert of alerting/rules.yml: its condition holds now
// (or held, and keep_firing_for holds it firing).
type Alert struct {
	Name     string
	Severity string
	Labels   labels.Labels // the alert's labels: the expression's result, the rule's labels, alertname
	State    AlertState
	Held     time.Duration // since the condition began to hold
	For      time.Duration // the rule's for:
	// Kept: the condition no longer holds, and keep_firing_for
	// (KeepFiringFor) keeps the alert firing; it cleared Cleared ago.
	Kept                   bool
	Cleared, KeepFiringFor time.Duration
}

// Target names what the alert is about: the values of its topic, route
// and partition labels, or else of the labels that are neither the rule's
// nor the scrape's.
func (a *Alert) Target() string {
	var parts []string
	for _, name := range []string{"topic", "route", "partition"} {
		if v := a.Labels.Get(name); v != "" {
			parts = append(parts, v)
		}
	}
	if len(parts) == 0 {
		a.Labels.Range(func(l labels.Label) {
			switch l.Name {
			case labels.AlertName, "severity", "instance":
			default:
				parts = append(parts, l.Name+"="+l.Value)
			}
		})
	}
	return strings.Join(parts, "/")
}

// rule is one rule of the file, with the state Prometheus keeps for it.
type rule struct {
	name          string // alert, or record for a recording rule
	record        bool
	expr          string
	forDur, keep  time.Duration
	labels        labels.Labels
	active        map[string]*activeAlert // by labels
	writtenBefore map[string]labels.Labels
}

type activeAlert struct {
	labels                    labels.Labels
	activeAt, keepFiringSince time.Time
	firing                    bool
}

// monitor scrapes, stores and evaluates. One goroutine uses it.
type monitor struct {
	engine    *promql.Engine
	parser    parser.Parser
	store     *store
	gather    prometheus.Gatherer
	instance  string // the scrape target's address, its instance label
	groups    [][]*rule
	keep      map[string]bool // the metric names any rule or figure reads; nil: all
	retention time.Duration
	scraped   map[string]labels.Labels // the series of the last scrape
}

// newMonitor loads the rules file and prepares to scrape g once every
// step. extra are the PromQL queries the demo's figures run, so that the
// store keeps what they read too.
func newMonitor(rulesYAML []byte, g prometheus.Gatherer, step time.Duration, extra ...string) (*monitor, error) {
	p := parser.NewParser(parser.Options{})
	rgs, errs := rulefmt.Parse(rulesYAML, false, prommodel.UTF8Validation, p, promslog.NewNopLogger())
	if len(errs) > 0 {
		return nil, fmt.Errorf("alerting rules: %w", errors.Join(errs...))
	}
	m := &monitor{
		engine: promql.NewEngine(promql.EngineOpts{
			MaxSamples: 10_000_000, Timeout: time.Minute, Parser: p,
			EnableAtModifier: true, EnableNegativeOffset: true,
		}),
		parser: p, store: newStore(), gather: g,
		keep: map[string]bool{"up": true, alertsName: true},
	}
	longest := time.Duration(0)
	read := func(expr string) error {
		e, err := p.ParseExpr(expr)
		if err != nil {
			return err
		}
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			switch n := n.(type) {
			case *parser.VectorSelector:
				if n.Name == "" {
					m.keep = nil // a selector without a name reads every series
				} else if m.keep != nil {
					m.keep[n.Name] = true
				}
				longest = max(longest, n.OriginalOffset)
			case *parser.MatrixSelector:
				longest = max(longest, n.Range+n.VectorSelector.(*parser.VectorSelector).OriginalOffset)
			}
			return nil
		})
		return nil
	}
	for _, g := range rgs.Groups {
		var group []*rule
		for _, r := range g.Rules {
			name := cmp.Or(r.Alert, r.Record)
			if err := read(r.Expr); err != nil {
				return nil, fmt.Errorf("alerting rules: group %s, rule %s: %w", g.Name, name, err)
			}
			lb := labels.NewBuilder(labels.EmptyLabels())
			for k, v := range r.Labels {
				if strings.Contains(v, "{{") {
					return nil, fmt.Errorf("alerting rules: group %s, rule %s: label %s is a template, which the demo does not expand", g.Name, name, k)
				}
				lb.Set(k, v)
			}
			group = append(group, &rule{
				name: name, record: r.Record != "", expr: r.Expr,
				forDur: time.Duration(r.For), keep: time.Duration(r.KeepFiringFor),
				labels: lb.Labels(), active: map[string]*activeAlert{},
			})
		}
		m.groups = append(m.groups, group)
	}
	for _, q := range extra {
		if err := read(q); err != nil {
			return nil, fmt.Errorf("demo query %q: %w", q, err)
		}
	}
	// Prometheus's lookback (5m) on top of the longest range read.
	m.retention = min(longest+5*time.Minute, maxSamples*step)
	return m, nil
}

// tick scrapes and evaluates every rule at at, and returns the active
// alerts: by severity, firing before pending, then in the rules' order.
func (m *monitor) tick(ctx context.Context, at time.Time) ([]Alert, error) {
	m.scrape(at)
	var errs []error
	var out []Alert
	for _, group := range m.groups {
		for _, r := range group {
			res, err := m.query(ctx, r.expr, at)
			if err != nil {
				// Prometheus logs the failure and goes on with the next rule.
				errs = append(errs, fmt.Errorf("rule %s: %w", r.name, err))
				continue
			}
			alerts, err := m.eval(r, res, at)
			errs = append(errs, err)
			out = append(out, alerts...)
		}
	}
	m.store.trim(at.Add(-m.retention))
	rank := map[string]int{"critical": 0, "warning": 1, "info": 2}
	slices.SortStableFunc(out, func(a, b Alert) int {
		return cmp.Or(cmp.Compare(rankOf(rank, a.Severity), rankOf(rank, b.Severity)), cmp.Compare(b.State, a.State))
	})
	return out, errors.Join(errs...)
}

func rankOf(rank map[string]int, severity string) int {
	if r, ok := rank[severity]; ok {
		return r
	}
	return len(rank)
}

// eval folds one evaluation's result into r's alerts (or records it) and
// writes the resulting series, with a staleness marker for each series r
// wrote last time and not now.
func (m *monitor) eval(r *rule, res promql.Vector, at time.Time) ([]Alert, error) {
	written := map[string]labels.Labels{}
	write := func(lset labels.Labels, v float64) {
		written[lset.String()] = lset
		m.store.append(lset, at, v)
	}
	defer func() {
		for k, lset := range r.writtenBefore {
			if _, ok := written[k]; !ok {
				m.store.append(lset, at, math.Float64frombits(value.StaleNaN))
			}
		}
		r.writtenBefore = written
	}()

	lb := labels.NewBuilder(labels.EmptyLabels())
	if r.record {
		for _, s := range res {
			lb.Reset(s.Metric)
			lb.Set(prommodel.MetricNameLabel, r.name)
			r.labels.Range(func(l labels.Label) { lb.Set(l.Name, l.Value) })
			write(lb.Labels(), s.F)
		}
		return nil, nil
	}
	now := map[string]bool{}
	for _, s := range res {
		lb.Reset(s.Metric)
		lb.Del(prommodel.MetricNameLabel)
		r.labels.Range(func(l labels.Label) { lb.Set(l.Name, l.Value) })
		lb.Set(labels.AlertName, r.name)
		lset := lb.Labels()
		k := lset.String()
		if now[k] {
			return nil, fmt.Errorf("rule %s: two results with the labels %s", r.name, k)
		}
		now[k] = true
		if a, ok := r.active[k]; ok {
			a.keepFiringSince = time.Time{}
			continue
		}
		r.active[k] = &activeAlert{labels: lset, activeAt: at}
	}
	var out []Alert
	for k, a := range r.active {
		var cleared time.Duration
		kept := !now[k]
		if kept {
			if !a.firing || r.keep <= 0 {
				delete(r.active, k)
				continue
			}
			if a.keepFiringSince.IsZero() {
				a.keepFiringSince = at
			}
			if cleared = at.Sub(a.keepFiringSince); cleared >= r.keep {
				delete(r.active, k)
				continue
			}
		}
		if !a.firing && at.Sub(a.activeAt) >= r.forDur {
			a.firing = true
		}
		state := AlertPending
		if a.firing {
			state = AlertFiring
		}
		lb.Reset(a.labels)
		lb.Set(prommodel.MetricNameLabel, alertsName)
		lb.Set("alertstate", state.String())
		write(lb.Labels(), 1)
		out = append(out, Alert{
			Name: r.name, Severity: a.labels.Get("severity"), Labels: a.labels, State: state,
			Held: at.Sub(a.activeAt), For: r.forDur, Kept: kept, Cleared: cleared, KeepFiringFor: r.keep,
		})
	}
	slices.SortFunc(out, func(a, b Alert) int { return labels.Compare(a.Labels, b.Labels) })
	return out, nil
}

// query runs one PromQL query at at and returns its vector.
func (m *monitor) query(ctx context.Context, expr string, at time.Time) (promql.Vector, error) {
	q, err := m.engine.NewInstantQuery(ctx, m.store, nil, expr, at)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Vector()
}

// scrape gathers the registry at at, as Prometheus scrapes /metrics: the
// target's job and instance labels on every series (a label of the same
// name the metric has becomes exported_<name>), up 1 when the gathering
// succeeded (0 and no samples when it failed), and a staleness marker for
// each series gone since the last scrape.
func (m *monitor) scrape(at time.Time) {
	up := 1.0
	mfs, err := m.gather.Gather()
	var vec prommodel.Vector
	if err == nil {
		if m.keep != nil {
			mfs = slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool {
				n := mf.GetName()
				return !m.keep[n] && !m.keep[n+"_bucket"] && !m.keep[n+"_count"] && !m.keep[n+"_sum"]
			})
		}
		vec, err = expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: prommodel.TimeFromUnixNano(at.UnixNano())}, mfs...)
	}
	if err != nil {
		up, vec = 0, nil // a failed scrape stores nothing but up: its series go stale
	}
	seen := map[string]labels.Labels{}
	add := func(lset labels.Labels, v float64) {
		seen[lset.String()] = lset
		m.store.append(lset, at, v)
	}
	add(labels.FromStrings(prommodel.MetricNameLabel, "up", "job", scrapeJob, "instance", m.instance), up)
	lb := labels.NewBuilder(labels.EmptyLabels())
	for _, s := range vec {
		if m.keep != nil && !m.keep[string(s.Metric[prommodel.MetricNameLabel])] {
			continue
		}
		lb.Reset(labels.EmptyLabels())
		for k, v := range s.Metric {
			name := string(k)
			if name == "job" || name == "instance" {
				name = "exported_" + name
			}
			lb.Set(name, string(v))
		}
		lb.Set("job", scrapeJob)
		lb.Set("instance", m.instance)
		add(lb.Labels(), float64(s.Value))
	}
	for k, lset := range m.scraped {
		if _, ok := seen[k]; !ok {
			m.store.append(lset, at, math.Float64frombits(value.StaleNaN))
		}
	}
	m.scraped = seen
}
