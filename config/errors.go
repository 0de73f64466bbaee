package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with the configuration.
type Problem struct {
	// Line is the 1-based line in the file, or 0 when unknown (an
	// environment variable, or a File built in code).
	Line int
	// Path locates the field: "receivers[0].routes[1].http.url" in the
	// file, or the variable name ("FANOUT_START_OFFSET") for the
	// environment. It is empty for problems of the file as a whole, such
	// as a YAML syntax error.
	Path string
	// Msg says what is wrong. It never contains a secret.
	Msg string
}

// ValidationError lists every problem found in one source. Error prints
// one problem per line, formatted "<file>:<line>: <path>: <msg>", leaving
// out the parts that are unknown.
type ValidationError struct {
	// File is the name the configuration was loaded from; empty for the
	// environment and for a File validated in code.
	File     string
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.format(e.File))
	}
	return b.String()
}

func (p Problem) format(file string) string {
	var b strings.Builder
	if file != "" {
		b.WriteString(file)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// EnvProblems reports problems of the environment found outside its own
// checks (reading the TLS files it names, say) as a *ValidationError in
// the environment's form: each Path a variable name. nil when list is
// empty.
func EnvProblems(list []Problem) error {
	if len(list) == 0 {
		return nil
	}
	return &ValidationError{Problems: list}
}

// problems collects Problems, keeping at most one per path: the first is
// the cause. A field that failed to decode is "broken": what validation
// would then say about it or anything inside it is noise, and is dropped.
type problems struct {
	list   []Problem
	seen   map[string]bool // paths with a problem
	failed map[string]bool // paths that failed to decode
	lines  map[string]int  // path -> line where the field was written
	// env maps the paths whose value came from environment variables to
	// those variables, so that messages name them instead of quoting the
	// value, which may be a secret.
	env map[string][]string
}

func newProblems() *problems {
	return &problems{
		seen:   make(map[string]bool),
		failed: make(map[string]bool),
		lines:  make(map[string]int),
		env:    make(map[string][]string),
	}
}

// brokenLine records a decoding problem at path and silences later problems
// at path and below it.
func (p *problems) brokenLine(line int, path, msg string) {
	p.addLine(line, path, msg)
	p.failed[path] = true
}

func (p *problems) broken(path, msg string) { p.brokenLine(p.lineOf(path), path, msg) }

// addf records a problem at path, on the line where path (or its nearest
// written ancestor) appears in the file.
func (p *problems) addf(path, format string, args ...any) {
	p.addLine(p.lineOf(path), path, fmt.Sprintf(format, args...))
}

func (p *problems) addLine(line int, path, msg string) {
	if path != "" {
		if p.seen[path] {
			return
		}
		for a := parentPath(path); a != ""; a = parentPath(a) {
			if p.failed[a] {
				return
			}
		}
		p.seen[path] = true
	}
	p.list = append(p.list, Problem{Line: line, Path: path, Msg: msg})
}

// quote renders the value of the field at path for a message: quoted
// (and truncated) when it was written in the file, or as the variables it
// came from, unshown, when it came from the environment.
func (p *problems) quote(path, value string) string {
	if names := p.env[path]; len(names) > 0 {
		return "${" + strings.Join(names, "}${") + "} (value not shown)"
	}
	return fmt.Sprintf("%q", truncate(value, 80))
}

// from names the variables the value at path came from, for a message
// about it written elsewhere: " (from ${A}, value not shown)", or "".
func (p *problems) from(path string) string {
	if names := p.env[path]; len(names) > 0 {
		return " (from ${" + strings.Join(names, "}${") + "}, value not shown)"
	}
	return ""
}

// lineOf returns the line of path or of its closest ancestor that has one.
func (p *problems) lineOf(path string) int {
	for path != "" {
		if l, ok := p.lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// err returns the collected problems as a *ValidationError sorted by line,
// or nil when there are none.
func (p *problems) err(file string) error {
	if len(p.list) == 0 {
		return nil
	}
	list := slices.Clone(p.list)
	slices.SortStableFunc(list, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	return &ValidationError{File: file, Problems: list}
}

// parentPath strips the last ".name", "[i]" or "[\"key\"]" from path.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndex(path, "["); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// indexPath names a list item.
func indexPath(parent string, i int) string { return fmt.Sprintf("%s[%d]", parent, i) }

// KeyPath names a map entry in a field path: headers.Authorization, or
// headers["a b"] when the key would not read as one path element (letters,
// digits, '-' and '_').
func KeyPath(parent, key string) string {
	plain := key != ""
	for _, c := range key {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			plain = false
			break
		}
	}
	if plain {
		return parent + "." + key
	}
	return fmt.Sprintf("%s[%q]", parent, key)
}
