package worker

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/receiver-fanout/fanout/config"
)

// TestNewLoggerConsoleWithoutTerminalHasNoColour: FANOUT_LOG_FORMAT=console
// writes plain text, no ANSI escape codes, to anything that is not a
// terminal: a buffer, a pipe, a file.
func TestNewLoggerConsoleWithoutTerminalHasNoColour(t *testing.T) {
	e := config.DefaultEnv()
	e.LogFormat = "console"

	var buf bytes.Buffer
	logTo := func(w io.Writer) {
		l := NewLogger(e, w)
		l.Error().Str("route", "billing").Msg("delivery failed")
	}
	logTo(&buf)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	logTo(w)
	_ = w.Close()
	piped, err := io.ReadAll(r)
	_ = r.Close()
	if err != nil {
		t.Fatal(err)
	}

	file, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	logTo(file)
	_ = file.Close()
	written, err := os.ReadFile(file.Name())
	if err != nil {
		t.Fatal(err)
	}

	for name, out := range map[string]string{"buffer": buf.String(), "pipe": string(piped), "file": string(written)} {
		if strings.Contains(out, "\x1b[") {
			t.Errorf("%s: console output has colour codes: %q", name, out)
		}
		if !strings.Contains(out, "ERR delivery failed route=billing") {
			t.Errorf("%s: console output %q, want the plain level, message and field", name, out)
		}
	}

	e.LogFormat = "json"
	buf.Reset()
	l := NewLogger(e, &buf)
	l.Info().Msg("m")
	if !strings.HasPrefix(buf.String(), `{"level":"info"`) {
		t.Errorf("json output %q", buf.String())
	}
}
