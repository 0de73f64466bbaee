// Package tools pins the Prometheus programs that the tests run (promtool,
// prometheus, amtool, alertmanager) and builds them from the Go module
// proxy into the repository's .cache/tools, so that `make test` needs
// nothing but Go. The tests take the binaries from Path, never from PATH.
//
// Each tool is built from its module at a pinned version whose go.sum hash
// is checked before the build, with that module's own go.mod and go.sum
// (as `go install module/cmd/x@version` would), so the product's go.mod
// stays its own. Binaries land in .cache/tools/<module>-<version>[+tags]/,
// so a new pin builds anew and a stale binary is never picked up.
//
// `go run ./tools/install` (the Makefile's tools target, which test
// depends on) builds the missing ones.
package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// Tool is one pinned program.
type Tool struct {
	Name    string // binary name
	Module  string // Go module holding it
	Version string // module version
	Sum     string // h1: hash of the module's zip, as go.sum records it
	Package string // main package, relative to the module root
	// Tags are build tags: remove_all_sd drops Prometheus' cloud service
	// discovery plugins, which neither the tests nor promtool's rule
	// commands use, and which are most of the build time; enable_dns_sd
	// keeps DNS discovery, which deploy/prometheus.yml uses.
	Tags string
	// Stamp is the version the binary reports (--version); the modules
	// leave it to their release builds' ldflags.
	Stamp string
	// Files are extra files, relative to the module root, written into a
	// copy of the module before the build. Alertmanager embeds its web UI
	// from ui/app/dist, which is built with npm and not in the module's
	// zip; the API the tests use does not need it.
	Files map[string]string
}

const (
	prometheusModule = "github.com/prometheus/prometheus"
	prometheusVer    = "v0.316.0" // Prometheus 3.16.0
	prometheusSum    = "h1:f1GRFerhTMKQma+awCoC9T820ecWeGSdF+xAlMHzZzM="

	alertmanagerModule = "github.com/prometheus/alertmanager"
	alertmanagerVer    = "v0.35.0"
	alertmanagerSum    = "h1:nbXMjr+P2JaoFd7aHNDxKifEwTPN+TWxM0gNPonuH5w="

	noUI = "<!doctype html><title>Alertmanager</title><p>Built without its web UI (for tests); the API is at /api/v2/.\n"
)

// All is every pinned tool, in build order.
var All = []Tool{
	{Name: "promtool", Module: prometheusModule, Version: prometheusVer, Sum: prometheusSum,
		Package: "cmd/promtool", Tags: "remove_all_sd,enable_dns_sd", Stamp: "3.16.0"},
	{Name: "prometheus", Module: prometheusModule, Version: prometheusVer, Sum: prometheusSum,
		Package: "cmd/prometheus", Tags: "remove_all_sd,enable_dns_sd", Stamp: "3.16.0"},
	{Name: "amtool", Module: alertmanagerModule, Version: alertmanagerVer, Sum: alertmanagerSum,
		Package: "cmd/amtool", Stamp: "0.35.0"},
	{Name: "alertmanager", Module: alertmanagerModule, Version: alertmanagerVer, Sum: alertmanagerSum,
		Package: "cmd/alertmanager", Stamp: "0.35.0", Files: map[string]string{
			"ui/app/dist/elm/index.html":     noUI,
			"ui/app/dist/mantine/index.html": noUI,
		}},
}

// Lookup returns the pinned tool called name.
func Lookup(name string) (Tool, bool) {
	for _, t := range All {
		if t.Name == name {
			return t, true
		}
	}
	return Tool{}, false
}

// Dir is the folder of the tool's binary under root (the repository). It
// names the version and the tags, so that a change of either builds anew.
func (t Tool) Dir(root string) string {
	name := path.Base(t.Module) + "-" + t.Version
	if t.Tags != "" {
		name += "+" + strings.ReplaceAll(t.Tags, ",", "+")
	}
	return filepath.Join(root, ".cache", "tools", name)
}

// Bin is the path of the tool's binary under root.
func (t Tool) Bin(root string) string { return filepath.Join(t.Dir(root), t.Name) }

// Root returns the repository root: the nearest folder at or above the
// working directory whose go.mod is this module's.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/receiver-fanout/fanout\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("tools: not inside the github.com/receiver-fanout/fanout repository")
		}
		dir = parent
	}
}

// Path returns the pinned binary called name, or an error that says how
// to build it.
func Path(name string) (string, error) {
	t, ok := Lookup(name)
	if !ok {
		return "", fmt.Errorf("tools: %s is not a pinned tool (see tools/tools.go)", name)
	}
	root, err := Root()
	if err != nil {
		return "", err
	}
	bin := t.Bin(root)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("tools: %s %s@%s is not built (%s): run `make tools` (go run ./tools/install) once; it needs only Go and the module proxy", name, t.Module, t.Version, bin)
	}
	return bin, nil
}

// Install builds t under root unless its binary exists. out receives the
// go command's output.
func Install(ctx context.Context, root string, t Tool, out *bytes.Buffer) (built bool, err error) {
	bin := t.Bin(root)
	if _, err := os.Stat(bin); err == nil {
		return false, nil
	}
	src, err := download(ctx, t, out)
	if err != nil {
		return false, err
	}
	if len(t.Files) > 0 {
		if src, err = copyWithFiles(src, filepath.Join(root, ".cache", "tools", "src", path.Base(t.Module)+"-"+t.Version), t.Files); err != nil {
			return false, fmt.Errorf("tools: %s: %w", t.Name, err)
		}
	}
	if err := os.MkdirAll(t.Dir(root), 0o755); err != nil {
		return false, err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid()) // two builds at once each rename a whole binary
	args := []string{"build", "-C", src, "-mod=readonly", "-trimpath", "-o", tmp,
		"-ldflags", "-s -w -X github.com/prometheus/common/version.Version=" + t.Stamp}
	if t.Tags != "" {
		args = append(args, "-tags", t.Tags)
	}
	args = append(args, "./"+t.Package)
	if err := goCmd(ctx, out, args...); err != nil {
		_ = os.Remove(tmp)
		return false, fmt.Errorf("tools: build %s from %s@%s: %w", t.Name, t.Module, t.Version, err)
	}
	return true, os.Rename(tmp, bin)
}

// download fetches the tool's module through the module proxy, checks its
// hash against the pin and returns its folder in the module cache.
func download(ctx context.Context, t Tool, out *bytes.Buffer) (string, error) {
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", t.Module+"@"+t.Version)
	cmd.Dir = os.TempDir() // outside any module: the pin decides, not a go.mod
	cmd.Env = goEnv()
	cmd.Stdout, cmd.Stderr = &stdout, out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("tools: go mod download %s@%s: %w\n%s", t.Module, t.Version, err, stdout.String())
	}
	var m struct{ Dir, Sum, Error string }
	if err := json.Unmarshal(stdout.Bytes(), &m); err != nil {
		return "", fmt.Errorf("tools: go mod download %s@%s: %w", t.Module, t.Version, err)
	}
	if m.Error != "" {
		return "", fmt.Errorf("tools: go mod download %s@%s: %s", t.Module, t.Version, m.Error)
	}
	if m.Sum != t.Sum {
		return "", fmt.Errorf("tools: %s@%s has hash %s, pinned %s", t.Module, t.Version, m.Sum, t.Sum)
	}
	return m.Dir, nil
}

// copyWithFiles copies the module tree src to dst (once: a complete copy
// is kept) and writes files into it.
func copyWithFiles(src, dst string, files map[string]string) (string, error) {
	done := filepath.Join(dst, ".fanout-complete")
	if _, err := os.Stat(done); err == nil {
		return dst, nil
	}
	if err := os.RemoveAll(dst); err != nil {
		return "", err
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		return "", err
	}
	for rel, content := range files {
		target := filepath.Join(dst, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(target, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return dst, os.WriteFile(done, nil, 0o644)
}

func goCmd(ctx context.Context, out *bytes.Buffer, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = goEnv()
	cmd.Stdout, cmd.Stderr = out, out
	return cmd.Run()
}

// goEnv is the environment with the settings that would make the go
// command build the tools differently from their own module's pins: no
// workspace, no vendor or mod flags, static binaries (no C compiler).
func goEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOWORK", "GOFLAGS", "CGO_ENABLED", "GOOS", "GOARCH":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOWORK=off", "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
}
