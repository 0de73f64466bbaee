package config

import (
	"fmt"
	"strings"
)

// Lookup returns the value of an environment variable and whether it is
// set, like os.LookupEnv.
type Lookup func(name string) (string, bool)

// expand replaces ${NAME} in s with the value of NAME and ${NAME:-word}
// with the value, or word when NAME is unset or empty. $${ stands for a
// literal ${; any other $ is kept as is. Expanded text is not expanded
// again. names lists the variables that went into the result.
//
// Errors name the variable or quote the malformed reference, never the
// value of s, which may hold a secret around the reference.
func expand(s string, lookup Lookup) (out string, names []string, err error) {
	if !strings.Contains(s, "${") {
		return s, nil, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), names, nil
		}
		if i > 0 && s[i-1] == '$' { // $${ -> ${
			b.WriteString(s[:i])
			b.WriteString("{")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", nil, fmt.Errorf("unterminated ${ (write $${ for a literal ${)")
		}
		ref := s[i+2 : i+2+end]
		s = s[i+2+end+1:]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validVarName(name) {
			return "", nil, fmt.Errorf("invalid variable reference ${%s}: want ${NAME} or ${NAME:-default} with NAME of letters, digits and _", truncate(name, 40))
		}
		v, ok := lookup(name)
		switch {
		case hasDef && v == "":
			v = def
		case !ok:
			return "", nil, fmt.Errorf("environment variable %s is not set", name)
		}
		b.WriteString(v)
		names = append(names, name)
	}
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
