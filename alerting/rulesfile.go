package alerting

import _ "embed"

// RulesYAML is rules.yml as built into the binary: `fanout demo` evaluates
// these very rules on its own metrics.
//
//go:embed rules.yml
var RulesYAML []byte
