// Package config loads the worker's configuration: process settings from
// FANOUT_* environment variables ([Env], [LoadEnv]) and the receivers and
// routes from a YAML file ([File], [LoadFile], [Parse]).
//
// Everything is checked once, at startup, and every problem is reported at
// the same time as a [*ValidationError] whose lines read
//
//	fanout.yaml:14: receivers[0].routes[1].http.url: must be an absolute http or https URL with a host
//
// Secrets (the SASL password, HTTP route headers and signing secrets) never
// appear in errors or summaries. The package has no global state; every
// function is safe for concurrent use.
package config
