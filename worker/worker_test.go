package worker

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/config"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testFile(t *testing.T) *config.File {
	t.Helper()
	f, err := config.Parse("test.yaml", []byte("receivers:\n  - topic: orders\n    routes:\n      - {name: sink, type: discard}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func testEnv(brokers []string, addr string) config.Env {
	e := config.DefaultEnv()
	e.Brokers = brokers
	e.HTTPAddr = addr
	e.ShutdownTimeout = 5 * time.Second
	return e
}

func TestNew_busyPortFailsWithoutLeaking(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = New(Options{Env: testEnv([]string{"127.0.0.1:1"}, l.Addr().String()), File: testFile(t), Logger: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "FANOUT_HTTP_ADDR") {
		t.Fatalf("err = %v, want a FANOUT_HTTP_ADDR error", err)
	}
}

func TestRun_servesHealthAndReadinessThenStops(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := New(Options{Env: testEnv(c.ListenAddrs(), "127.0.0.1:0"), File: testFile(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	get := func(path string) int {
		resp, err := http.Get("http://" + w.Addr() + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for get("/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRun_unreachableBrokerIsAnError(t *testing.T) {
	w, err := New(Options{Env: testEnv([]string{"127.0.0.1:1"}, "127.0.0.1:0"), File: testFile(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	err = w.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "connect to kafka") {
		t.Fatalf("err = %v", err)
	}
}
