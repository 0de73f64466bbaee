package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/receiver-fanout/fanout/tools"
)

// The runbook's shell blocks run with the stock Kafka command-line tools.
// The test provides them as the Kafka distribution's scripts do: a java
// command on the jars scripts/kafka-local.sh fetched.
var kafkaScripts = map[string]string{
	"kafka-consumer-groups.sh":  "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
	"kafka-console-consumer.sh": "org.apache.kafka.tools.consumer.ConsoleConsumer",
	"kafka-topics.sh":           "org.apache.kafka.tools.TopicCommand",
}

// stalledAt is the committed offset the stalled partition sits at: above a
// million, where the exposition format writes 1e+06.
const stalledAt = 1_000_000

// TestRunbook_shellBlocksRunAgainstBrokerWorkerAndPrometheus runs every sh
// block of docs/runbook.md, as an operator would paste it, against the real
// broker, a worker whose route crm is stalled at offset 1,000,000 and a
// pinned Prometheus that scrapes it and evaluates alerting/rules.yml. It
// also measures, on that real stack, how long FanoutReceiverPaused takes to
// fire once Prometheus sees the receiver paused.
func TestRunbook_shellBlocksRunAgainstBrokerWorkerAndPrometheus(t *testing.T) {
	binDir := runbookTools(t)
	n := names(t, 3)
	topic, dlq, group := n[0], n[1], n[2]
	createTopics(t, 1, topic, dlq)

	// A million records already delivered and committed, then 50 that the
	// stalled route holds back.
	p := newProducer(t, topic)
	for range stalledAt / 50_000 {
		p.produce(t, 50_000)
	}
	p.produce(t, 50)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var offsets kadm.Offsets
	offsets.Add(kadm.Offset{Topic: topic, Partition: 0, At: stalledAt, LeaderEpoch: -1})
	if resp, err := admin(t).CommitOffsets(ctx, group, offsets); err != nil || resp.Error() != nil {
		t.Fatalf("commit offset %d for %s: %v %v", stalledAt, group, err, resp.Error())
	}

	crm := newSink(t)
	crm.stall()
	rejects := newSink(t)
	rejects.status = func([]byte) int { return http.StatusUnprocessableEntity }
	cfg := writeConfig(t, fmt.Sprintf(`receivers:
  - topic: %s
    max_inflight: 100
    routes:
      - name: crm
        type: http
        workers: 1
        buffer: 10
        http: {url: %s/crm, timeout: 30s}
      - name: rejects
        type: http
        workers: 2
        buffer: 10
        retry: {max_attempts: 1}
        dead_letter_topic: %s
        http: {url: %s/rejects}
`, topic, crm.srv.URL, dlq, rejects.srv.URL))
	w := startWorker(t, cfg, group)
	w.waitReady()

	prom := startPrometheus(t, w.http)
	waitFor(t, guard, "Prometheus sees the partition paused at offset 1000000", func() bool {
		v, ok := prom.value(t, fmt.Sprintf(`max(fanout_partition_committed_offset{topic=%q}) == %d and on () max(fanout_partition_paused{topic=%q}) == 1`, topic, stalledAt, topic))
		return ok && v == stalledAt
	})
	pausedSeen := time.Now()
	waitFor(t, guard, "a dead letter", func() bool {
		_, ok := prom.value(t, fmt.Sprintf(`sum(fanout_route_deliveries_total{topic=%q,outcome="dead_letter"}) > 0`, topic))
		return ok
	})

	env := append(os.Environ(),
		"PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"BROKERS="+strings.Join(kafka.plain, ","),
		"GROUP="+group,
		"TOPIC="+topic,
		"PARTITION=0",
		"WORKER=http://"+w.http,
		"PROM="+prom.base,
		"ROUTE_URL="+rejects.srv.URL+"/rejects",
		"DLQ="+dlq,
		"OFFSET="+strconv.Itoa(stalledAt),
	)
	blocks := runbookShellBlocks(t)
	if len(blocks) < 10 {
		t.Fatalf("found %d sh blocks in docs/runbook.md; the fences were not found", len(blocks))
	}
	var reset []string
	for _, b := range blocks {
		if strings.Contains(b, "--reset-offsets") {
			reset = append(reset, b) // needs an empty group: after the worker stops
			continue
		}
		out := runBlock(t, b, env)
		checkBlock(t, b, out, topic)
	}

	// The page, on the real stack, and no symptom before it.
	waitFor(t, 2*time.Minute, "FanoutReceiverPaused firing in Prometheus", func() bool {
		_, ok := prom.value(t, fmt.Sprintf(`ALERTS{alertname="FanoutReceiverPaused",alertstate="firing",topic=%q}`, topic))
		return ok
	})
	took := time.Since(pausedSeen)
	t.Logf("FanoutReceiverPaused fired %s after Prometheus first showed the receiver paused (for: 45s, scrape and evaluation every 1s)", took.Round(time.Second))
	if took > 75*time.Second {
		t.Errorf("FanoutReceiverPaused took %s to fire, want about 45s", took)
	}
	// FanoutDeadLetters (route rejects) is not a symptom of the stop: it
	// stays, by design.
	if v, ok := prom.value(t, fmt.Sprintf(`count(ALERTS{alertstate="firing",topic=%q,alertname!~"FanoutReceiverPaused|FanoutDeadLetters"})`, topic)); ok {
		t.Errorf("%v other alerts of %s fire beside the page", v, topic)
	}
	if _, ok := prom.value(t, fmt.Sprintf(`ALERTS{alertname="FanoutDeadLetters",alertstate="firing",topic=%q,route="rejects"}`, topic)); !ok {
		t.Errorf("FanoutDeadLetters does not fire for route rejects")
	}

	crm.release()
	if took, err := w.terminate(); err != nil {
		t.Fatalf("worker exit after SIGTERM: %v (after %s)", err, took)
	}
	if len(reset) != 1 {
		t.Fatalf("want one --reset-offsets block in the runbook, found %d", len(reset))
	}
	// The group is empty now; the record after the stuck one is where the
	// group resumes.
	committed := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got, err := admin(t).FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := got.Lookup(topic, 0)
		return o.At
	}
	before := committed()
	runBlock(t, reset[0], env)
	if got := committed(); got != stalledAt+1 {
		t.Errorf("after the reset block the group is at %d (was %d), want %d", got, before, stalledAt+1)
	}
}

// checkBlock asserts what a runbook block is for, where its output says it.
func checkBlock(t *testing.T, block, out, topic string) {
	t.Helper()
	want := func(s string) {
		t.Helper()
		if !strings.Contains(out, s) {
			t.Errorf("runbook block\n%s\nprinted\n%s\nwant it to contain %q", block, out, s)
		}
	}
	switch {
	case strings.Contains(block, "OFFSET=$("):
		want(fmt.Sprintf("stuck at offset %d\n", stalledAt))
		want(fmt.Sprintf("Offset:%d", stalledAt))
		t.Logf("the FanoutPartitionStalled block printed:\n%s", out)
	case strings.Contains(block, "/readyz"):
		want("200")
	case strings.Contains(block, `--topic "$DLQ"`):
		want("fanout-error")
	case strings.Contains(block, "$ROUTE_URL"):
		want("422")
	case strings.Contains(block, "--state"):
		want("Stable")
	case strings.Contains(block, "--describe --group"):
		want(topic)
	case strings.Contains(block, "kafka-topics.sh"):
		want(topic)
	}
}

// runBlock runs one shell block with bash in strict mode and fails the test
// when it exits non-zero.
func runBlock(t *testing.T, block string, env []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", block)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("runbook block failed: %v\n%s\noutput:\n%s", err, block, out.String())
	}
	return out.String()
}

// runbookShellBlocks returns the sh blocks of docs/runbook.md.
func runbookShellBlocks(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur *strings.Builder
	for line := range strings.Lines(string(b)) {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```sh":
			cur = &strings.Builder{}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(strings.TrimPrefix(line, "   ")) // blocks inside list items are indented
		}
	}
	return blocks
}

// runbookTools makes a folder with what the runbook's blocks call beyond
// bash, curl and jq: promtool (pinned) and the Kafka scripts.
func runbookTools(t *testing.T) string {
	t.Helper()
	for cmd, pkg := range map[string]string{"bash": "bash", "curl": "curl", "jq": "jq", "java": "openjdk-17-jre-headless"} {
		if _, err := exec.LookPath(cmd); err != nil {
			t.Fatalf("the runbook's commands need %s on PATH (Debian: apt-get install %s)", cmd, pkg)
		}
	}
	promtool, err := tools.Path("promtool")
	if err != nil {
		t.Fatal(err)
	}
	libs := kafkaLibs(t)
	dir := t.TempDir()
	if err := os.Symlink(promtool, filepath.Join(dir, "promtool")); err != nil {
		t.Fatal(err)
	}
	log4j := filepath.Join(dir, "tools-log4j2.properties")
	if err := os.WriteFile(log4j, []byte(`status = error
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m%n
rootLogger.level = error
rootLogger.appenderRef.err.ref = ERR
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, class := range kafkaScripts {
		script := fmt.Sprintf("#!/bin/sh\nexec java -Xmx256m -Dlog4j2.configurationFile=%q -cp %q %s \"$@\"\n", log4j, libs+"/*", class)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// kafkaLibs finds the Kafka jars: KAFKA_LIBS, or the cache of
// scripts/kafka-local.sh (which fills it on its first start).
func kafkaLibs(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("KAFKA_LIBS")
	if dir == "" {
		cache := os.Getenv("KAFKA_LOCAL_CACHE")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache", "fanout-kafka")
		}
		version := os.Getenv("KAFKA_VERSION")
		if version == "" {
			version = "4.4.0"
		}
		dir = filepath.Join(cache, version, "libs")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "kafka-tools-*.jar")); len(m) == 0 {
		t.Fatalf("no Kafka command-line tools in %s: run scripts/kafka-local.sh start once (it fetches them with Maven), or set KAFKA_LIBS to a Kafka distribution's libs folder", dir)
	}
	return dir
}

// prometheus is a pinned Prometheus scraping one worker every second and
// evaluating alerting/rules.yml every second.
type prometheus struct {
	base   string
	client *http.Client
}

func startPrometheus(t *testing.T, worker string) *prometheus {
	t.Helper()
	bin, err := tools.Path("prometheus")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: fanout
    static_configs:
      - targets: [%q]
`, filepath.Join(repoRoot, "alerting", "rules.yml"), worker), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	logs := &bytes.Buffer{}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p := &prometheus{base: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second}}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		p.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", tail(logs.String(), 4096))
		}
	})
	waitFor(t, guard, "prometheus ready", func() bool {
		select {
		case <-exited:
			t.Fatalf("prometheus exited:\n%s", logs.String())
		default:
		}
		resp, err := p.client.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// value runs an instant query through the HTTP API and returns the value of
// its first sample; ok is false when the result is empty.
func (p *prometheus) value(t *testing.T, query string) (float64, bool) {
	t.Helper()
	resp, err := p.client.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("query %s: %v", query, err)
	}
	if r.Status != "success" {
		t.Fatalf("query %s: %s", query, r.Error)
	}
	if len(r.Data.Result) == 0 {
		return 0, false
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %s: value %q: %v", query, s, err)
	}
	return v, true
}
