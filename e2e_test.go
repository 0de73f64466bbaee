package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/receiver-fanout/fanout/internal/testkit"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
)

// buildBinary compiles the fanout binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fanout")
	cmd := exec.Command("go", "build", "-race", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	return bin
}

// e2eSecret is the billing route's signing secret (Standard Webhooks form).
const e2eSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="

type hit struct {
	header http.Header
	body   []byte
}

// TestEndToEnd runs the built binary as a child process against an
// in-process Kafka (kfake) with an HTTP sink and a kafka route: every
// record reaches both with the contract's headers, a poison record lands in
// the dead-letter topic with provenance headers, and SIGTERM drains, commits
// and exits 0.
func TestEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "orders", "orders-audit", "orders.dlq", "orders.spill.billing"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addrs := cluster.ListenAddrs()

	var mu sync.Mutex
	hits := map[string]hit{}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) == "poison" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		hits[r.Header.Get("Idempotency-Key")] = hit{r.Header.Clone(), body}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "fanout.yaml")
	cfg := fmt.Sprintf(`receivers:
  - topic: orders
    routes:
      - name: billing
        type: http
        workers: 4
        retry: {max_attempts: 2, initial_backoff: 10ms}
        dead_letter_topic: orders.dlq
        # never congested for 30s here: the spill series are exported
        # (checkMetricsEndpoint), the route stays attached
        spill: {topic: orders.spill.billing}
        http:
          url: %s/events
          signing_secret: ${E2E_SECRET}
      - name: audit
        type: kafka
        kafka: {topic: orders-audit}
`, sink.URL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	const n = 300
	produced := produceOrders(t, addrs, n)
	httpAddr := freeAddr(t)

	cmd := exec.Command(bin, "run")
	cmd.Env = append(os.Environ(),
		"FANOUT_BROKERS="+strings.Join(addrs, ","),
		"FANOUT_GROUP=e2e",
		"FANOUT_CONFIG="+cfgPath,
		"FANOUT_HTTP_ADDR="+httpAddr,
		"FANOUT_COMMIT_INTERVAL=100ms",
		"FANOUT_SHUTDOWN_TIMEOUT=10s",
		"E2E_SECRET="+e2eSecret,
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("worker stderr:\n%s", stderr.String())
		}
	}()

	waitFor(t, 60*time.Second, "every record at the sink", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(hits) == n-1 // all but the poison record
	})
	verifier, err := standardwebhooks.NewWebhook(e2eSecret)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for key, rec := range produced {
		if string(rec.Value) == "poison" {
			continue
		}
		h, ok := hits[key]
		if !ok {
			t.Fatalf("record %s missing at the sink", key)
		}
		want := map[string]string{
			"X-Fanout-Topic":      "orders",
			"X-Fanout-Partition":  strconv.Itoa(int(rec.Partition)),
			"X-Fanout-Offset":     strconv.FormatInt(rec.Offset, 10),
			"X-Fanout-Route":      "billing",
			"X-Fanout-Attempt":    "1",
			"X-Fanout-Key":        string(rec.Key),
			"X-Fanout-Header-Seq": string(rec.Headers[0].Value),
			"Content-Type":        "application/octet-stream",
			"Webhook-Id":          key,
		}
		for k, v := range want {
			if got := h.header.Get(k); got != v {
				t.Errorf("%s: header %s = %q, want %q", key, k, got, v)
			}
		}
		if !bytes.Equal(h.body, rec.Value) {
			t.Errorf("%s: body %q, want %q", key, h.body, rec.Value)
		}
		// The receiver's check, with the Standard Webhooks library.
		if err := verifier.Verify(h.body, h.header); err != nil {
			t.Errorf("%s: signature does not verify: %v", key, err)
		}
	}
	mu.Unlock()

	audit := consumeAll(t, addrs, "orders-audit", n)
	for _, r := range audit {
		if !strings.HasPrefix(string(r.Value), "order-") && string(r.Value) != "poison" {
			t.Errorf("audit record %q", r.Value)
		}
	}
	dlq := consumeAll(t, addrs, "orders.dlq", 1)
	dh := map[string]string{}
	for _, h := range dlq[0].Headers {
		dh[h.Key] = string(h.Value)
	}
	if string(dlq[0].Value) != "poison" || dh["fanout-topic"] != "orders" || dh["fanout-route"] != "billing" ||
		dh["fanout-attempts"] != "1" || !strings.Contains(dh["fanout-error"], "400") || dh["seq"] == "" ||
		dh["fanout-partition"] == "" || dh["fanout-offset"] == "" {
		t.Fatalf("dead letter %q headers %v", dlq[0].Value, dh)
	}

	checkMetricsEndpoint(t, "http://"+httpAddr)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
	adm := newAdmin(t, addrs)
	ends, err := adm.ListEndOffsets(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(context.Background(), "e2e")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		got, _ := committed.Lookup("orders", o.Partition)
		if got.At != o.Offset {
			t.Errorf("orders/%d: committed %d, end %d", o.Partition, got.At, o.Offset)
		}
	})
}

func TestRun_invalidConfigExitsBeforeKafka(t *testing.T) {
	bin := buildBinary(t)
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("receivers:\n  - topic: orders\n    routes:\n      - name: a\n        type: http\n        wokers: 3\n        http: {url: 'not a url'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"run", "validate"} {
		cmd := exec.Command(bin, sub)
		// A broker that does not exist: the check must fail before any dial.
		cmd.Env = append(os.Environ(), "FANOUT_CONFIG="+path, "FANOUT_BROKERS=127.0.0.1:1")
		out, err := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
			t.Fatalf("%s: exit %d, want 1; output:\n%s", sub, code, out)
		}
		for _, want := range []string{path + ":6: receivers[0].routes[0].wokers", "receivers[0].routes[0].http.url"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s: output lacks %q:\n%s", sub, want, out)
			}
		}
	}
}

var waitFor = testkit.Wait
