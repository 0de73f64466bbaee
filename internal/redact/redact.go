// Package redact renders webhook URLs for people without the parts that
// carry credentials. It is the one place that decides what of a URL may be
// shown: errors, logs, dead-letter headers, metrics and `fanout validate`
// all go through it.
//
// Only the scheme and the host (with its port) are shown. Everything else
// can be a credential: user info (https://user:password@host), the query
// (?token=...), and the path, because Slack, Discord, Microsoft Teams and
// Zapier put the webhook's secret in it
// (https://hooks.slack.com/services/T0/B0/secret).
package redact

import (
	"cmp"
	"net/url"
	"slices"
	"strings"
)

// Elided stands for a part of a URL that was removed.
const Elided = "…"

// minPart is the shortest part of a URL that Replacer removes from texts.
const minPart = 4

// URL returns raw as scheme://host[:port], followed by "/…" when raw has a
// path beyond "/" and "?…" when it has a query. User info and the fragment
// are dropped. A URL without a host (mailto:x) shows as its scheme and
// "…"; a URL that does not parse becomes "<invalid URL>".
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid URL>"
	}
	if u.Host == "" {
		if u.Scheme == "" {
			return Elided
		}
		return u.Scheme + ":" + Elided
	}
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteString("://")
	b.WriteString(u.Host)
	switch p := u.EscapedPath(); {
	case p == "" || p == "/":
		b.WriteString(p)
	default:
		b.WriteString("/" + Elided)
	}
	if u.RawQuery != "" || u.ForceQuery {
		b.WriteString("?" + Elided)
	}
	return b.String()
}

// Replacer returns a replacer that removes from any text the parts of raw
// that URL hides: raw itself becomes URL(raw), and its user info, password,
// path, query and fragment (each when at least 4 bytes long, so that common
// words survive) become "…" wherever they appear. It is for texts that may
// quote a URL without meaning to, such as a transport error repeating a
// server's malformed answer.
func Replacer(raw string) *strings.Replacer {
	pairs := []string{raw, URL(raw)}
	u, err := url.Parse(raw)
	if err != nil {
		return strings.NewReplacer(pairs...)
	}
	var parts []string
	if u.User != nil {
		parts = append(parts, u.User.String())
		if pw, ok := u.User.Password(); ok {
			parts = append(parts, pw)
		}
	}
	parts = append(parts, u.EscapedPath(), u.Path)
	if u.RawQuery != "" {
		parts = append(parts, u.RawQuery)
		if q, err := url.QueryUnescape(u.RawQuery); err == nil {
			parts = append(parts, q)
		}
	}
	if u.Fragment != "" {
		parts = append(parts, u.EscapedFragment(), u.Fragment)
	}
	// Longest first, so that a part containing another is removed whole.
	slices.SortStableFunc(parts, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, p := range parts {
		if len(p) >= minPart {
			pairs = append(pairs, p, Elided)
		}
	}
	return strings.NewReplacer(pairs...)
}
