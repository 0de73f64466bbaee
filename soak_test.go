package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/internal/soak"
	"github.com/twmb/franz-go/pkg/kfake"
)

// soakSettings reads SOAK_SEED (default: drawn from the clock and printed)
// and SOAK_FAULTS (how long faults come; default 25s, `make soak` runs
// 10m).
func soakSettings(t *testing.T) (uint64, time.Duration) {
	t.Helper()
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
	return seed, faults
}

// TestSoak_kfake is the fast variant of the seeded soak test, on franz-go's
// in-process Kafka (which cannot be restarted, so its schedule has no
// broker restarts). Replay a failure with SOAK_SEED=<seed>.
func TestSoak_kfake(t *testing.T) {
	seed, faults := soakSettings(t)
	t.Logf("soak on kfake: SOAK_SEED=%d SOAK_FAULTS=%s", seed, faults)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	bin := filepath.Join(t.TempDir(), "fanout")
	// No race detector: the run checks the workers' peak RSS against the
	// configuration's worst case, which the detector's shadow memory would
	// swamp.
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), faults+5*time.Minute)
	defer cancel()
	rep, err := soak.Run(ctx, soak.Config{
		Brokers: cluster.ListenAddrs(),
		Binary:  bin,
		Seed:    seed,
		Faults:  faults,
		Settle:  90 * time.Second,
		Prefix:  "soak",
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
