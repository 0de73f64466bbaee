package integration_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// routesYAML is a receiver with an HTTP route to sink, a kafka route to
// copyTopic and a discard route.
func routesYAML(topic, sinkURL, copyTopic string) string {
	return fmt.Sprintf(`  - topic: %s
    max_inflight: 2000
    routes:
      - name: hook
        type: http
        workers: 8
        buffer: 500
        http: {url: %s/hook}
      - name: copy
        type: kafka
        workers: 8
        kafka: {topic: %s}
      - name: sink
        type: discard
`, topic, sinkURL, copyTopic)
}

func TestDelivery_everyRecordToEveryRoute(t *testing.T) {
	n := names(t, 5)
	orders, payments, ordersCopy, paymentsCopy, group := n[0], n[1], n[2], n[3], n[4]
	createTopics(t, 3, orders, payments, ordersCopy, paymentsCopy)
	s := newSink(t)
	cfg := writeConfig(t, "receivers:\n"+routesYAML(orders, s.srv.URL, ordersCopy)+routesYAML(payments, s.srv.URL, paymentsCopy))
	const per = 2000
	newProducer(t, orders).produce(t, per)
	newProducer(t, payments).produce(t, per)
	w := startWorker(t, cfg, group)
	w.waitReady()
	waitFor(t, guard, "every record at the HTTP sink", func() bool {
		a, _ := s.counts(orders)
		b, _ := s.counts(payments)
		return a == per && b == per
	})
	for _, topic := range []string{ordersCopy, paymentsCopy} {
		seen, _ := countTopic(t, topic, per)
		if len(seen) != per {
			t.Fatalf("%s: %d distinct records, want %d", topic, len(seen), per)
		}
	}
	waitFor(t, guard, "commits at the end offsets", func() bool { return committedAtEnd(t, group, orders, payments) })
	if took, err := w.terminate(); err != nil {
		t.Fatalf("exit after SIGTERM: %v (after %s)", err, took)
	}
}

// Crash: SIGKILL mid-stream, start again: nothing is lost.
func TestCrash_killMidStreamLosesNothing(t *testing.T) {
	n := names(t, 3)
	topic, copyTopic, group := n[0], n[1], n[2]
	createTopics(t, 4, topic, copyTopic)
	s := newSink(t)
	cfg := writeConfig(t, "receivers:\n"+routesYAML(topic, s.srv.URL, copyTopic))
	const total = 20000
	newProducer(t, topic).produce(t, total)
	w := startWorker(t, cfg, group)
	w.waitReady()
	waitFor(t, guard, "mid-stream", func() bool { d, _ := s.counts(topic); return d > total/4 })
	w.kill()
	before, _ := s.counts(topic)
	w2 := startWorker(t, cfg, group)
	w2.waitReady()
	waitFor(t, guard, "every record after restart", func() bool { d, _ := s.counts(topic); return d == total })
	waitFor(t, guard, "commits at the end offsets", func() bool { return committedAtEnd(t, group, topic) })
	_, dups := s.counts(topic)
	t.Logf("SIGKILL after %d of %d records: %d redelivered after restart (uncommitted window: max_inflight 2000 × 4 partitions + one commit interval)", before, total, dups)
	if dups > 4*2000+total/2 {
		t.Errorf("%d duplicates: more than the in-flight windows could hold", dups)
	}
	if _, err := w2.terminate(); err != nil {
		t.Fatal(err)
	}
}

// Scale: one instance, then three, then two (one SIGTERMed) while records
// keep arriving: nothing lost; the stopped one exits 0 in time.
func TestScale_joinAndLeaveUnderLoad(t *testing.T) {
	n := names(t, 3)
	topic, copyTopic, group := n[0], n[1], n[2]
	createTopics(t, 6, topic, copyTopic)
	s := newSink(t)
	cfg := writeConfig(t, "receivers:\n"+routesYAML(topic, s.srv.URL, copyTopic))
	p := newProducer(t, topic)
	stop := make(chan struct{})
	produced := p.produceFor(t, stop, 200, 50*time.Millisecond) // ~4000/s
	w1 := startWorker(t, cfg, group)
	w1.waitReady()
	waitFor(t, guard, "first instance delivering", func() bool { d, _ := s.counts(topic); return d > 2000 })
	w2 := startWorker(t, cfg, group)
	w3 := startWorker(t, cfg, group)
	w2.waitReady()
	w3.waitReady()
	mark, _ := s.counts(topic)
	waitFor(t, guard, "three instances delivering", func() bool { d, _ := s.counts(topic); return d > mark+4000 })
	took, err := w2.terminate()
	if err != nil {
		t.Fatalf("stopped instance: %v", err)
	}
	if took > 15*time.Second+5*time.Second {
		t.Fatalf("stopped instance took %s, shutdown timeout is 15s", took)
	}
	mark, _ = s.counts(topic)
	waitFor(t, guard, "two instances delivering", func() bool { d, _ := s.counts(topic); return d > mark+4000 })
	close(stop)
	total := <-produced
	waitFor(t, guard, "every record delivered", func() bool { d, _ := s.counts(topic); return d == total })
	waitFor(t, guard, "commits at the end offsets", func() bool { return committedAtEnd(t, group, topic) })
	_, dups := s.counts(topic)
	t.Logf("%d records through 1 → 3 → 2 instances; %d redelivered across rebalances; SIGTERMed instance exited 0 in %s", total, dups, took.Round(time.Millisecond))
	for _, w := range []*worker{w1, w3} {
		if _, err := w.terminate(); err != nil {
			t.Fatal(err)
		}
	}
}

// Broker restart mid-stream: the worker keeps running, reconnects and
// loses nothing.
func TestBrokerRestart_workerReconnects(t *testing.T) {
	require(t, kafka.restart != nil, "it cannot be restarted from the test (set KAFKA_RESTART_CMD or use scripts/kafka-local.sh)")
	n := names(t, 3)
	topic, copyTopic, group := n[0], n[1], n[2]
	createTopics(t, 3, topic, copyTopic)
	s := newSink(t)
	cfg := writeConfig(t, "receivers:\n"+routesYAML(topic, s.srv.URL, copyTopic))
	p := newProducer(t, topic)
	p.produce(t, 3000)
	w := startWorker(t, cfg, group)
	w.waitReady()
	waitFor(t, guard, "delivering", func() bool { d, _ := s.counts(topic); return d > 1000 })
	if err := kafka.restart(); err != nil {
		t.Fatalf("restart broker: %v", err)
	}
	select {
	case <-w.Exited():
		t.Fatalf("worker exited during the broker restart: %v", w.exitErr())
	default:
	}
	p.produce(t, 3000)
	waitFor(t, 2*guard, "every record after the restart", func() bool { d, _ := s.counts(topic); return d == 6000 })
	waitFor(t, guard, "commits at the end offsets", func() bool { return committedAtEnd(t, group, topic) })
	if _, err := w.terminate(); err != nil {
		t.Fatal(err)
	}
}

// Congestion: a stalled route pauses its receiver's partitions (seen in
// /metrics) while another receiver keeps flowing; RSS stays bounded;
// everything drains after release.
func TestCongestion_pausesOnlyItsReceiver(t *testing.T) {
	n := names(t, 3)
	stalled, flowing, group := n[0], n[1], n[2]
	createTopics(t, 3, stalled, flowing)
	stuck, other := newSink(t), newSink(t)
	stuck.stall()
	cfg := writeConfig(t, fmt.Sprintf(`receivers:
  - topic: %s
    max_inflight: 1000
    routes:
      - {name: stuck, type: http, workers: 4, buffer: 200, http: {url: %s/x, timeout: 60s}}
      - {name: sink, type: discard}
  - topic: %s
    routes:
      - {name: hook, type: http, workers: 8, http: {url: %s/y}}
`, stalled, stuck.srv.URL, flowing, other.srv.URL))
	const backlog = 50000
	newProducer(t, stalled).produce(t, backlog)
	w := startWorker(t, cfg, group)
	w.waitReady()
	waitFor(t, guard, "stalled receiver's partitions paused in /metrics", func() bool {
		paused := 0
		for labels, v := range w.metric("fanout_partition_paused") {
			if strings.Contains(labels, `topic="`+stalled+`"`) && v == 1 {
				paused++
			}
		}
		return paused == 3
	})
	fp := newProducer(t, flowing)
	for round := 1; round <= 3; round++ {
		fp.produce(t, 1000)
		waitFor(t, guard, "flowing receiver delivers", func() bool { d, _ := other.counts(flowing); return d == 1000*round })
	}
	for labels, v := range w.metric("fanout_partition_paused") {
		if strings.Contains(labels, `topic="`+flowing+`"`) && v != 0 {
			t.Fatalf("flowing receiver paused: %s", labels)
		}
	}
	if v := w.metric("fanout_route_congested")[`{route="stuck",topic="`+stalled+`"}`]; v != 1 {
		t.Errorf("fanout_route_congested for the stuck route = %v, want 1", v)
	}
	rss := w.PeakRSS()
	const rssBound = 256 << 20
	if rss == 0 {
		t.Fatal("no VmHWM read from /proc: the worker's peak RSS is unknown")
	}
	if rss > rssBound {
		t.Fatalf("peak RSS %d MiB while %d records wait in Kafka (bound %d MiB)", rss>>20, backlog, rssBound>>20)
	}
	t.Logf("peak RSS %d MiB with %d records waiting behind the stalled route", rss>>20, backlog)
	stuck.release()
	waitFor(t, 2*guard, "stalled receiver drains", func() bool { d, _ := stuck.counts(stalled); return d == backlog })
	waitFor(t, guard, "commits at the end offsets", func() bool { return committedAtEnd(t, group, stalled, flowing) })
	if _, err := w.terminate(); err != nil {
		t.Fatal(err)
	}
}

// Dead letters: a permanently failing record lands in the dead-letter
// topic with the DESIGN.md headers.
func TestDeadLetter_permanentFailure(t *testing.T) {
	n := names(t, 3)
	topic, dlq, group := n[0], n[1], n[2]
	createTopics(t, 2, topic, dlq)
	s := newSink(t)
	poison := topic + "-7"
	s.status = func(body []byte) int {
		if string(body) == poison {
			return 422
		}
		return 0
	}
	cfg := writeConfig(t, fmt.Sprintf(`receivers:
  - topic: %s
    routes:
      - name: hook
        type: http
        retry: {max_attempts: 3, initial_backoff: 10ms}
        dead_letter_topic: %s
        http: {url: %s/z}
`, topic, dlq, s.srv.URL))
	newProducer(t, topic).produce(t, 20)
	w := startWorker(t, cfg, group)
	w.waitReady()
	waitFor(t, guard, "the other records delivered", func() bool { d, _ := s.counts(topic); return d == 19 })
	_, recs := countTopic(t, dlq, 1)
	r := recs[0]
	h := map[string]string{}
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	if string(r.Value) != poison || string(r.Key) != "k7" || h["seq"] != "7" || h["fanout-topic"] != topic ||
		h["fanout-route"] != "hook" || h["fanout-attempts"] != "1" || !strings.Contains(h["fanout-error"], "422") ||
		h["fanout-partition"] == "" || h["fanout-offset"] == "" {
		t.Fatalf("dead letter %q key %q headers %v", r.Value, r.Key, h)
	}
	waitFor(t, guard, "commits at the end offsets", func() bool { return committedAtEnd(t, group, topic) })
	if _, err := w.terminate(); err != nil {
		t.Fatal(err)
	}
}

// Security: SASL/SCRAM with the right credentials works; with wrong ones
// the worker exits with a clear authentication error and no secret.
func TestSASL_scramCredentials(t *testing.T) {
	require(t, len(kafka.sasl) > 0, "it has no SASL/SCRAM listener (set KAFKA_SASL_BROKERS, KAFKA_SASL_USER, KAFKA_SASL_PASSWORD or use scripts/kafka-local.sh)")
	n := names(t, 2)
	topic, group := n[0], n[1]
	createTopics(t, 1, topic)
	s := newSink(t)
	cfg := writeConfig(t, fmt.Sprintf("receivers:\n  - topic: %s\n    routes:\n      - {name: hook, type: http, http: {url: %s/s}}\n", topic, s.srv.URL))
	newProducer(t, topic).produce(t, 50)
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
		w := startWorker(t, cfg, group+mech, "FANOUT_BROKERS="+strings.Join(kafka.sasl, ","),
			"FANOUT_SASL_MECHANISM="+mech, "FANOUT_SASL_USERNAME="+kafka.user, "FANOUT_SASL_PASSWORD="+kafka.pass)
		w.waitReady()
		waitFor(t, guard, mech+" delivery", func() bool { d, _ := s.counts(topic); return d == 50 })
		if _, err := w.terminate(); err != nil {
			t.Fatal(err)
		}
	}
	const wrong = "not-the-password-93c1"
	cmd := exec.Command(binary, "run")
	cmd.Env = append(cmd.Environ(),
		"FANOUT_BROKERS="+strings.Join(kafka.sasl, ","), "FANOUT_GROUP="+group+"-bad", "FANOUT_CONFIG="+cfg,
		"FANOUT_HTTP_ADDR="+freeAddr(t), "FANOUT_SASL_MECHANISM=SCRAM-SHA-256",
		"FANOUT_SASL_USERNAME="+kafka.user, "FANOUT_SASL_PASSWORD="+wrong)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("worker with a wrong password exited 0:\n%s", out.String())
		}
	case <-time.After(guard):
		_ = cmd.Process.Kill()
		t.Fatalf("worker with a wrong password did not exit:\n%s", tail(out.String(), 4096))
	}
	text := strings.ToLower(out.String())
	if !strings.Contains(text, "authentic") && !strings.Contains(text, "sasl") {
		t.Errorf("no clear authentication error:\n%s", out.String())
	}
	if strings.Contains(out.String(), wrong) || strings.Contains(out.String(), kafka.pass) {
		t.Errorf("the password appears in the output:\n%s", out.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "fanout failed") {
			t.Logf("wrong password: %s", line)
		}
	}
}
