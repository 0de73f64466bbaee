package integration_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/internal/soak"
)

// TestSoak is the seeded randomized soak test against Apache Kafka, with
// broker restarts in its schedule (see internal/soak). SOAK_SEED replays a
// schedule; SOAK_FAULTS sets how long faults come (25s here, `make soak`
// runs 10 minutes).
func TestSoak(t *testing.T) {
	require(t, kafka.restart != nil, "the soak schedule restarts the broker")
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SOAK_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SOAK_SEED=%q: %v", s, err)
		}
		seed = v
	}
	faults := 25 * time.Second
	if s := os.Getenv("SOAK_FAULTS"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SOAK_FAULTS=%q: %v", s, err)
		}
		faults = d
	}
	n := names(t, 1)
	t.Logf("soak on %s: SOAK_SEED=%d SOAK_FAULTS=%s", kafka.source, seed, faults)
	ctx, cancel := context.WithTimeout(context.Background(), faults+5*time.Minute)
	defer cancel()
	rep, err := soak.Run(ctx, soak.Config{
		Brokers: kafka.plain,
		Restart: kafka.restart,
		Binary:  binary,
		Seed:    seed,
		Faults:  faults,
		Settle:  2 * time.Minute,
		Prefix:  n[0],
		Dir:     t.TempDir(),
		Logf:    t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if len(rep.Problems) > 0 {
		t.Fatalf("soak found %d problems; replay with SOAK_SEED=%d\n%s\n%s", len(rep.Problems), seed, rep, rep.Schedule)
	}
	if rep.Records == 0 || rep.Workers < 2 || rep.Detaches == 0 || rep.Spilled == 0 {
		t.Fatalf("the run checked nothing (or never detached the spill route): %s", rep)
	}
}
