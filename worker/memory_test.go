package worker

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/receiver-fanout/fanout/config"
)

func memoryFile() *config.File {
	f := &config.File{Receivers: []config.Receiver{
		{Topic: "orders", MaxInflightMiB: 10, Routes: []config.Route{
			{Name: "hook", Type: config.RouteHTTP, Workers: 10, Buffer: 1000, HTTP: &config.HTTP{URL: "http://h/x"}, DeadLetterTopic: "orders.dlq"},
			{Name: "copy", Type: config.RouteKafka, Workers: 2, Buffer: 100, Kafka: &config.Kafka{Topic: "copy", Brokers: []string{"other:9092"}}},
		}},
	}}
	f.SetDefaults()
	return f
}

// The worst case adds up the parts the configuration bounds, with the
// figures it assumes stated.
func TestWorstCase_addsUpTheBounds(t *testing.T) {
	e := config.DefaultEnv()
	e.FetchMaxBytes, e.MaxConcurrentFetches = 8<<20, 3
	m := WorstCase(e, memoryFile())
	want := map[string]int64{
		"fetch buffers":     3 * 8 << 20 * fetchExpansion,
		"held records":      8 << 20,
		"in-flight records": 10<<20 + largestRecord,
		"route queues":      1100 * jobBytes,
		"route workers":     10*(workerBytes+httpConnBytes) + 2*deliveryBytes,
		"producers":         2 * producerBuffer, // the default cluster (dead letters) and "other"
		"runtime":           runtimeBytes,
	}
	var sum int64
	for _, p := range m.Parts {
		if want[p.What] != p.Bytes {
			t.Errorf("%s = %d, want %d", p.What, p.Bytes, want[p.What])
		}
		sum += want[p.What]
	}
	if len(m.Parts) != len(want) || m.Total() != sum {
		t.Fatalf("parts %+v, total %d want %d", m.Parts, m.Total(), sum)
	}
	if s := m.String(); !strings.Contains(s, "total") || !strings.Contains(s, "3 × 8 MiB") {
		t.Fatalf("table:\n%s", s)
	}
}

func TestMemoryLimit_GOMEMLIMITAndRefusal(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	debug.SetMemoryLimit(100 << 20)
	limit, source, ok := MemoryLimit()
	if !ok || limit != 100<<20 || source != "GOMEMLIMIT" {
		t.Fatalf("MemoryLimit = %d %q %v", limit, source, ok)
	}
	m := WorstCase(config.DefaultEnv(), memoryFile())
	err := CheckMemory(m, limit, source)
	if err == nil || !strings.Contains(err.Error(), "exceeds GOMEMLIMIT 100 MiB") || !strings.Contains(err.Error(), "fetch buffers") {
		t.Fatalf("CheckMemory = %v", err)
	}
	if err := CheckMemory(m, math.MaxInt64, source); err != nil {
		t.Fatalf("no limit: %v", err)
	}
	// The worker refuses to start, naming the figures, before touching
	// Kafka or binding its listener.
	_, err = New(Options{Env: config.DefaultEnv(), File: memoryFile()})
	if err == nil || !strings.Contains(err.Error(), "worst-case memory") {
		t.Fatalf("New under a 100 MiB limit = %v", err)
	}
}
