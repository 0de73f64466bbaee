// Command fanout is Receiver Fanout: a Kafka consumer-group worker that
// delivers every record of each receiver topic to each of its routes.
//
// main.go only wires packages together; each concern lives in the package
// that names it (see README "Layout").
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/receiver-fanout/fanout/config"
	"github.com/receiver-fanout/fanout/demo"
	"github.com/receiver-fanout/fanout/worker"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `fanout — deliver every record of a Kafka topic to several routes.

Usage:
  fanout [command] [flags]

Commands:
  run         run the worker (the default command)
  validate    check the environment and the receivers file, print a summary
  demo        run an in-process Kafka, generated events and routes, live
  version     print the version

Run "fanout <command> --help" (or "fanout help <command>") for a
command's flags and settings.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && (len(args[0]) == 0 || args[0][0] != '-') {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprint(stdout, usage)
		return 0
	}
	switch cmd {
	case "help":
		if len(args) > 0 && args[0] != "help" {
			return run([]string{args[0], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	case "run":
		return cmdRun(args, stdout, stderr)
	case "validate":
		return cmdValidate(args, stdout, stderr)
	case "demo":
		return cmdDemo(args, stdout, stderr)
	case "version":
		return cmdVersion(args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "fanout: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// newFlags returns a flag set whose usage is text, its flags and, with
// env, the settings table. Parse it with parseFlags.
func newFlags(name, text string, env bool) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprint(out, text)
		if hasFlags(fs) {
			fmt.Fprintln(out, "\nFlags:")
			fs.PrintDefaults()
		}
		if env {
			fmt.Fprintln(out, "\nSettings (environment):")
			_ = config.PrintEnvUsage(out)
		}
	}
	return fs
}

// parseFlags parses args. Asked for help (-h, --help), it prints the usage
// to stdout and returns 0, false; on a bad flag it prints the problem and
// the usage to stderr and returns 2, false; otherwise it returns 0, true.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (int, bool) {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = stdout.Write(out.Bytes())
		return 0, false
	case err != nil:
		_, _ = stderr.Write(out.Bytes())
		return 2, false
	}
	fs.SetOutput(stderr)
	return 0, true
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", `Usage: fanout run

Runs the worker: joins FANOUT_GROUP on FANOUT_BROKERS, consumes every
receiver of the file at FANOUT_CONFIG and delivers each record to each of
its routes. Serves /metrics, /healthz and /readyz on FANOUT_HTTP_ADDR.
SIGTERM or SIGINT drains within FANOUT_SHUTDOWN_TIMEOUT, commits, leaves
the group and exits 0; a second signal exits at once with status 1.
Logs go to stderr; log routes write their JSON lines to stdout.
`, true)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fanout run: unexpected arguments %v\n", fs.Args())
		return 2
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "fanout run: invalid configuration:\n%v\n", err)
		return 1
	}
	log := worker.NewLogger(cfg.Env, stderr)
	for _, name := range config.UnknownVars(os.Environ()) {
		log.Warn().Str("variable", name).Msg("unknown FANOUT_ variable ignored (misspelt?)")
	}
	ctx, stop := signalContext()
	defer stop()
	w, err := worker.New(worker.Options{Version: version, Env: cfg.Env, File: cfg.File, Logger: log, LogOut: stdout})
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	if err := w.Run(ctx); err != nil {
		log.Error().Err(err).Msg("fanout failed")
		return 1
	}
	return 0
}

// load is the configuration as run and validate both check it: the
// environment and the file, with every route built (opening no connection)
// and the Kafka client's TLS files read, every problem reported at once.
func load() (*config.Config, error) {
	cfg, err := config.LoadWith(worker.FileProblems)
	if err != nil {
		return nil, err
	}
	if err := worker.CheckEnv(cfg.Env); err != nil {
		return nil, err
	}
	return cfg, nil
}

// signalContext is cancelled by the first SIGTERM or SIGINT; a second one
// exits at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
			cancel()
		case <-done:
			return
		}
		select {
		case <-ch:
			fmt.Fprintln(os.Stderr, "fanout: second signal, exiting without draining")
			os.Exit(1)
		case <-done:
		}
	}()
	return ctx, func() { signal.Stop(ch); close(done); cancel() }
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate", `Usage: fanout validate

Loads the FANOUT_* environment and the receivers file at FANOUT_CONFIG,
prints a summary and the configuration's worst-case memory and exits 0;
on any problem prints every one of them (file, line, field path, what is
wrong) and exits 1. Touches no broker.
`, true)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fanout validate: unexpected arguments %v\n", fs.Args())
		return 2
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s is valid\n\n%s\n%s", cfg.Env.ConfigFile, cfg.Env.Summary(), cfg.File.Summary())
	mem := worker.WorstCase(cfg.Env, cfg.File)
	fmt.Fprintf(stdout, "\nworst-case memory (fanout run refuses to start when it exceeds GOMEMLIMIT or the cgroup's limit):\n%s", mem)
	if limit, source, ok := worker.MemoryLimit(); ok {
		if err := worker.CheckMemory(mem, limit, source); err != nil {
			fmt.Fprintf(stdout, "warning: %s %d MiB is below it here: fanout run would refuse to start\n", source, limit>>20)
		}
	}
	return 0
}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", demo.Usage, false)
	var o demo.Options
	o.Bind(fs)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fanout demo: unexpected arguments %v\n", fs.Args())
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	o.Version = version
	if err := demo.Run(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "fanout demo: %v\n", err)
		return 1
	}
	return 0
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", "Usage: fanout version\n\nPrints the version.\n", false)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	fmt.Fprintln(stdout, "fanout", version)
	return 0
}
