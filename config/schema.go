package config

// The schema of the receivers file: which fields each mapping has and how
// each decodes, on the YAML-tree walker of walk.go. What the values must
// be is checked after decoding, in validate.go.

import (
	"math"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

func (d *decoder) file(body ast.Node) *File {
	f := &File{}
	if body == nil || isNull(body) {
		return f
	}
	d.object(body, "", fields{
		"receivers": func(v ast.Node, p string) {
			d.sequence(v, p, func(_ int, item ast.Node, ip string) {
				f.Receivers = append(f.Receivers, d.receiver(item, ip))
			})
		},
	}, true)
	return f
}

func (d *decoder) receiver(n ast.Node, path string) Receiver {
	r := Receiver{MaxInflight: DefaultMaxInflight, MaxInflightMiB: DefaultMaxInflightMiB}
	d.object(n, path, fields{
		"topic":            func(v ast.Node, p string) { r.Topic = d.str(v, p) },
		"max_inflight":     func(v ast.Node, p string) { d.integer(v, p, &r.MaxInflight) },
		"max_inflight_mib": func(v ast.Node, p string) { d.integer(v, p, &r.MaxInflightMiB) },
		"routes": func(v ast.Node, p string) {
			d.sequence(v, p, func(_ int, item ast.Node, ip string) {
				r.Routes = append(r.Routes, d.route(item, ip))
			})
		},
	}, false)
	return r
}

func (d *decoder) route(n ast.Node, path string) Route {
	// Set explicitly or not: an explicit 0 is checked, not defaulted.
	workers, buffer := false, false
	rt := Route{
		Ordering: DefaultOrdering,
		Retry:    Retry{InitialBackoff: DefaultInitialBackoff, MaxBackoff: DefaultMaxBackoff},
	}
	d.object(n, path, fields{
		"name":              func(v ast.Node, p string) { rt.Name = d.str(v, p) },
		"type":              func(v ast.Node, p string) { rt.Type = RouteType(d.str(v, p)) },
		"workers":           func(v ast.Node, p string) { workers = true; d.integer(v, p, &rt.Workers) },
		"buffer":            func(v ast.Node, p string) { buffer = true; d.integer(v, p, &rt.Buffer) },
		"ordering":          func(v ast.Node, p string) { rt.Ordering = Ordering(d.str(v, p)) },
		"dead_letter_topic": func(v ast.Node, p string) { rt.DeadLetterTopic = d.str(v, p) },
		"filter": func(v ast.Node, p string) {
			rt.Filter = &Filter{}
			d.object(v, p, fields{
				"headers": func(v ast.Node, p string) { rt.Filter.Headers = d.strMap(v, p) },
			}, false)
		},
		"retry": func(v ast.Node, p string) {
			d.object(v, p, fields{
				"max_attempts":    func(v ast.Node, p string) { d.integer(v, p, &rt.Retry.MaxAttempts) },
				"initial_backoff": func(v ast.Node, p string) { d.duration(v, p, &rt.Retry.InitialBackoff) },
				"max_backoff":     func(v ast.Node, p string) { d.duration(v, p, &rt.Retry.MaxBackoff) },
			}, false)
		},
		"http":  func(v ast.Node, p string) { rt.HTTP = d.http(v, p) },
		"kafka": func(v ast.Node, p string) { rt.Kafka = d.kafka(v, p) },
		"spill": func(v ast.Node, p string) {
			rt.Spill = &Spill{After: DefaultSpillAfter}
			d.object(v, p, fields{
				"topic": func(v ast.Node, p string) { rt.Spill.Topic = d.str(v, p) },
				"after": func(v ast.Node, p string) { d.duration(v, p, &rt.Spill.After) },
			}, false)
		},
	}, false)
	if !workers {
		rt.Workers = DefaultWorkersFor(rt.Type)
	}
	if !buffer {
		rt.Buffer = DefaultBufferFor(rt.Type)
	}
	return rt
}

func (d *decoder) http(n ast.Node, path string) *HTTP {
	h := &HTTP{Timeout: DefaultHTTPTimeout}
	d.object(n, path, fields{
		"url":            func(v ast.Node, p string) { h.URL = d.str(v, p) },
		"timeout":        func(v ast.Node, p string) { d.duration(v, p, &h.Timeout) },
		"headers":        func(v ast.Node, p string) { h.Headers = d.strMap(v, p) },
		"signing_secret": func(v ast.Node, p string) { h.SigningSecret = Secret(d.str(v, p)) },
		"tls": func(v ast.Node, p string) {
			h.TLS = &TLS{}
			d.object(v, p, fields{
				"ca_file":              func(v ast.Node, p string) { h.TLS.CAFile = d.str(v, p) },
				"cert_file":            func(v ast.Node, p string) { h.TLS.CertFile = d.str(v, p) },
				"key_file":             func(v ast.Node, p string) { h.TLS.KeyFile = d.str(v, p) },
				"insecure_skip_verify": func(v ast.Node, p string) { d.boolean(v, p, &h.TLS.InsecureSkipVerify) },
			}, false)
		},
	}, false)
	return h
}

func (d *decoder) kafka(n ast.Node, path string) *Kafka {
	k := &Kafka{}
	d.object(n, path, fields{
		"topic":   func(v ast.Node, p string) { k.Topic = d.str(v, p) },
		"brokers": func(v ast.Node, p string) { k.Brokers = d.strList(v, p) },
	}, false)
	return k
}

// suggest returns the known key closest to a misspelt one, if close.
func suggest(key string, fs fields) string {
	best, bestDist := "", 3
	for k := range fs {
		if dist := editDistance(strings.ToLower(key), k); dist < bestDist || (dist == bestDist && best != "" && k < best) {
			best, bestDist = k, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance, for short keys.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
