package integration_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/internal/testkit"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const guard = 90 * time.Second

var (
	waitFor  = testkit.Wait
	freeAddr = testkit.FreeAddr
)

// names returns topic and group names unique to this test run. On a
// broker the tests did not start (KAFKA_BROKERS), the topics and groups
// named after them (the spill group <name>.spill too) are deleted when the
// test ends.
func names(t *testing.T, n int) []string {
	t.Helper()
	base := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	suffix := strconv.FormatUint(rand.Uint64()%1_000_000, 36)
	prefix := fmt.Sprintf("%s-%s-", base, suffix)
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	if b := kafka; !b.ours {
		t.Cleanup(func() { deleteNamed(t, b, prefix) })
	}
	return out
}

// deleteNamed deletes b's topics and groups whose names start with prefix.
// It runs after the test's workers stopped (cleanups run last in, first
// out). A topic left behind fails the test; a group that is not empty yet
// (a killed member not timed out) is only logged, as its offsets expire
// with the broker's offsets.retention.minutes.
func deleteNamed(t *testing.T, b *broker, prefix string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.plain...))
	if err != nil {
		t.Errorf("delete %s* on %s: %v", prefix, b.source, err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Errorf("list topics on %s to delete %s*: %v", b.source, prefix, err)
		return
	}
	var mine []string
	for _, name := range topics.Names() {
		if strings.HasPrefix(name, prefix) {
			mine = append(mine, name)
		}
	}
	if len(mine) > 0 {
		resp, err := adm.DeleteTopics(ctx, mine...)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Errorf("delete topics %v on %s: %v", mine, b.source, err)
		}
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Logf("list groups on %s to delete %s*: %v", b.source, prefix, err)
		return
	}
	var gs []string
	for _, g := range groups.Groups() {
		if strings.HasPrefix(g, prefix) {
			gs = append(gs, g)
		}
	}
	if len(gs) == 0 {
		return
	}
	resp, err := adm.DeleteGroups(ctx, gs...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Logf("delete groups %v on %s: %v", gs, b.source, err)
	}
}

func client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(kafka.plain...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func admin(t *testing.T) *kadm.Client { return kadm.NewClient(client(t)) }

func createTopics(t *testing.T, partitions int32, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := admin(t).CreateTopics(ctx, partitions, 1, nil, topics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil {
			t.Fatalf("create topic %s: %v", r.Topic, r.Err)
		}
	}
}

// producer produces numbered records ("<topic>-<i>") to topic.
type producer struct {
	cl    *kgo.Client
	topic string
	next  int
}

func newProducer(t *testing.T, topic string) *producer {
	return &producer{cl: client(t, kgo.ProducerLinger(5*time.Millisecond), kgo.RecordRetries(1000)), topic: topic}
}

func (p *producer) produce(t *testing.T, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range n {
		i := p.next
		p.next++
		wg.Add(1)
		rec := &kgo.Record{Topic: p.topic, Key: []byte("k" + strconv.Itoa(i%50)), Value: []byte(p.topic + "-" + strconv.Itoa(i)),
			Headers: []kgo.RecordHeader{{Key: "seq", Value: []byte(strconv.Itoa(i))}}}
		p.cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("produce to %s: %v", p.topic, firstErr)
	}
}

// produceFor produces batches until stop is closed; it returns how many
// records it produced.
func (p *producer) produceFor(t *testing.T, stop <-chan struct{}, batch int, every time.Duration) <-chan int {
	done := make(chan int, 1)
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- p.next
				return
			case <-tick.C:
				p.produce(t, batch)
			}
		}
	}()
	return done
}

// sink is an HTTP endpoint that records deliveries by Idempotency-Key.
type sink struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]int
	hdr map[string]http.Header
	// gate, when not nil, blocks deliveries until it is closed.
	gate chan struct{}
	// status, when set, picks the answer for a body.
	status func(body []byte) int
}

func newSink(t *testing.T) *sink {
	s := &sink{got: map[string]int{}, hdr: map[string]http.Header{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		gate := s.gate
		s.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		if s.status != nil {
			if code := s.status(body); code != 0 && code/100 != 2 {
				w.WriteHeader(code)
				return
			}
		}
		s.mu.Lock()
		k := r.Header.Get("Idempotency-Key")
		s.got[k]++
		s.hdr[k] = r.Header.Clone()
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(func() {
		s.release()
		s.srv.Close()
	})
	return s
}

func (s *sink) stall() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *sink) release() {
	s.mu.Lock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
	s.mu.Unlock()
}

// distinct counts records of topic delivered at least once; dups counts
// repeats.
func (s *sink) counts(topic string) (distinct, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, n := range s.got {
		if strings.HasPrefix(k, topic+"/") {
			distinct++
			dups += n - 1
		}
	}
	return distinct, dups
}

// worker is a fanout binary run as a child process.
type worker struct {
	t *testing.T
	*testkit.Worker
	http string // FANOUT_HTTP_ADDR
}

// writeConfig writes a receivers file and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fanout.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startWorker runs the binary with the base settings plus extra
// environment (testkit.Worker: a free FANOUT_HTTP_ADDR, stderr kept).
func startWorker(t *testing.T, cfgPath, group string, extra ...string) *worker {
	t.Helper()
	env := append([]string{
		"FANOUT_BROKERS=" + strings.Join(kafka.plain, ","),
		"FANOUT_GROUP=" + group,
		"FANOUT_CONFIG=" + cfgPath,
		"FANOUT_COMMIT_INTERVAL=200ms",
		"FANOUT_SHUTDOWN_TIMEOUT=15s",
		"FANOUT_SESSION_TIMEOUT=10s",
		"FANOUT_LOG_LEVEL=info",
	}, extra...)
	tw, err := testkit.StartWorker(binary, group, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{t: t, Worker: tw, http: tw.Addr}
	t.Cleanup(func() {
		select {
		case <-w.Exited():
		default:
			w.Kill()
		}
		if t.Failed() {
			t.Logf("worker %s stderr (last 4 KiB):\n%s", w.http, tail(w.Stderr(), 4096))
		}
	})
	return w
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// exitErr describes how the process ended: nil for exit status 0.
func (w *worker) exitErr() error {
	code, _, _ := w.Exit()
	if code == 0 {
		return nil
	}
	return fmt.Errorf("exit status %d", code)
}

func (w *worker) waitReady() {
	w.t.Helper()
	waitFor(w.t, guard, "worker ready", func() bool {
		select {
		case <-w.Exited():
			w.t.Fatalf("worker exited early: %v\n%s", w.exitErr(), tail(w.Stderr(), 4096))
		default:
		}
		return w.Ready()
	})
}

// terminate sends SIGTERM and returns how long the exit took and the exit
// error.
func (w *worker) terminate() (time.Duration, error) {
	start := time.Now()
	w.Term()
	select {
	case <-w.Exited():
	case <-time.After(guard):
		w.t.Fatalf("worker did not exit within %s of SIGTERM", guard)
	}
	return time.Since(start), w.exitErr()
}

func (w *worker) kill() { w.Kill() }

// metric returns the samples of a metric family, keyed by their label text.
func (w *worker) metric(name string) map[string]float64 {
	w.t.Helper()
	out, err := testkit.ScrapeMetric(w.http, name)
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

// committedAtEnd reports whether group's committed offsets equal the end
// offsets of every partition of topics.
func committedAtEnd(t *testing.T, group string, topics ...string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := admin(t)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return false
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	ok := true
	ends.Each(func(o kadm.ListedOffset) {
		c, found := committed.Lookup(o.Topic, o.Partition)
		if o.Offset > 0 && (!found || c.At != o.Offset) {
			ok = false
		}
	})
	return ok
}

// countTopic reads topic from the start and returns the distinct values
// and the records read.
func countTopic(t *testing.T, topic string, want int) (map[string]int, []*kgo.Record) {
	t.Helper()
	cl := client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	seen := map[string]int{}
	var recs []*kgo.Record
	for len(seen) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d distinct of %d from %s", len(seen), want, topic)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			recs = append(recs, r)
		})
	}
	return seen, recs
}
