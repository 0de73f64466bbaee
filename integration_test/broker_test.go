// Package integration_test runs the built worker binary against a real
// Apache Kafka broker. The broker comes from, in order: KAFKA_BROKERS; a
// Kafka container through testcontainers-go when a Docker engine answers;
// scripts/kafka-local.sh (Java and Maven) otherwise, in a directory and on
// ports of its own. A scenario the broker cannot serve (a restart, a SASL
// listener) runs against the tests' own kafka-local.sh broker instead. With
// none of them the tests fail, saying what to set or install: they never
// skip.
package integration_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// ours is false for a broker the tests did not start (KAFKA_BROKERS):
	// they delete what they created on it.
	ours bool
}

var (
	kafka     *broker
	binary    string // the built fanout binary
	repoRoot  string
	brokerErr error
)

// howToGetABroker follows the word that no broker could be had.
const howToGetABroker = `Any one of:
  - install Java 17+ and Maven: scripts/kafka-local.sh then starts a broker of the
    tests' own (Debian: apt-get install openjdk-17-jre-headless maven);
  - run a Docker engine (testcontainers-go starts apache/kafka), with Java and Maven
    as well for the broker-restart and SASL scenarios;
  - export KAFKA_BROKERS=host:9092, with KAFKA_RESTART_CMD (a command that restarts
    it) and KAFKA_SASL_BROKERS, KAFKA_SASL_USER, KAFKA_SASL_PASSWORD (a SCRAM
    listener), or with Java and Maven for those two scenarios.`

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
	defer stopOwnBroker()
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
	b, err := ownBroker()
	if err != nil {
		return nil, fmt.Errorf("no Kafka broker for the integration tests: %w", err)
	}
	// the package's broker is the own one: stopOwnBroker must not stop it twice
	own.shared = true
	return b, nil
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
	return &broker{source: "testcontainers apache/kafka", plain: addrs, ours: true,
		stop: func() { _ = testcontainers.TerminateContainer(c) }}, nil
}

// own is the tests' own scripts/kafka-local.sh broker, started on first
// need: as the package's broker, or for a scenario the package's broker
// cannot serve.
var own struct {
	once   sync.Once
	b      *broker
	err    error
	shared bool // it is also the package's broker
}

func ownBroker() (*broker, error) {
	own.once.Do(func() {
		_, javaErr := exec.LookPath("java")
		_, mvnErr := exec.LookPath("mvn")
		if javaErr != nil || mvnErr != nil {
			own.err = errors.New("scripts/kafka-local.sh needs java and mvn, and they are not on PATH. " + howToGetABroker)
			return
		}
		own.b, own.err = localBroker()
	})
	return own.b, own.err
}

func stopOwnBroker() {
	if own.b != nil && !own.shared {
		own.b.stop()
	}
}

// The ports of the tests' own broker. A variable the user set is honoured;
// the others get ports free at the time.
var portVars = []string{"KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "KAFKA_SASL_PORT"}

// localBroker runs scripts/kafka-local.sh in a directory of its own (so it
// never reuses or stops another run's broker) on ports of its own, with a
// SASL listener, and stops it (deleting its data) at the end.
func localBroker() (*broker, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		b, picked, err := startLocalBroker()
		if err == nil {
			return b, nil
		}
		lastErr = err
		// a picked port taken between the pick and the start: pick again
		// (a port the user chose is theirs to change)
		if !picked || !strings.Contains(err.Error(), "already in use") {
			break
		}
	}
	return nil, lastErr
}

// startLocalBroker starts one; picked reports a failure that fresh ports
// may cure.
func startLocalBroker() (b *broker, picked bool, err error) {
	dir, err := os.MkdirTemp("", "fanout-it-kafka-")
	if err != nil {
		return nil, false, err
	}
	const user, pass = "fanout-it", "it-secret-7f3a"
	env := append(os.Environ(),
		"KAFKA_LOCAL_DIR="+dir,
		"KAFKA_SASL=1",
		"KAFKA_SASL_USER="+user,
		"KAFKA_SASL_PASSWORD="+pass,
	)
	var need []string
	for _, v := range portVars {
		if os.Getenv(v) == "" {
			need = append(need, v)
		}
	}
	ports, err := freePorts(len(need))
	if err != nil {
		return nil, false, err
	}
	for i, v := range need {
		env = append(env, v+"="+strconv.Itoa(ports[i]))
	}
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
	cleanup := func() {
		if _, err := runScript("stop"); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		_ = os.RemoveAll(dir)
		_ = os.Remove(dir + ".lock")
	}
	out, err := runScript("start")
	if err != nil {
		cleanup()
		return nil, len(need) == len(portVars), err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	addr := strings.TrimSpace(lines[len(lines)-1])
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		cleanup()
		return nil, false, fmt.Errorf("kafka-local.sh start printed %q, not host:port", addr)
	}
	saslPort := os.Getenv("KAFKA_SASL_PORT")
	for i, v := range need {
		if v == "KAFKA_SASL_PORT" {
			saslPort = strconv.Itoa(ports[i])
		}
	}
	return &broker{
		source:  "scripts/kafka-local.sh (" + dir + ")",
		plain:   []string{addr},
		sasl:    []string{net.JoinHostPort(host, saslPort)},
		user:    user,
		pass:    pass,
		ours:    true,
		restart: func() error { _, err := runScript("restart"); return err },
		stop:    cleanup,
	}, false, nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// They are taken below the kernel's ephemeral range, from which it picks
// the local ports of outgoing connections: a port of the broker must not
// go to a client's connection while the broker restarts.
func freePorts(n int) ([]int, error) {
	lo, hi := 20000, 32767
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v-1 > lo+1000 {
				hi = v - 1
			}
		}
	}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("no %d free ports in %d-%d", n, lo, hi)
		}
		p := lo + rand.IntN(hi-lo+1)
		if slices.Contains(out, p) {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close()
		out = append(out, p)
	}
	return out, nil
}

// require makes sure this test's broker can run the scenario; ok says
// whether the package's broker can, why what it lacks. When it cannot (a
// KAFKA_BROKERS broker without KAFKA_RESTART_CMD or a SASL listener, or
// the Docker one), the test runs against the tests' own kafka-local.sh
// broker, which has both, started on first need; with no Java and Maven
// for it the test fails, saying what to set. It never skips.
//
// The package's broker handle is swapped for the test's duration, so a
// test that calls require must not call t.Parallel.
func require(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	b, err := ownBroker()
	if err != nil {
		t.Fatalf("this broker (%s) cannot run this scenario: %s; nor could the tests start a broker of their own for it:\n%v", kafka.source, why, err)
	}
	prev := kafka
	kafka = b
	t.Cleanup(func() { kafka = prev })
	t.Logf("this broker (%s) cannot run this scenario (%s): running it against the tests' own broker at %v", prev.source, why, b.plain)
}
