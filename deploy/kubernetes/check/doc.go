// Package check validates the Helm chart in deploy/kubernetes/fanout offline:
// its tests render the chart with Helm's own engine (as `helm template`
// does), decode every object strictly into the Kubernetes, KEDA and
// prometheus-operator Go types, hold the objects to what the worker needs
// (static membership, probes, drain budget, memory), check the pods
// against the "restricted" Pod Security Standard, run the worker's own
// `fanout validate` on the environment and receivers file a pod gets, and
// compare the PrometheusRule with alerting/rules.yml.
//
// It is a module of its own so that the worker's go.mod does not gain
// Kubernetes; `make test` and `make lint` run it.
package check
