// Command install builds the pinned test tools (see package tools) that
// are missing from the repository's .cache/tools. The Makefile's tools
// target runs it; `make test` depends on that target.
//
//	go run ./tools/install                  # every tool
//	go run ./tools/install promtool         # only these
//	go run ./tools/install -path promtool   # print the binary's path (built or not)
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"time"

	"github.com/receiver-fanout/fanout/tools"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, names []string) error {
	root, err := tools.Root()
	if err != nil {
		return err
	}
	if len(names) == 2 && names[0] == "-path" {
		t, ok := tools.Lookup(names[1])
		if !ok {
			return fmt.Errorf("install: unknown tool %q", names[1])
		}
		fmt.Println(t.Bin(root))
		return nil
	}
	for _, n := range names {
		if _, ok := tools.Lookup(n); !ok {
			return fmt.Errorf("install: unknown tool %q", n)
		}
	}
	for _, t := range tools.All {
		if len(names) > 0 && !slices.Contains(names, t.Name) {
			continue
		}
		start := time.Now()
		var out bytes.Buffer
		built, err := tools.Install(ctx, root, t, &out)
		if err != nil {
			os.Stderr.Write(out.Bytes())
			return err
		}
		if built {
			fmt.Fprintf(os.Stderr, "tools: built %s from %s@%s in %s\n", t.Name, t.Module, t.Version, time.Since(start).Round(100*time.Millisecond))
		}
	}
	return nil
}
