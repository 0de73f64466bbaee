package demo

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/receiver-fanout/fanout/tools"
)

// testRules has what the shipped rules use of Prometheus's rule
// evaluation: a recording rule, for:, keep_firing_for:, a later rule of the
// group muted by the ALERTS series of an earlier one, a label set that goes
// away (a staleness marker).
const testRules = `groups:
  - name: demo-test
    rules:
      - record: job:stuck:max
        expr: max by (job) (stuck)
      - alert: Stuck
        expr: job:stuck:max == 1
        for: 45s
        keep_firing_for: 30s
        labels:
          severity: critical
      - alert: Symptom
        expr: |
          symptom == 1
          unless on (job) ALERTS{alertname="Stuck",alertstate="firing"}
        for: 1m
        labels:
          severity: warning
`

// TestMonitorFollowsPrometheus steps the monitor through a scripted story
// on a registry of its own (15 s a tick), checks at each tick what the
// alert panel says, then replays the scraped series through promtool (the
// rule manager of Prometheus) and checks that it reports the same ALERTS
// at every tick.
func TestMonitorFollowsPrometheus(t *testing.T) {
	const step = 15 * time.Second
	reg := prometheus.NewRegistry()
	stuck := prometheus.NewGauge(prometheus.GaugeOpts{Name: "stuck", Help: "h"})
	symptom := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "symptom", Help: "h"}, []string{"route"})
	reg.MustRegister(stuck, symptom)
	m, err := newMonitor([]byte(testRules), reg, step)
	if err != nil {
		t.Fatal(err)
	}
	m.instance = "demo:1"

	// At tick n: stuck, symptom{route="a"}, symptom{route="b"} (-1: absent),
	// and the panel's alerts.
	script := []struct {
		stuck, a, b float64
		want        string
	}{
		{0, 0, -1, ""},
		{1, 1, 1, "Stuck job=fanout pending 0s/45s; Symptom a pending 0s/1m; Symptom b pending 0s/1m"},
		{1, 1, 1, "Stuck job=fanout pending 15s/45s; Symptom a pending 15s/1m; Symptom b pending 15s/1m"},
		{1, 1, -1, "Stuck job=fanout pending 30s/45s; Symptom a pending 30s/1m"},
		// The cause fires; its symptom, still pending, is dropped.
		{1, 1, -1, "Stuck job=fanout FIRING 45s"},
		{1, 1, -1, "Stuck job=fanout FIRING 1m"},
		// The cause clears; keep_firing_for holds it firing, and the symptom muted.
		{0, 1, -1, "Stuck job=fanout FIRING cleared 0s/30s"},
		{0, 1, -1, "Stuck job=fanout FIRING cleared 15s/30s"},
		// Resolved: the symptom starts its whole for: again.
		{0, 1, -1, "Symptom a pending 0s/1m"},
		{0, 1, -1, "Symptom a pending 15s/1m"},
		{0, 1, -1, "Symptom a pending 30s/1m"},
		{0, 1, -1, "Symptom a pending 45s/1m"},
		{0, 1, -1, "Symptom a FIRING 1m"},
		{0, 0, -1, ""},
	}
	ticks := map[int][]Alert{}
	for n, s := range script {
		stuck.Set(s.stuck)
		symptom.WithLabelValues("a").Set(s.a)
		if s.b >= 0 {
			symptom.WithLabelValues("b").Set(s.b)
		} else {
			symptom.DeleteLabelValues("b")
		}
		alerts, err := m.tick(context.Background(), time.Unix(0, 0).Add(time.Duration(n)*step))
		if err != nil {
			t.Fatalf("tick %d: %v", n, err)
		}
		if got := panel(alerts); got != s.want {
			t.Errorf("tick %d (t=%s): panel\n  %q, want\n  %q", n, time.Duration(n)*step, got, s.want)
		}
		ticks[n] = alerts
	}
	rulesFile := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(rulesFile, []byte(testRules), 0o644); err != nil {
		t.Fatal(err)
	}
	promtoolAgrees(t, rulesFile, m, step, ticks)
}

// panel is what the plain status line says of the alerts, by target.
func panel(alerts []Alert) string {
	var parts []string
	for i := range alerts {
		parts = append(parts, alerts[i].Name+" "+alerts[i].Target()+" "+alertStatus(&alerts[i]))
	}
	return strings.Join(parts, "; ")
}

// TestMonitorRefusesWhatItCannotEvaluate: a rules file the demo cannot
// evaluate as Prometheus would stops it with the rule named.
func TestMonitorRefusesWhatItCannotEvaluate(t *testing.T) {
	for _, tc := range []struct{ name, rules, want string }{
		{"templated label", `groups: [{name: g, rules: [{alert: A, expr: up == 0, labels: {team: "{{ $labels.job }}"}}]}]`,
			"rule A: label team is a template"},
		{"bad expression", `groups: [{name: g, rules: [{alert: B, expr: "rate(up[5m]"}]}]`, "B"},
		{"unknown field", `groups: [{name: g, rules: [{alert: C, expr: up, four: 5m}]}]`, "four"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newMonitor([]byte(tc.rules), prometheus.NewRegistry(), time.Second)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("newMonitor: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// promtoolAgrees writes a promtool unit test of rulesFile whose input is
// every series the monitor scraped (not what its rules wrote), one sample
// a step from Unix 0, and which expects, at each tick of ticks, exactly the
// ALERTS series of the alerts the monitor reported then; and runs it.
func promtoolAgrees(t *testing.T, rulesFile string, m *monitor, step time.Duration, ticks map[int][]Alert) {
	t.Helper()
	promtool, err := tools.Path("promtool")
	if err != nil {
		t.Fatal(err)
	}
	written := map[string]bool{alertsName: true}
	for _, g := range m.groups {
		for _, r := range g {
			if r.record {
				written[r.name] = true
			}
		}
	}
	last := 0
	for n := range ticks {
		last = max(last, n)
	}
	type series struct {
		Series string `yaml:"series"`
		Values string `yaml:"values"`
	}
	type sample struct {
		Labels string  `yaml:"labels"`
		Value  float64 `yaml:"value"`
	}
	type exprTest struct {
		Expr       string   `yaml:"expr"`
		EvalTime   string   `yaml:"eval_time"`
		ExpSamples []sample `yaml:"exp_samples"`
	}
	var input []series
	stepMs := step.Milliseconds()
	sawZero := false
	for _, ms := range m.store.all() {
		name := ms.lset.Get(prommodel.MetricNameLabel)
		if written[name] {
			continue
		}
		values := make([]string, last+1)
		for i := range values {
			values[i] = "_"
		}
		for _, s := range ms.s {
			if s.t%stepMs != 0 {
				t.Fatalf("%s has a sample at %dms, off the %s steps", ms.lset, s.t, step)
			}
			n := int(s.t / stepMs)
			if n > last {
				continue
			}
			sawZero = sawZero || n == 0
			switch {
			case value.IsStaleNaN(s.f):
				values[n] = "stale"
			case math.IsNaN(s.f):
				values[n] = "NaN"
			default:
				values[n] = strconv.FormatFloat(s.f, 'f', -1, 64)
			}
		}
		input = append(input, series{Series: name + withoutName(ms.lset), Values: strings.Join(values, " ")})
	}
	if !sawZero {
		t.Fatal("the store no longer holds the first tick's samples: the replay would start late")
	}
	var tests []exprTest
	for n := 0; n <= last; n++ {
		alerts, ok := ticks[n]
		if !ok {
			continue
		}
		et := exprTest{Expr: alertsName, EvalTime: prommodel.Duration(time.Duration(n) * step).String(), ExpSamples: []sample{}}
		for _, a := range alerts {
			lb := labels.NewBuilder(a.Labels)
			lb.Del(prommodel.MetricNameLabel)
			lb.Set("alertstate", a.State.String())
			et.ExpSamples = append(et.ExpSamples, sample{Labels: alertsName + lb.Labels().String(), Value: 1})
		}
		tests = append(tests, et)
	}
	abs, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	file := map[string]any{
		"rule_files":          []string{abs},
		"evaluation_interval": prommodel.Duration(step).String(),
		"tests": []map[string]any{{
			"interval":         prommodel.Duration(step).String(),
			"input_series":     input,
			"promql_expr_test": tests,
		}},
	}
	b, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	testFile := filepath.Join(t.TempDir(), "replay_test.yml")
	if err := os.WriteFile(testFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	out, err := exec.Command(promtool, "test", "rules", testFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		const limit = 6000
		if len(out) > limit {
			out = append(out[:limit], "\n…"...)
		}
		t.Fatalf("promtool test rules on the series the demo scraped (%d series, %d ticks of %s) disagrees with the demo's alerts (%v):\n%s",
			len(input), last+1, step, err, out)
	}
	t.Logf("promtool agrees with the demo's alerts at each of %d ticks, on %d series (%s)", len(tests), len(input), time.Since(began).Round(time.Millisecond))
}

func withoutName(lset labels.Labels) string {
	lb := labels.NewBuilder(lset)
	lb.Del(prommodel.MetricNameLabel)
	return lb.Labels().String()
}

// TestFailedScrapeIsUpZero: a gathering that fails stores up 0 and no
// samples, so that the series of the last scrape go stale, as in
// Prometheus.
func TestFailedScrapeIsUpZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "stuck", Help: "h"})
	reg.MustRegister(g)
	fail := false
	gather := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		if fail {
			return nil, errors.New("scrape failed")
		}
		return reg.Gather()
	})
	m, err := newMonitor([]byte("groups: [{name: g, rules: [{alert: Down, expr: up == 0}]}]"), gather, time.Second, "stuck") // the store keeps what a query reads
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for n, want := range []string{"", "Down job=fanout FIRING 0s"} {
		fail = n == 1
		at := time.Unix(0, 0).Add(time.Duration(n) * time.Second)
		alerts, err := m.tick(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		if got := panel(alerts); got != want {
			t.Errorf("tick %d: %q, want %q", n, got, want)
		}
		v, err := m.query(ctx, "stuck", at)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != 1-n {
			t.Errorf("tick %d: stuck has %d samples, want %d", n, len(v), 1-n)
		}
	}
}
