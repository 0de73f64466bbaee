package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// The YAML-tree walker: the file is decoded by walking goccy/go-yaml's
// syntax tree rather than with its reflection decoder, so that every
// problem (unknown field, wrong type, unset variable) is reported at once
// with its field path and line, ${VAR} works in any scalar, and no decoded
// value is echoed by accident. The fields of each mapping are in
// schema.go.

// maxSteps bounds the nodes one decode visits, so that aliases expanding
// aliases (a "billion laughs" document) cannot make it run away.
const maxSteps = 1_000_000

// maxMergeDepth bounds nested merge keys (<<), which may refer to
// themselves through aliases.
const maxMergeDepth = 16

type decoder struct {
	lookup  Lookup
	p       *problems
	anchors map[string][]anchorDef
	steps   int
	tooBig  bool
}

type anchorDef struct {
	offset int
	node   ast.Node
}

// entry is one key of a mapping, after merge keys are applied.
type entry struct {
	key   string
	line  int
	value ast.Node
}

// fields maps the known keys of a mapping to their decoders, which get the
// value node with anchors, tags and aliases resolved and nulls skipped.
type fields map[string]func(v ast.Node, path string)

func newDecoder(lookup Lookup, p *problems) *decoder {
	return &decoder{lookup: lookup, p: p, anchors: make(map[string][]anchorDef)}
}

// collectAnchors records every anchor of the document with its offset, so
// that an alias resolves to the closest anchor of its name before it.
func (d *decoder) collectAnchors(n ast.Node, depth int) {
	if n == nil || depth > 1000 {
		return
	}
	switch v := n.(type) {
	case *ast.AnchorNode:
		if v.Name != nil && v.Name.GetToken() != nil {
			d.anchors[v.Name.GetToken().Value] = append(d.anchors[v.Name.GetToken().Value], anchorDef{offsetOf(v), v.Value})
		}
		d.collectAnchors(v.Value, depth+1)
	case *ast.TagNode:
		d.collectAnchors(v.Value, depth+1)
	case *ast.MappingNode:
		for _, mv := range v.Values {
			d.collectAnchors(mv, depth+1)
		}
	case *ast.MappingValueNode:
		d.collectAnchors(v.Key, depth+1)
		d.collectAnchors(v.Value, depth+1)
	case *ast.MappingKeyNode:
		d.collectAnchors(v.Value, depth+1)
	case *ast.SequenceNode:
		for _, item := range v.Values {
			d.collectAnchors(item, depth+1)
		}
	}
}

func offsetOf(n ast.Node) int {
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Offset
	}
	return 0
}

func nodeLine(n ast.Node) int {
	if n == nil {
		return 0
	}
	if _, ok := n.(*ast.DocumentNode); ok {
		return 0 // an empty document has no token
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

// step counts a visited node and reports whether the budget allows more.
func (d *decoder) step() bool {
	d.steps++
	if d.steps <= maxSteps {
		return true
	}
	if !d.tooBig {
		d.tooBig = true
		d.p.addLine(0, "", "the document expands to too many nodes (aliases referring to aliases?)")
	}
	return false
}

// resolve strips anchors and tags and follows aliases. It returns nil
// after reporting a problem.
func (d *decoder) resolve(n ast.Node, path string) ast.Node {
	for range 64 {
		if !d.step() {
			return nil
		}
		switch v := n.(type) {
		case nil:
			return nil
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.MappingKeyNode:
			n = v.Value
		case *ast.AliasNode:
			name := ""
			if v.Value != nil && v.Value.GetToken() != nil {
				name = v.Value.GetToken().Value
			}
			var target ast.Node
			at := offsetOf(v)
			for _, a := range d.anchors[name] {
				if a.offset < at {
					target = a.node
				}
			}
			if target == nil {
				d.p.brokenLine(nodeLine(v), path, fmt.Sprintf("alias *%s refers to no anchor before it", truncate(name, 40)))
				return nil
			}
			n = target
		default:
			return n
		}
	}
	d.p.brokenLine(nodeLine(n), path, "anchors and aliases nest too deeply")
	return nil
}

func isNull(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return ok
}

// kind names a node's type for messages, with its article.
func kind(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.NullNode:
		return "null"
	}
	return "another kind of value"
}

// mapping returns the entries of a mapping node, merge keys applied:
// explicit keys win over merged ones, and earlier merges over later ones.
func (d *decoder) mapping(n ast.Node, path string, depth int) ([]entry, bool) {
	n = d.resolve(n, path)
	var values []*ast.MappingValueNode
	switch m := n.(type) {
	case nil:
		return nil, false
	case *ast.NullNode:
		return nil, true
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	default:
		d.p.brokenLine(nodeLine(n), path, fmt.Sprintf("must be a mapping, got %s", kind(n)))
		return nil, false
	}
	var explicit, merged []entry
	for _, mv := range values {
		if mv == nil || mv.Key == nil {
			continue
		}
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			merged = append(merged, d.merge(mv.Value, path, depth+1)...)
			continue
		}
		key, ok := d.key(mv.Key, path)
		if !ok {
			continue
		}
		explicit = append(explicit, entry{key: key, line: nodeLine(mv.Key), value: mv.Value})
	}
	if len(merged) == 0 {
		return explicit, true
	}
	seen := make(map[string]bool, len(explicit))
	for _, e := range explicit {
		seen[e.key] = true
	}
	for _, e := range merged {
		if !seen[e.key] {
			seen[e.key] = true
			explicit = append(explicit, e)
		}
	}
	return explicit, true
}

// merge returns the entries a merge key's value brings: a mapping, or a
// list of mappings.
func (d *decoder) merge(v ast.Node, path string, depth int) []entry {
	if depth > maxMergeDepth {
		d.p.brokenLine(nodeLine(v), path, "merge keys (<<) nest too deeply")
		return nil
	}
	rv := d.resolve(v, path)
	if seq, ok := rv.(*ast.SequenceNode); ok {
		var out []entry
		for _, item := range seq.Values {
			es, _ := d.mapping(item, path, depth)
			out = append(out, es...)
		}
		return out
	}
	if rv == nil {
		return nil
	}
	es, _ := d.mapping(rv, path, depth)
	return es
}

// key returns a mapping key as a string. Keys are not expanded.
func (d *decoder) key(k ast.Node, path string) (string, bool) {
	rk := d.resolve(k, path)
	switch v := rk.(type) {
	case nil:
		return "", false
	case *ast.StringNode:
		return v.Value, true
	case ast.ScalarNode:
		if tk := v.GetToken(); tk != nil {
			return tk.Value, true
		}
	}
	d.p.brokenLine(nodeLine(k), path, fmt.Sprintf("keys must be strings, got %s", kind(rk)))
	return "", false
}

// object decodes a mapping with known keys, reporting unknown ones. Keys
// starting with "x-" are ignored where allowExt is set, so anchors can be
// defined there.
func (d *decoder) object(n ast.Node, path string, fs fields, allowExt bool) {
	entries, _ := d.mapping(n, path, 0)
	for _, e := range entries {
		p := KeyPath(path, e.key)
		if path == "" {
			p = e.key
		}
		if _, ok := d.p.lines[p]; !ok {
			d.p.lines[p] = e.line
		}
		fn, known := fs[e.key]
		if !known {
			if allowExt && strings.HasPrefix(e.key, "x-") {
				continue
			}
			msg := "unknown field"
			if s := suggest(e.key, fs); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			d.p.addLine(e.line, p, msg)
			continue
		}
		v := d.resolve(e.value, p)
		if v == nil || isNull(v) {
			continue // absent: the default stands
		}
		fn(v, p)
	}
}

// sequence calls fn for each item of a list.
func (d *decoder) sequence(n ast.Node, path string, fn func(i int, item ast.Node, path string)) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.p.brokenLine(nodeLine(n), path, fmt.Sprintf("must be a list, got %s", kind(n)))
		return
	}
	for i, item := range seq.Values {
		p := indexPath(path, i)
		d.p.lines[p] = nodeLine(item)
		fn(i, item, p)
	}
}

// scalar returns the text of a scalar node, expanded when it is a string.
// want names the expected type for the mismatch message.
func (d *decoder) scalar(n ast.Node, path, want string) (s string, ok bool) {
	n = d.resolve(n, path)
	switch v := n.(type) {
	case nil:
		return "", false
	case *ast.StringNode:
		return d.expand(v.Value, nodeLine(v), path)
	case *ast.LiteralNode:
		if v.Value == nil {
			return "", true
		}
		return d.expand(v.Value.Value, nodeLine(v), path)
	case *ast.NullNode:
		return "", true
	case ast.ScalarNode:
		if tk := v.GetToken(); tk != nil {
			return tk.Value, true
		}
		return "", true
	}
	d.p.brokenLine(nodeLine(n), path, fmt.Sprintf("must be %s, got %s", want, kind(n)))
	return "", false
}

func (d *decoder) expand(s string, line int, path string) (string, bool) {
	out, names, err := expand(s, d.lookup)
	if err != nil {
		d.p.brokenLine(line, path, err.Error())
		return "", false
	}
	if len(names) > 0 {
		d.p.env[path] = names
	}
	return out, true
}

func (d *decoder) str(n ast.Node, path string) string {
	s, _ := d.scalar(n, path, "a string")
	return s
}

func (d *decoder) integer(n ast.Node, path string, dst *int) {
	s, ok := d.scalar(n, path, "an integer")
	if !ok {
		return
	}
	i, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
	if err != nil || i < math.MinInt || i > math.MaxInt {
		d.p.broken(path, "must be an integer, got "+d.p.quote(path, s))
		return
	}
	*dst = int(i)
}

func (d *decoder) duration(n ast.Node, path string, dst *time.Duration) {
	s, ok := d.scalar(n, path, "a duration")
	if !ok {
		return
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		d.p.broken(path, "must be a duration such as 500ms, 5s or 1m, got "+d.p.quote(path, s))
		return
	}
	*dst = v
}

func (d *decoder) boolean(n ast.Node, path string, dst *bool) {
	s, ok := d.scalar(n, path, "true or false")
	if !ok {
		return
	}
	v, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		d.p.broken(path, "must be true or false, got "+d.p.quote(path, s))
		return
	}
	*dst = v
}

// strList accepts a list of strings, or one comma-separated string (handy
// with ${VAR}).
func (d *decoder) strList(n ast.Node, path string) []string {
	if _, ok := n.(*ast.SequenceNode); !ok {
		s, ok := d.scalar(n, path, "a list of strings")
		if !ok || strings.TrimSpace(s) == "" {
			return nil
		}
		parts := strings.Split(s, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
			ip := indexPath(path, i)
			d.p.lines[ip] = d.p.lineOf(path)
			if names := d.p.env[path]; len(names) > 0 {
				d.p.env[ip] = names
			}
		}
		return parts
	}
	var out []string
	d.sequence(n, path, func(_ int, item ast.Node, p string) {
		if s, ok := gluedPair(item); ok {
			out = append(out, s)
			return
		}
		out = append(out, d.str(item, p))
	})
	return out
}

// gluedPair works around a go-yaml v1.19 parser bug: inside a flow mapping,
// a flow list item such as host:9092 comes out as the mapping {host: 9092}
// although no space follows the colon. It returns the original text of
// such an item.
func gluedPair(n ast.Node) (string, bool) {
	var mv *ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingValueNode:
		mv = v
	case *ast.MappingNode:
		if len(v.Values) != 1 {
			return "", false
		}
		mv = v.Values[0]
	default:
		return "", false
	}
	if mv == nil || mv.Start == nil || mv.Start.Position == nil || mv.Key == nil || mv.Value == nil {
		return "", false
	}
	k, kok := mv.Key.(ast.ScalarNode)
	v, vok := mv.Value.(ast.ScalarNode)
	if !kok || !vok || isNull(v) {
		return "", false
	}
	kt, vt, colon := k.GetToken(), v.GetToken(), mv.Start.Position
	if kt == nil || vt == nil || vt.Position == nil || kt.Position == nil ||
		vt.Position.Line != colon.Line || vt.Position.Column != colon.Column+1 ||
		kt.Position.Line != colon.Line || kt.Position.Column+len(kt.Value) != colon.Column {
		return "", false
	}
	return kt.Value + ":" + vt.Value, true
}

// strMap decodes a mapping of strings. Values are never echoed: header
// values are credentials.
func (d *decoder) strMap(n ast.Node, path string) map[string]string {
	entries, ok := d.mapping(n, path, 0)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		p := KeyPath(path, e.key)
		d.p.lines[p] = e.line
		v := d.resolve(e.value, p)
		if v == nil {
			continue
		}
		out[e.key] = d.str(v, p)
	}
	return out
}
