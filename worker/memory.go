package worker

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/receiver-fanout/fanout/config"
	"github.com/receiver-fanout/fanout/routes"
)

// Figures the worst case assumes for what configuration does not bound.
const (
	// fetchExpansion is the compression ratio assumed for fetched batches:
	// franz-go keeps fetched records decompressed until they are polled.
	// Topics compressed harder than this need smaller fetch settings.
	fetchExpansion = 4
	// largestRecord is the record size assumed beyond a receiver's byte
	// budget: one record may be admitted past it (Kafka's default
	// max.message.bytes is about 1 MiB).
	largestRecord = 1 << 20
	// producerBuffer is what each producer client may buffer.
	producerBuffer = routes.ProducerBufferBytes
	// jobBytes is one queued job (a pointer to its slot and its ordering
	// key, 48 bytes) with its share of the queue's ring (up to twice the
	// jobs it holds) and of its key table (up to four 24-byte slots a key).
	jobBytes = 192
	// workerBytes is one route worker: its goroutine's stack and state.
	workerBytes = 8 << 10
	// deliveryBytes is one of a kafka route's workers, a record in flight
	// through the producer rather than a goroutine: the engine's delivery
	// and the producer's record and promise (its bytes are counted in
	// the receiver's window).
	deliveryBytes = 1 << 10
	// httpConnBytes is one HTTP connection's buffers (an http worker may
	// hold one).
	httpConnBytes = 64 << 10
	// runtimeBytes is the Go runtime, the metrics registry, the Kafka
	// clients' own state and the HTTP listener.
	runtimeBytes = 32 << 20
)

// MemoryPart is one line of the worst case.
type MemoryPart struct {
	What  string // what holds the memory
	How   string // how the figure is made
	Bytes int64
}

// Memory is the worst-case memory a configuration implies: everything the
// process may hold at once however large the backlog in Kafka.
type Memory struct {
	Parts []MemoryPart
}

// Total is the sum of the parts.
func (m Memory) Total() int64 {
	var n int64
	for _, p := range m.Parts {
		n += p.Bytes
	}
	return n
}

// String prints the parts as a table and the total.
func (m Memory) String() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, p := range m.Parts {
		fmt.Fprintf(w, "  %s\t%9s\t%s\n", p.What, mib(p.Bytes), p.How)
	}
	fmt.Fprintf(w, "  total\t%9s\t\n", mib(m.Total()))
	_ = w.Flush()
	return b.String()
}

func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d MiB", (n+(1<<19))>>20)
}

// WorstCase computes the worst-case memory of a validated configuration.
func WorstCase(e config.Env, f *config.File) Memory {
	var m Memory
	add := func(what, how string, n int64) { m.Parts = append(m.Parts, MemoryPart{what, how, n}) }
	fetch := int64(e.MaxConcurrentFetches) * int64(e.FetchMaxBytes)
	add("fetch buffers", fmt.Sprintf("%d × %s, ×%d decompressed", e.MaxConcurrentFetches, mib(int64(e.FetchMaxBytes)), fetchExpansion), fetch*fetchExpansion)
	add("held records", "refused records kept for re-offer (FANOUT_FETCH_MAX_BYTES)", int64(e.FetchMaxBytes))
	var windows int64
	var how []string
	var jobs, workers, spillWindows int64
	var clusters = map[string]bool{}
	var spills []string
	for _, r := range f.Receivers {
		b := int64(r.MaxInflightMiB)<<20 + largestRecord
		windows += b
		how = append(how, fmt.Sprintf("%s %d+1", r.Topic, r.MaxInflightMiB))
		for _, rt := range r.Routes {
			jobs += int64(rt.Buffer)
			per := int64(workerBytes)
			switch rt.Type {
			case config.RouteHTTP:
				per += httpConnBytes
			case config.RouteKafka:
				per = deliveryBytes
			}
			workers += int64(rt.Workers) * per
			if rt.Type == config.RouteKafka {
				clusters[strings.Join(rt.Kafka.Brokers, ",")] = true
			}
			if rt.DeadLetterTopic != "" {
				clusters[""] = true
			}
			if rt.Spill != nil {
				clusters["spill|"] = true // the spill client of its own
				spills = append(spills, r.Topic+"/"+rt.Name)
				spillWindows += int64(r.MaxInflightMiB)<<20 + largestRecord
				jobs += int64(rt.Buffer)
			}
		}
	}
	add("in-flight records", "max_inflight_mib + one record: "+strings.Join(how, ", ")+" MiB", windows)
	if len(spills) > 0 {
		add("spill consumer", fmt.Sprintf("%d × %s fetches ×%d, as much held, and the in-flight records of %s", spillFetches, mib(spillFetchMaxBytes), fetchExpansion, strings.Join(spills, ", ")),
			spillFetches*spillFetchMaxBytes*fetchExpansion+spillFetchMaxBytes+spillWindows)
	}
	add("route queues", fmt.Sprintf("%d buffered jobs × %d B", jobs, jobBytes), jobs*jobBytes)
	add("route workers", "stacks, HTTP connections, kafka records in flight", workers)
	add("producers", fmt.Sprintf("%d clients × %s", len(clusters), mib(producerBuffer)), int64(len(clusters))*producerBuffer)
	add("runtime", "Go runtime, Kafka clients, metrics", runtimeBytes)
	return m
}

// MemoryLimit is the process's memory limit and where it comes from:
// GOMEMLIMIT when set, else the cgroup's limit when there is one. ok is
// false when neither limits the process.
func MemoryLimit() (limit int64, source string, ok bool) {
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		return l, "GOMEMLIMIT", true
	}
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 { // "max", or cgroup v1's "no limit"
			continue
		}
		return n, "the cgroup's limit (" + f + ")", true
	}
	return 0, "", false
}

// CheckMemory fails, naming the figures, when the worst case exceeds the
// limit.
func CheckMemory(m Memory, limit int64, source string) error {
	if m.Total() <= limit {
		return nil
	}
	return errors.New("worst-case memory " + mib(m.Total()) + " exceeds " + source + " " + mib(limit) +
		"; lower max_inflight_mib, buffers or the FANOUT_FETCH_* settings, or raise the limit:\n" + m.String())
}
