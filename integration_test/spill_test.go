package integration_test

import (
	"context"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/internal/spillcheck"
)

// TestSpill runs the spill scenario (internal/spillcheck) against Apache
// Kafka: a stalled route detaches to its spill topic while its sibling
// keeps its pace, gets every record once the stall ends, and re-attaches;
// with the worker SIGKILLed, or a second one joining, while it is
// detached.
func TestSpill(t *testing.T) {
	for _, v := range []struct {
		variant spillcheck.Variant
		stall   time.Duration
	}{
		{spillcheck.Plain, 30 * time.Second},
		{spillcheck.Kill, 20 * time.Second},
		{spillcheck.Join, 12 * time.Second},
	} {
		t.Run(string(v.variant), func(t *testing.T) {
			n := names(t, 1)
			t.Logf("spill %s on %s", v.variant, kafka.source)
			ctx, cancel := context.WithTimeout(context.Background(), v.stall+5*time.Minute)
			defer cancel()
			rep, err := spillcheck.Run(ctx, spillcheck.Config{
				Brokers: kafka.plain,
				Binary:  binary,
				Variant: v.variant,
				Stall:   v.stall,
				Prefix:  n[0] + "-",
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
