package tools

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPins(t *testing.T) {
	seen := make(map[string]bool)
	for _, tool := range All {
		if seen[tool.Name] {
			t.Errorf("%s pinned twice", tool.Name)
		}
		seen[tool.Name] = true
		if !strings.HasPrefix(tool.Version, "v") || !strings.HasPrefix(tool.Sum, "h1:") || tool.Package == "" {
			t.Errorf("%s: incomplete pin %+v", tool.Name, tool)
		}
		if got, ok := Lookup(tool.Name); !ok || got.Name != tool.Name {
			t.Errorf("Lookup(%q) = %v, %v", tool.Name, got, ok)
		}
	}
	for _, want := range []string{"promtool", "prometheus", "amtool", "alertmanager"} {
		if !seen[want] {
			t.Errorf("%s is not pinned", want)
		}
	}
	if _, ok := Lookup("kubectl"); ok {
		t.Error("Lookup of an unpinned tool succeeded")
	}
}

func TestDirNamesVersionAndTags(t *testing.T) {
	a := Tool{Name: "x", Module: "example.com/m", Version: "v1.2.3"}
	b := a
	b.Tags = "t1,t2"
	if a.Dir("/r") == b.Dir("/r") {
		t.Errorf("a change of tags keeps the folder %s", a.Dir("/r"))
	}
	if want := filepath.Join("/r", ".cache", "tools", "m-v1.2.3+t1+t2"); b.Dir("/r") != want {
		t.Errorf("Dir = %s, want %s", b.Dir("/r"), want)
	}
	c := a
	c.Version = "v1.2.4"
	if a.Dir("/r") == c.Dir("/r") {
		t.Errorf("a new version keeps the folder %s", a.Dir("/r"))
	}
}

func TestRootIsTheRepository(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "tools", "tools.go")); err != nil {
		t.Errorf("Root() = %s: %v", root, err)
	}
}

func TestPathOfUnpinnedToolFails(t *testing.T) {
	if _, err := Path("kubectl"); err == nil || !strings.Contains(err.Error(), "not a pinned tool") {
		t.Errorf("Path(kubectl) error = %v", err)
	}
}

// An existing binary is never rebuilt: Install returns at once without
// calling the go command (which would fail on this fake module).
func TestInstallKeepsABuiltBinary(t *testing.T) {
	root := t.TempDir()
	tool := Tool{Name: "fake", Module: "example.invalid/fake", Version: "v0.0.1", Sum: "h1:x", Package: "cmd/fake"}
	if err := os.MkdirAll(tool.Dir(root), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tool.Bin(root), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	built, err := Install(context.Background(), root, tool, &out)
	if err != nil || built {
		t.Errorf("Install of a built tool = %v, %v (%s)", built, err, out.String())
	}
}

// The module's hash is checked against the pin before anything is built.
func TestDownloadRejectsAnotherHash(t *testing.T) {
	tool, _ := Lookup("amtool")
	tool.Sum = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	var out bytes.Buffer
	_, err := download(t.Context(), tool, &out)
	if err == nil || !strings.Contains(err.Error(), "pinned "+tool.Sum) {
		t.Errorf("download with a wrong pin: %v (%s)", err, out.String())
	}
}
