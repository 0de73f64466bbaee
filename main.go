// Command fanout is Receiver Fanout: a Kafka consumer-group worker that
// delivers every record of each receiver topic to each of its routes.
//
// main.go only wires packages together; each concern lives in the package
// that names it.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `fanout — deliver every record of a Kafka topic to several routes.

Usage:
  fanout [command] [flags]

Commands:
  version     print the version

Run "fanout <command> --help" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version":
		return cmdVersion(args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "fanout: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "Usage: fanout version\n\nPrints the version.") }
	if err := fs.Parse(args); err != nil {
		return exitCode(err)
	}
	fmt.Fprintln(stdout, "fanout", version)
	return 0
}

// exitCode maps a flag parse error to an exit code: --help is success.
func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
