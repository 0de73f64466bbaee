package config

import (
	"strings"
	"testing"
)

func mapLookup(m map[string]string) Lookup {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestExpand(t *testing.T) {
	env := mapLookup(map[string]string{"A": "alpha", "EMPTY": "", "NESTED": "${A}"})
	tests := []struct {
		name, in, want, wantErr string
		wantNames               []string
	}{
		{name: "no reference", in: "plain $A text", want: "plain $A text"},
		{name: "whole value", in: "${A}", want: "alpha", wantNames: []string{"A"}},
		{name: "inside text", in: "Bearer ${A}!", want: "Bearer alpha!", wantNames: []string{"A"}},
		{name: "twice", in: "${A}-${A}", want: "alpha-alpha", wantNames: []string{"A", "A"}},
		{name: "set but empty", in: "x${EMPTY}y", want: "xy", wantNames: []string{"EMPTY"}},
		{name: "default when unset", in: "${NOPE:-dflt}", want: "dflt", wantNames: []string{"NOPE"}},
		{name: "default when empty", in: "${EMPTY:-dflt}", want: "dflt", wantNames: []string{"EMPTY"}},
		{name: "default unused", in: "${A:-dflt}", want: "alpha", wantNames: []string{"A"}},
		{name: "escaped", in: "$${A}", want: "${A}"},
		{name: "not expanded twice", in: "${NESTED}", want: "${A}", wantNames: []string{"NESTED"}},
		{name: "unset", in: "Bearer ${NOPE}", wantErr: "environment variable NOPE is not set"},
		{name: "unterminated", in: "x ${A", wantErr: "unterminated ${"},
		{name: "empty name", in: "${}", wantErr: "invalid variable reference ${}"},
		{name: "bad name", in: "${1A}", wantErr: "invalid variable reference ${1A}"},
		{name: "space in name", in: "${A B}", wantErr: "invalid variable reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, names, err := expand(tt.in, env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("expand(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("expand(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if strings.Join(names, ",") != strings.Join(tt.wantNames, ",") {
				t.Errorf("expand(%q) names = %v, want %v", tt.in, names, tt.wantNames)
			}
		})
	}
}
