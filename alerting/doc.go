// Package alerting holds the worker's observability contract: its Prometheus
// metrics, the alerting rules built on them (rules.yml, unit-tested by
// rules_test.yml), an example Alertmanager configuration (alertmanager.yml)
// and the Grafana dashboard (dashboard.json). The runbook linked from every
// alert is docs/runbook.md.
//
// The tests of this package run the real tools, promtool, amtool and
// alertmanager, at the versions pinned in package tools (`make tools` builds
// them from the Go module proxy), and fail when they are missing. They also check that every fanout_* metric named by the rules and
// the dashboard is one the worker exports; MetricNames extracts those names
// so that a test against a running worker can check the same list.
package alerting
