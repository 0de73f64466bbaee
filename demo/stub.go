// Package demo is `fanout demo`: an in-process Kafka, generated events and
// routes of different speeds running through the real worker.
package demo

import (
	"context"
	"errors"
	"flag"
	"io"
	"time"
)

// Usage is the demo command's help text.
const Usage = "Usage: fanout demo [--duration D]\n"

// Options are the demo's flags.
type Options struct {
	Duration time.Duration
	Version  string
}

// Bind registers the flags on fs.
func (o *Options) Bind(fs *flag.FlagSet) {
	fs.DurationVar(&o.Duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
}

// Run runs the demo until ctx ends or the duration passes.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) error {
	return errors.New("not implemented yet")
}
