package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/internal/spillcheck"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestSpill_kfake runs the spill scenario (internal/spillcheck) on
// franz-go's in-process Kafka: a stalled route detaches to its spill topic
// while its sibling keeps its pace, gets every record once the stall ends,
// and re-attaches; with the worker SIGKILLed, or a second one joining,
// while it is detached.
func TestSpill_kfake(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fanout")
	// No race detector in the worker, as for the soak: the check measures
	// the fast route's pace, which the detector would slow several times.
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		variant spillcheck.Variant
		stall   time.Duration
	}{
		{spillcheck.Plain, 30 * time.Second},
		{spillcheck.Kill, 20 * time.Second},
		{spillcheck.Join, 12 * time.Second},
	} {
		t.Run(string(v.variant), func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			ctx, cancel := context.WithTimeout(context.Background(), v.stall+5*time.Minute)
			defer cancel()
			rep, err := spillcheck.Run(ctx, spillcheck.Config{
				Brokers: cluster.ListenAddrs(),
				Binary:  bin,
				Variant: v.variant,
				Stall:   v.stall,
				Prefix:  "spill-" + string(v.variant) + "-",
				Dir:     t.TempDir(),
				Logf:    t.Logf,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Log(rep)
			for _, p := range rep.Problems {
				t.Errorf("spill %s: %s", v.variant, p)
			}
		})
	}
}
