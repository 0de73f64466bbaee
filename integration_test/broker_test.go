// Package integration_test runs the built worker binary against a real
// Apache Kafka broker. The broker comes from, in order: KAFKA_BROKERS; a
// Kafka container through testcontainers-go when a Docker engine answers;
// scripts/kafka-local.sh (Java and Maven) otherwise. With none of them the
// tests fail, saying how to get a broker: they never skip silently.
package integration_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
	"go.uber.org/goleak"
)

// broker is the Kafka the tests run against.
type broker struct {
	source string   // how it was found, for the log
	plain  []string // PLAINTEXT bootstrap addresses
	// sasl is a SASL_PLAINTEXT listener with SCRAM-SHA-256/512 for user
	// and pass; empty when the broker has none.
	sasl       []string
	user, pass string
	// restart stops the broker and starts it again on the same address
	// with its data; nil when the broker cannot be restarted from here.
	restart func() error
	stop    func()
}

var (
	kafka     *broker
	binary    string // the built fanout binary
	repoRoot  string
	brokerErr error
)

const howToGetABroker = `no Kafka broker for the integration tests. Any one of:
  - export KAFKA_BROKERS=host:9092 (optionally KAFKA_SASL_BROKERS, KAFKA_SASL_USER,
    KAFKA_SASL_PASSWORD for a SCRAM listener and KAFKA_RESTART_CMD to restart it);
  - run a Docker engine (testcontainers-go starts apache/kafka);
  - install Java 17+ and Maven, then scripts/kafka-local.sh starts a local broker.`

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = filepath.Dir(wd)
	dir, err := os.MkdirTemp("", "fanout-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "fanout")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = repoRoot
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build fanout:", err)
		return 1
	}
	kafka, brokerErr = findBroker()
	if brokerErr != nil {
		fmt.Fprintf(os.Stderr, "integration tests: %v\n", brokerErr)
		return 1
	}
	defer kafka.stop()
	fmt.Fprintf(os.Stderr, "integration tests: broker from %s at %v (SASL %v)\n", kafka.source, kafka.plain, kafka.sasl)
	// Whatever the broker's setup started (testcontainers' reaper, say) is
	// not the tests' to clean up.
	before := goleak.IgnoreCurrent()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(before); err != nil {
			fmt.Fprintf(os.Stderr, "integration tests: goroutines left behind: %v\n", err)
			return 1
		}
	}
	return code
}

func findBroker() (*broker, error) {
	if addrs := os.Getenv("KAFKA_BROKERS"); addrs != "" {
		b := &broker{source: "KAFKA_BROKERS", plain: strings.Split(addrs, ","), stop: func() {}}
		if s := os.Getenv("KAFKA_SASL_BROKERS"); s != "" {
			b.sasl = strings.Split(s, ",")
			b.user, b.pass = os.Getenv("KAFKA_SASL_USER"), os.Getenv("KAFKA_SASL_PASSWORD")
		}
		if cmd := os.Getenv("KAFKA_RESTART_CMD"); cmd != "" {
			b.restart = func() error { return exec.Command("sh", "-c", cmd).Run() }
		}
		return b, nil
	}
	if b, err := dockerBroker(); err == nil {
		return b, nil
	} else {
		fmt.Fprintf(os.Stderr, "integration tests: no Docker broker (%v); trying scripts/kafka-local.sh\n", err)
	}
	_, javaErr := exec.LookPath("java")
	_, mvnErr := exec.LookPath("mvn")
	if javaErr != nil || mvnErr != nil {
		return nil, errors.New(howToGetABroker)
	}
	return localBroker()
}

// dockerBroker starts apache/kafka with testcontainers-go when a Docker
// engine answers. Its mapped port changes on a restart, so it offers no
// restart, and it has no SASL listener.
func dockerBroker() (b *broker, err error) {
	// testcontainers panics when it finds no Docker host at all.
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("no Docker engine: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if err := p.Health(ctx); err != nil {
		return nil, err
	}
	startCtx, cancelStart := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancelStart()
	c, err := tckafka.Run(startCtx, "apache/kafka:4.1.1", tckafka.WithClusterID("fanout-it"))
	if err != nil {
		return nil, err
	}
	addrs, err := c.Brokers(startCtx)
	if err != nil {
		_ = testcontainers.TerminateContainer(c)
		return nil, err
	}
	return &broker{source: "testcontainers apache/kafka", plain: addrs, stop: func() { _ = testcontainers.TerminateContainer(c) }}, nil
}

// localBroker runs scripts/kafka-local.sh on ports of its own with a SASL
// listener, and stops it (deleting its data) at the end.
func localBroker() (*broker, error) {
	env := append(os.Environ(),
		"KAFKA_LOCAL_DIR="+filepath.Join(os.TempDir(), "fanout-it-kafka"),
		"KAFKA_PORT=19092",
		"KAFKA_SASL_PORT=19094",
		"KAFKA_SASL=1",
		"KAFKA_SASL_USER=fanout-it",
		"KAFKA_SASL_PASSWORD=it-secret-7f3a",
	)
	script := filepath.Join(repoRoot, "scripts", "kafka-local.sh")
	runScript := func(args ...string) (string, error) {
		cmd := exec.Command(script, args...)
		cmd.Env = env
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if err != nil {
			return "", fmt.Errorf("kafka-local.sh %s: %w\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
		}
		return out.String(), nil
	}
	out, err := runScript("start")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	addr := strings.TrimSpace(lines[len(lines)-1])
	return &broker{
		source:  "scripts/kafka-local.sh",
		plain:   []string{addr},
		sasl:    []string{"127.0.0.1:19094"},
		user:    "fanout-it",
		pass:    "it-secret-7f3a",
		restart: func() error { _, err := runScript("restart"); return err },
		stop: func() {
			if _, err := runScript("stop"); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		},
	}, nil
}

// require fails (in CI) or skips, loudly, a scenario this broker cannot
// support.
func require(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("this broker (%s) cannot run this scenario: %s", kafka.source, why)
	}
	t.Skipf("SKIPPED: this broker (%s) cannot run this scenario: %s", kafka.source, why)
}
