package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/receiver-fanout/fanout/tools"
)

// The files under test, relative to this package's directory (go test runs
// there).
const (
	rulesFile        = "rules.yml"
	rulesTestFile    = "rules_test.yml"
	alertmanagerFile = "alertmanager.yml"
	dashboardFile    = "dashboard.json"
	runbookFile      = "../docs/runbook.md"

	runbookBase = "https://github.com/receiver-fanout/fanout/blob/main/docs/runbook.md"
)

// knownMetrics is every metric the worker exports: the DESIGN.md table plus
// the extras. Rules, rule tests and the dashboard may use no other fanout_*
// name.
var knownMetrics = []string{
	// DESIGN.md
	"fanout_records_consumed_total",
	"fanout_route_deliveries_total",
	"fanout_route_delivery_duration_seconds",
	"fanout_route_queue_depth",
	"fanout_route_queue_capacity",
	"fanout_route_congested",
	"fanout_route_oldest_pending_age_seconds",
	"fanout_partition_paused",
	"fanout_partition_inflight_records",
	"fanout_partition_lag_records",
	"fanout_partition_lag_seconds",
	"fanout_partition_committed_offset",
	"fanout_assigned_partitions",
	// extras
	"fanout_ready",
	"fanout_build_info",
	"fanout_offset_commits_total",
	"fanout_rebalance_events_total",
	"fanout_partition_pauses_total",
	"fanout_route_workers",
	"fanout_route_workers_busy",
	"fanout_route_queue_wait_seconds",
	"fanout_partition_high_watermark",
	"fanout_route_dead_letter_failures_total",
	"fanout_route_detached",
	"fanout_route_spilled_records_total",
	"fanout_route_spill_backlog_records",
	"fanout_route_spill_backlog_seconds",
}

// tool returns the path of the pinned tool called name (see package
// tools), never one found on PATH. A missing tool fails the test, saying
// how to build it: these checks are the point of the package.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := tools.Path(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs a tool to completion and fails the test on a non-zero exit.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPromtoolCheckRules(t *testing.T) {
	out := run(t, "promtool", "check", "rules", "--lint=all", "--lint-fatal", rulesFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules did not report SUCCESS:\n%s", out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	out := run(t, "promtool", "test", "rules", rulesTestFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules did not report SUCCESS:\n%s", out)
	}
}

func TestAmtoolCheckConfig(t *testing.T) {
	out := run(t, "amtool", "check-config", alertmanagerFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("amtool check-config did not report SUCCESS:\n%s", out)
	}
}

// TestAlertmanagerRoutes checks the severity routing with amtool, which
// exits non-zero when the receiver differs from --verify.receivers.
func TestAlertmanagerRoutes(t *testing.T) {
	cases := []struct {
		receiver string
		labels   []string
	}{
		{"pager", []string{"alertname=FanoutReceiverPaused", "severity=critical", "job=fanout", "topic=orders"}},
		{"pager", []string{"alertname=FanoutNoReadyInstance", "severity=critical", "job=fanout"}},
		{"support", []string{"alertname=FanoutRouteCongested", "severity=warning", "job=fanout", "topic=orders", "route=crm"}},
		{"null", []string{"alertname=FanoutRouteLatencyHigh", "severity=info", "job=fanout", "topic=orders", "route=crm"}},
		{"support", []string{"alertname=SomethingWithoutSeverity", "job=fanout"}},
	}
	for _, c := range cases {
		t.Run(c.labels[0]+"/"+c.receiver, func(t *testing.T) {
			args := append([]string{"config", "routes", "test",
				"--config.file=" + alertmanagerFile, "--verify.receivers=" + c.receiver}, c.labels...)
			run(t, "amtool", args...)
		})
	}
}

// TestAlertmanagerInhibition starts a real Alertmanager on loopback with
// alertmanager.yml, posts alerts, and checks which come back suppressed.
// amtool cannot test inhibition offline.
// startAlertmanager runs the pinned Alertmanager on a free loopback port
// with config, waits until it is ready, and returns its base URL and a
// function that stops it and returns its log.
func startAlertmanager(t *testing.T, config string) (string, func() string) {
	t.Helper()
	bin := tool(t, "alertmanager")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var logs bytes.Buffer
	cmd := exec.Command(bin,
		"--config.file="+config,
		"--storage.path="+t.TempDir(),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() string {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		return logs.String()
	}
	t.Cleanup(func() { stop() })

	base := "http://" + addr
	if !poll(15*time.Second, func() bool {
		resp, err := amClient.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("alertmanager on %s not ready:\n%s", addr, stop())
	}
	return base, stop
}

var amClient = &http.Client{Timeout: 5 * time.Second}

// postable is an alert as Prometheus posts it to /api/v2/alerts.
type postable struct {
	Labels   map[string]string `json:"labels"`
	StartsAt time.Time         `json:"startsAt"`
	EndsAt   time.Time         `json:"endsAt"`
}

func postAlerts(t *testing.T, base string, alerts ...postable) {
	t.Helper()
	b, err := json.Marshal(alerts)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := amClient.Post(base+"/api/v2/alerts", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s: %s", resp.Status, msg)
	}
}

// labelSet builds a label map from key, value pairs.
func labelSet(kv ...string) map[string]string {
	m := make(map[string]string)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestAlertmanagerInhibition(t *testing.T) {
	base, stop := startAlertmanager(t, alertmanagerFile)
	client := amClient

	type alert struct {
		labels     map[string]string
		suppressed bool
	}
	L := labelSet
	alerts := []alert{
		// orders is paused as a whole: its per-route/partition/lag alerts are muted.
		{L("alertname", "FanoutReceiverPaused", "severity", "critical", "job", "fanout", "topic", "orders"), false},
		{L("alertname", "FanoutRouteCongested", "severity", "warning", "job", "fanout", "instance", "w1", "topic", "orders", "route", "crm"), true},
		{L("alertname", "FanoutPartitionStalled", "severity", "critical", "job", "fanout", "instance", "w1", "topic", "orders", "partition", "0"), true},
		{L("alertname", "FanoutConsumerLagHigh", "severity", "critical", "job", "fanout", "topic", "orders"), true},
		// ...but dead letters still need attention,
		{L("alertname", "FanoutDeadLetters", "severity", "warning", "job", "fanout", "topic", "orders", "route", "crm"), false},
		// and other receivers and other jobs are not affected.
		{L("alertname", "FanoutRouteCongested", "severity", "warning", "job", "fanout", "instance", "w1", "topic", "payments", "route", "crm"), false},
		{L("alertname", "FanoutRouteCongested", "severity", "warning", "job", "fanout-canary", "instance", "c1", "topic", "orders", "route", "crm"), false},
		// A critical alert mutes its warning twin, and only its twin.
		{L("alertname", "FanoutConsumerLagHigh", "severity", "critical", "job", "fanout", "topic", "billing"), false},
		{L("alertname", "FanoutConsumerLagHigh", "severity", "warning", "job", "fanout", "topic", "billing"), true},
		{L("alertname", "FanoutRouteErrorRatioHigh", "severity", "warning", "job", "fanout", "topic", "billing", "route", "crm"), false},
		// No ready instance at all mutes the per-instance warning.
		{L("alertname", "FanoutNoReadyInstance", "severity", "critical", "job", "fanout"), false},
		{L("alertname", "FanoutInstanceNotReady", "severity", "warning", "job", "fanout", "instance", "w1"), true},
		{L("alertname", "FanoutInstanceDown", "severity", "warning", "job", "fanout", "instance", "w2"), true},
		{L("alertname", "FanoutInstanceDown", "severity", "warning", "job", "fanout-eu", "instance", "e1"), false},
	}

	now := time.Now().UTC()
	var body []postable
	for _, a := range alerts {
		body = append(body, postable{a.labels, now, now.Add(time.Hour)})
	}
	postAlerts(t, base, body...)

	key := func(m map[string]string) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var sb strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&sb, "%s=%q,", k, m[k])
		}
		return sb.String()
	}
	// The inhibitor learns about new alerts asynchronously: poll until the
	// states settle, then report the last difference.
	var diffs []string
	settled := poll(10*time.Second, func() bool {
		resp, err := client.Get(base + "/api/v2/alerts")
		if err != nil {
			diffs = []string{err.Error()}
			return false
		}
		defer resp.Body.Close()
		var got []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				State       string   `json:"state"`
				InhibitedBy []string `json:"inhibitedBy"`
			} `json:"status"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			diffs = []string{err.Error()}
			return false
		}
		states := make(map[string]bool)
		for _, g := range got {
			states[key(g.Labels)] = len(g.Status.InhibitedBy) > 0
		}
		diffs = diffs[:0]
		for _, a := range alerts {
			inhibited, ok := states[key(a.labels)]
			switch {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("%v: missing", a.labels))
			case inhibited != a.suppressed:
				diffs = append(diffs, fmt.Sprintf("%v: inhibited=%v, want %v", a.labels, inhibited, a.suppressed))
			}
		}
		return len(diffs) == 0
	})
	if !settled {
		t.Fatalf("inhibition differs:\n  %s\nalertmanager log:\n%s", strings.Join(diffs, "\n  "), stop())
	}
}

// poll calls cond every 100ms until it returns true or d has passed.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	KeepFiring  string            `yaml:"keep_firing_for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.UnmarshalWithOptions(b, &f, yaml.Strict()); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", rulesFile)
	}
	return rules
}

type expAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

type ruleTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name           string `yaml:"name"`
		PromqlExprTest []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
		AlertRuleTest []struct {
			EvalTime  string     `yaml:"eval_time"`
			Alertname string     `yaml:"alertname"`
			ExpAlerts []expAlert `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func loadRuleTests(t *testing.T) ruleTestFile {
	t.Helper()
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleTestFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	return f
}

var alertName = regexp.MustCompile(`^Fanout[A-Z][A-Za-z0-9]*$`)

// TestRuleConventions checks names, severities, annotations and runbook links.
func TestRuleConventions(t *testing.T) {
	anchors := runbookAnchors(t)
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			t.Errorf("recording rule %q: rules.yml holds alerts only", r.Record)
			continue
		}
		if !alertName.MatchString(r.Alert) {
			t.Errorf("%s: alert names are CamelCase with the Fanout prefix", r.Alert)
		}
		switch s := r.Labels["severity"]; s {
		case "critical", "warning", "info":
		default:
			t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: annotation %s missing", r.Alert, a)
			}
		}
		anchor := strings.ToLower(r.Alert)
		if want := runbookBase + "#" + anchor; r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !anchors[anchor] {
			t.Errorf("%s: %s has no section with anchor #%s", r.Alert, runbookFile, anchor)
		}
		if strings.Contains(r.Expr, "receiver=") || strings.Contains(r.Expr, "(receiver") {
			t.Errorf("%s: a receiver is labelled topic, not receiver", r.Alert)
		}
	}
}

// TestSummariesNameReceiverAndRoute checks, on every alert the promtool
// tests expect, that the summary (the headline a page or ticket is titled
// with) names the receiver and the route the alert is about, and that every
// alert has such a case.
func TestSummariesNameReceiverAndRoute(t *testing.T) {
	checked := make(map[string]bool)
	for _, tc := range loadRuleTests(t).Tests {
		for _, at := range tc.AlertRuleTest {
			for _, a := range at.ExpAlerts {
				summary, ok := a.ExpAnnotations["summary"]
				if !ok {
					continue
				}
				checked[at.Alertname] = true
				for _, l := range []string{"topic", "route"} {
					if v := a.ExpLabels[l]; v != "" && !strings.Contains(summary, v) {
						t.Errorf("%s (test %q): summary %q does not name its %s %q", at.Alertname, tc.Name, summary, l, v)
					}
				}
			}
		}
	}
	for _, r := range loadRules(t) {
		if !checked[r.Alert] {
			t.Errorf("%s: no promtool case checks its annotations", r.Alert)
		}
	}
}

// runbookAnchors returns the GitHub anchors of the runbook's headings.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := make(map[string]bool)
	inFence := false
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		anchors[githubSlug(strings.TrimLeft(line, "#"))] = true
	}
	return anchors
}

// githubSlug mimics GitHub's heading anchors: lower case, punctuation
// dropped, spaces turned into hyphens.
func githubSlug(heading string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			sb.WriteRune(r)
		case r == ' ':
			sb.WriteRune('-')
		}
	}
	return sb.String()
}

func TestGithubSlug(t *testing.T) {
	for in, want := range map[string]string{
		" FanoutRouteCongested":          "fanoutroutecongested",
		" Before you start: the basics ": "before-you-start-the-basics",
	} {
		if got := githubSlug(in); got != want {
			t.Errorf("githubSlug(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEveryRuleTested requires, for every rule (alert name and severity), a
// promtool case where it fires and one where it must not.
func TestEveryRuleTested(t *testing.T) {
	tests := loadRuleTests(t)
	if !slices.Contains(tests.RuleFiles, rulesFile) {
		t.Errorf("%s does not load %s", rulesTestFile, rulesFile)
	}
	for _, r := range loadRules(t) {
		sev := r.Labels["severity"]
		var firing, quiet bool
		for _, tc := range tests.Tests {
			for _, at := range tc.AlertRuleTest {
				if at.Alertname != r.Alert {
					continue
				}
				fired := slices.ContainsFunc(at.ExpAlerts, func(a expAlert) bool {
					return a.ExpLabels["severity"] == sev
				})
				firing = firing || fired
				quiet = quiet || !fired
			}
		}
		if !firing {
			t.Errorf("%s (%s): no test case where it fires", r.Alert, sev)
		}
		if !quiet {
			t.Errorf("%s (%s): no test case where it must stay quiet", r.Alert, sev)
		}
	}
}

type alertmanagerConfig struct {
	InhibitRules []struct {
		SourceMatchers []string `yaml:"source_matchers"`
		TargetMatchers []string `yaml:"target_matchers"`
		Equal          []string `yaml:"equal"`
	} `yaml:"inhibit_rules"`
}

// TestInhibitionsMatchRules checks that every alert name in alertmanager.yml
// exists, and that the alerts muted per receiver carry the labels the
// inhibition compares (otherwise Alertmanager treats the missing labels as
// equal and mutes every receiver).
func TestInhibitionsMatchRules(t *testing.T) {
	b, err := os.ReadFile(alertmanagerFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg alertmanagerConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	defined := make(map[string]bool)
	for _, r := range loadRules(t) {
		defined[r.Alert] = true
	}
	tests := loadRuleTests(t)
	names := regexp.MustCompile(`Fanout[A-Za-z0-9]+`)
	for i, ir := range cfg.InhibitRules {
		for _, m := range ir.SourceMatchers {
			for _, n := range names.FindAllString(m, -1) {
				if !defined[n] {
					t.Errorf("inhibit_rules[%d]: source %s is not an alert of %s", i, n, rulesFile)
				}
			}
		}
		for _, m := range ir.TargetMatchers {
			for _, n := range names.FindAllString(m, -1) {
				if !defined[n] {
					t.Errorf("inhibit_rules[%d]: target %s is not an alert of %s", i, n, rulesFile)
				}
				for _, tc := range tests.Tests {
					for _, at := range tc.AlertRuleTest {
						if at.Alertname != n {
							continue
						}
						for _, a := range at.ExpAlerts {
							for _, l := range ir.Equal {
								if a.ExpLabels[l] == "" {
									t.Errorf("inhibit_rules[%d]: %s fires without label %q (test %q)", i, n, l, tc.Name)
								}
							}
						}
					}
				}
			}
		}
	}
	if len(cfg.InhibitRules) < 2 {
		t.Errorf("want the receiver-paused and the critical-over-warning inhibitions, got %d rules", len(cfg.InhibitRules))
	}
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Repeat     string `json:"repeat"`
	Datasource *dsRef `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Datasource *dsRef `json:"datasource"`
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

type dashboard struct {
	ID         any         `json:"id"`
	UID        string      `json:"uid"`
	Title      string      `json:"title"`
	Panels     []dashPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
			Datasource *dsRef `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatalf("%s is not valid JSON", dashboardFile)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// flatPanels lists the panels in layout order, including those inside
// collapsed rows.
func flatPanels(ps []dashPanel) []dashPanel {
	var out []dashPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatPanels(p.Panels)...)
	}
	return out
}

func okDatasource(ds *dsRef) bool {
	return ds != nil && ds.Type == "prometheus" && (ds.UID == "${DS_PROMETHEUS}" || ds.UID == "prometheus")
}

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard needs a fixed uid and a title")
	}
	if d.ID != nil {
		t.Errorf("dashboard id should be null so that provisioning assigns one")
	}
	vars := make(map[string]string)
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "query" && !okDatasource(v.Datasource) {
			t.Errorf("variable %s: datasource %+v", v.Name, v.Datasource)
		}
	}
	if vars["topic"] != "query" {
		t.Errorf("want a query template variable named topic, got %v", vars)
	}
	if vars["DS_PROMETHEUS"] != "datasource" {
		t.Errorf("want a datasource variable DS_PROMETHEUS for ${DS_PROMETHEUS}, got %v", vars)
	}

	ids := make(map[int]string)
	inReceiverRow := false
	var receiverExprs []string
	for _, p := range flatPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or shared with %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q: no gridPos", p.Title)
		}
		if p.Type == "row" {
			inReceiverRow = p.Repeat == "topic"
			continue
		}
		if !okDatasource(p.Datasource) {
			t.Errorf("panel %q: datasource %+v", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
				t.Errorf("panel %q: target %q has no expr", p.Title, tg.RefID)
			}
			if !okDatasource(tg.Datasource) {
				t.Errorf("panel %q target %s: datasource %+v", p.Title, tg.RefID, tg.Datasource)
			}
			if inReceiverRow {
				receiverExprs = append(receiverExprs, tg.Expr)
				if !strings.Contains(tg.Expr, `topic=~"$topic"`) {
					t.Errorf("panel %q: per-receiver query not filtered by $topic: %s", p.Title, tg.Expr)
				}
			}
		}
	}
	if len(receiverExprs) == 0 {
		t.Fatalf("no row repeated per topic")
	}
	// The per-receiver row must show ingest, per-route deliveries by outcome and
	// latency, queue fill, pauses, lag in records and seconds, and busy workers.
	all := strings.Join(receiverExprs, "\n")
	for _, m := range []string{
		"fanout_records_consumed_total",
		"fanout_route_deliveries_total",
		"fanout_route_delivery_duration_seconds_bucket",
		"fanout_route_queue_depth",
		"fanout_route_queue_capacity",
		"fanout_partition_paused",
		"fanout_partition_lag_records",
		"fanout_partition_lag_seconds",
		"fanout_route_workers_busy",
	} {
		if !strings.Contains(all, m) {
			t.Errorf("per-receiver row does not show %s", m)
		}
	}
}

var (
	grafanaInterval = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}`)
	grafanaVar      = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*(:[a-z]+)?\}|\$[A-Za-z_][A-Za-z0-9_]*`)
	labelValues     = regexp.MustCompile(`^label_values\((.+),\s*[A-Za-z_][A-Za-z0-9_]*\)$`)
)

// TestDashboardQueriesParse checks every dashboard query with promtool: the
// Grafana variables are substituted, and each query becomes a recording rule
// in a temporary rule file.
func TestDashboardQueriesParse(t *testing.T) {
	d := loadDashboard(t)
	var exprs []string
	for _, p := range flatPanels(d.Panels) {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(strings.TrimSpace(v.Definition))
		if m == nil {
			t.Errorf("variable %s: want label_values(selector, label), got %q", v.Name, v.Definition)
			continue
		}
		exprs = append(exprs, m[1])
	}
	type recording struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []recording
	for i, e := range exprs {
		e = grafanaInterval.ReplaceAllString(e, "5m")
		e = grafanaVar.ReplaceAllString(e, ".*")
		rules = append(rules, recording{fmt.Sprintf("dashboard_query_%d", i), e})
	}
	// JSON is YAML, so promtool reads this as a rule file.
	b, err := json.MarshalIndent(map[string]any{
		"groups": []any{map[string]any{"name": "dashboard-queries", "rules": rules}},
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "promtool", "check", "rules", "--lint=none", f)
}

// TestMetricNamesKnown checks that rules, rule tests and dashboard use only
// metrics the worker exports.
func TestMetricNamesKnown(t *testing.T) {
	names, err := MetricNames(rulesFile, rulesTestFile, dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no fanout_* metric found in rules and dashboard")
	}
	for _, n := range names {
		if !slices.Contains(knownMetrics, n) {
			t.Errorf("%s is used by the rules or the dashboard but is not a metric the worker exports", n)
		}
	}
	// The alerts the brief asks for rest on these.
	rules, err := MetricNames(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{
		"fanout_route_congested", "fanout_route_queue_depth", "fanout_route_queue_capacity",
		"fanout_partition_paused", "fanout_partition_lag_seconds", "fanout_route_deliveries_total",
		"fanout_partition_committed_offset", "fanout_records_consumed_total", "fanout_ready",
	} {
		if !slices.Contains(rules, n) {
			t.Errorf("rules.yml does not use %s", n)
		}
	}
}

func TestMetricNames(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yml")
	b := filepath.Join(dir, "b.json")
	if err := os.WriteFile(a, []byte(`
- alert: FanoutSomething   # names and URLs are not metrics: receiver-fanout/fanout, job="fanout"
  expr: rate(fanout_b_total[5m]) > 0 and fanout_a_seconds_bucket{le="1"} and xfanout_not_this
  description: '{{ query "fanout_a_seconds_count" }} the fanout_ prefix'
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte(`{"expr": "sum(fanout_a_seconds_sum) / sum(fanout_b_total)"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := MetricNames(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"fanout_a_seconds", "fanout_b_total"}; !slices.Equal(got, want) {
		t.Errorf("MetricNames = %q, want %q", got, want)
	}
	if _, err := MetricNames(filepath.Join(dir, "missing.yml")); err == nil {
		t.Error("MetricNames of a missing file: no error")
	}
	if got, err := MetricNames(); err != nil || len(got) != 0 {
		t.Errorf("MetricNames() = %q, %v; want empty", got, err)
	}
}

// notification is one webhook call from Alertmanager.
type notification struct {
	at       time.Time
	receiver string // the URL path: pager or support
	Status   string `json:"status"`
	Alerts   []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// webhookSink collects Alertmanager's webhook notifications.
type webhookSink struct {
	mu   sync.Mutex
	got  []notification
	srv  *httptest.Server
	seen chan struct{} // receives after each notification
}

func newWebhookSink(t *testing.T) *webhookSink {
	s := &webhookSink{seen: make(chan struct{}, 64)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n.at = time.Now()
		n.receiver = strings.TrimPrefix(r.URL.Path, "/")
		s.mu.Lock()
		s.got = append(s.got, n)
		s.mu.Unlock()
		select {
		case s.seen <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *webhookSink) notifications() []notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// shippedConfigWithURL writes alertmanager.yml with its placeholder
// webhook base (http://127.0.0.1:9099) replaced by base, and nothing else
// changed, as an operator deploys it.
func shippedConfigWithURL(t *testing.T, base string) string {
	t.Helper()
	b, err := os.ReadFile(alertmanagerFile)
	if err != nil {
		t.Fatal(err)
	}
	const placeholder = "http://127.0.0.1:9099/"
	if !bytes.Contains(b, []byte(placeholder)) {
		t.Fatalf("%s: no webhook URL under %s to point at the test's listener", alertmanagerFile, placeholder)
	}
	f := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(f, bytes.ReplaceAll(b, []byte(placeholder), []byte(base+"/")), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestAlertmanagerNotifiesCauseFirst runs the shipped alertmanager.yml (its
// webhook URLs pointed at a listener) with the worst ordering Prometheus
// could produce: two symptoms of orders arrive before their cause; then the
// cause arrives, with one symptom resolved (rules.yml drops a symptom while
// its cause fires) and the other still firing (one that fired before the
// stall began). No notification about either symptom may go out while the
// cause fires; the page goes out first, within the pager's group_wait. Once
// the cause resolves, the dropped symptom stays gone and the held one is
// active again (its own condition still holds). A symptom of another
// receiver is notified as usual.
func TestAlertmanagerNotifiesCauseFirst(t *testing.T) {
	sink := newWebhookSink(t)
	base, stop := startAlertmanager(t, shippedConfigWithURL(t, sink.srv.URL))

	cause := labelSet("alertname", "FanoutReceiverPaused", "severity", "critical", "job", "fanout", "topic", "orders")
	held := labelSet("alertname", "FanoutRouteCongested", "severity", "warning", "job", "fanout", "instance", "w1", "topic", "orders", "route", "crm")
	dropped := labelSet("alertname", "FanoutPartitionPaused", "severity", "warning", "job", "fanout", "instance", "w1", "topic", "orders", "partition", "0")
	other := labelSet("alertname", "FanoutRouteCongested", "severity", "warning", "job", "fanout", "instance", "w1", "topic", "payments", "route", "ledger")

	start := time.Now().UTC()
	postAlerts(t, base, postable{held, start, start.Add(time.Hour)}, postable{dropped, start, start.Add(time.Hour)},
		postable{other, start, start.Add(time.Hour)})
	time.Sleep(2 * time.Second) // the symptoms are in Alertmanager before their cause
	causeAt := time.Now().UTC()
	postAlerts(t, base, postable{cause, causeAt, causeAt.Add(time.Hour)}, postable{dropped, start, causeAt})

	// The support route waits 30 s (group_wait): collect until the other
	// receiver's warning has arrived, plus a margin for a late straggler.
	deadline := time.After(45 * time.Second)
	for !slices.ContainsFunc(sink.notifications(), func(n notification) bool { return notifies(n, other, "firing") }) {
		select {
		case <-sink.seen:
		case <-deadline:
			t.Fatalf("no notification for %v within 45 s: %+v\nalertmanager log:\n%s", other, sink.notifications(), stop())
		}
	}
	time.Sleep(2 * time.Second)

	got := sink.notifications()
	if len(got) == 0 || got[0].receiver != "pager" || !notifies(got[0], cause, "firing") {
		t.Fatalf("first notification is not the page for %v: %+v", cause, got)
	}
	if d := got[0].at.Sub(causeAt); d > 15*time.Second {
		t.Errorf("the page went out %s after the cause reached Alertmanager, want within the pager's group_wait (10s)", d)
	} else {
		t.Logf("page sent %s after the cause reached Alertmanager", d.Round(100*time.Millisecond))
	}
	for _, n := range got {
		if notifies(n, held, "") || notifies(n, dropped, "") {
			t.Errorf("notification about a symptom of the paused receiver: %+v", n)
		}
	}

	// The cause resolves: the dropped symptom stays resolved, the held one
	// (still firing in Prometheus) is active and no longer inhibited.
	postAlerts(t, base, postable{cause, causeAt, time.Now().UTC()})
	states := func() map[string]string {
		resp, err := amClient.Get(base + "/api/v2/alerts")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var all []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				State string `json:"state"`
			} `json:"status"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
			t.Fatal(err)
		}
		out := make(map[string]string)
		for _, a := range all {
			out[a.Labels["alertname"]+"/"+a.Labels["topic"]] = a.Status.State
		}
		return out
	}
	var last map[string]string
	if !poll(10*time.Second, func() bool {
		last = states()
		_, causeListed := last["FanoutReceiverPaused/orders"]
		_, droppedListed := last["FanoutPartitionPaused/orders"]
		return !causeListed && !droppedListed && last["FanoutRouteCongested/orders"] == "active"
	}) {
		t.Errorf("after the cause resolved: alerts %v, want only the held symptom (active) and payments' warning", last)
	}
	for _, n := range sink.notifications() {
		if notifies(n, dropped, "firing") {
			t.Errorf("the dropped symptom came back after its cause resolved: %+v", n)
		}
	}
}

// notifies reports whether n carries an alert with exactly these labels,
// in the given status ("" for any).
func notifies(n notification, labels map[string]string, status string) bool {
	return slices.ContainsFunc(n.Alerts, func(a struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	}) bool {
		return maps.Equal(a.Labels, labels) && (status == "" || a.Status == status)
	})
}

// runbookQueries returns the lines of the runbook's promql blocks, each a
// query (a trailing # comment included).
func runbookQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "```promql":
			in = true
		case strings.HasPrefix(line, "```"):
			in = false
		case in && line != "" && !strings.HasPrefix(line, "#"):
			out = append(out, line)
		}
	}
	return out
}

// TestRunbookQueriesParse checks every PromQL query of the runbook with
// promtool, as recording rules of a temporary rule file.
func TestRunbookQueriesParse(t *testing.T) {
	queries := runbookQueries(t)
	if len(queries) < 20 {
		t.Fatalf("found %d runbook queries; the promql blocks were not found", len(queries))
	}
	type recording struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []recording
	for i, q := range queries {
		rules = append(rules, recording{fmt.Sprintf("runbook_query_%d", i), q})
	}
	b, err := json.MarshalIndent(map[string]any{
		"groups": []any{map[string]any{"name": "runbook-queries", "rules": rules}},
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "runbook-queries.yml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "promtool", "check", "rules", "--lint=none", f)
}

// TestRunbookCulpritQueriesTested requires every runbook query marked
// "# culprit" (it names the route or instance to look at) to be run, as
// written, by a promql_expr_test of rules_test.yml against an incident's
// recorded series.
func TestRunbookCulpritQueriesTested(t *testing.T) {
	tested := make(map[string]bool)
	for _, tc := range loadRuleTests(t).Tests {
		for _, pt := range tc.PromqlExprTest {
			tested[strings.TrimSpace(pt.Expr)] = true
		}
	}
	n := 0
	for _, q := range runbookQueries(t) {
		expr, comment, ok := strings.Cut(q, "#")
		if !ok || !strings.HasPrefix(strings.TrimSpace(comment), "culprit") {
			continue
		}
		n++
		if expr = strings.TrimSpace(expr); !tested[expr] {
			t.Errorf("runbook culprit query %q is not a promql_expr_test of %s", expr, rulesTestFile)
		}
	}
	if n < 5 {
		t.Errorf("found %d culprit queries in the runbook, want at least 5", n)
	}
}
