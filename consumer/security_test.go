package consumer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/receiver-fanout/fanout/fanout"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// selfSigned returns a server certificate for 127.0.0.1 and the path of a
// PEM file holding it (as its own CA).
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}

func runOnce(t *testing.T, cfg Config, topic string) (*sink, error) {
	t.Helper()
	s := newSink("r")
	c, err := build(cfg, fanout.Options{}, fanout.ReceiverConfig{Topic: topic, Routes: routesOf(s)})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.After(guard)
	for s.Distinct(topic) < 10 {
		select {
		case err := <-done:
			cancel()
			return s, err
		case <-deadline:
			cancel()
			<-done
			t.Fatal("nothing delivered")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	return s, <-done
}

func TestConsumer_TLS(t *testing.T) {
	cert, caFile := selfSigned(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "secure"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addrs := c.ListenAddrs()
	pcl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DialTLSConfig(&tls.Config{InsecureSkipVerify: true})) //nolint:gosec // test producer
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := pcl.ProduceSync(context.Background(), &kgo.Record{Topic: "secure", Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	pcl.Close()

	cfg := testConfig(addrs, "tls-g")
	cfg.TLS = &TLSConfig{CAFile: caFile}
	if _, err := runOnce(t, cfg, "secure"); err != nil {
		t.Fatalf("with the right CA: %v", err)
	}
	// Without trusting the broker's certificate the consumer fails at start.
	cfg = testConfig(addrs, "tls-g2")
	cfg.TLS = &TLSConfig{}
	if _, err := runOnce(t, cfg, "secure"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("with an untrusted certificate: err = %v, want a certificate error", err)
	}
	cfg.TLS = &TLSConfig{CAFile: filepath.Join(t.TempDir(), "missing.pem")}
	if _, err := build(cfg, fanout.Options{}, fanout.ReceiverConfig{Topic: "secure", Routes: routesOf(newSink("r"))}); err == nil || !strings.Contains(err.Error(), "kafka tls: ca_file: cannot read it") {
		t.Fatalf("missing CA file: err = %v", err)
	}
}

func TestConsumer_SASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "auth"), kfake.EnableSASL(),
				kfake.Superuser(mech, "admin", "right-password"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			addrs := c.ListenAddrs()
			admin := &SASLConfig{Mechanism: mech, Username: "admin", Password: "right-password"}
			m, err := admin.mechanism()
			if err != nil {
				t.Fatal(err)
			}
			pcl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.SASL(m))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if err := pcl.ProduceSync(context.Background(), &kgo.Record{Topic: "auth", Value: []byte{byte(i)}}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			pcl.Close()
			cfg := testConfig(addrs, "sasl-g")
			cfg.SASL = admin
			if _, err := runOnce(t, cfg, "auth"); err != nil {
				t.Fatalf("right credentials: %v", err)
			}
			cfg.SASL = &SASLConfig{Mechanism: mech, Username: "admin", Password: "wrong-password"}
			// kfake drops the connection on a failed login (a real broker
			// answers SASL_AUTHENTICATION_FAILED; the integration tests
			// check that message): Run must fail at start either way.
			_, err = runOnce(t, cfg, "auth")
			if err == nil || !strings.Contains(err.Error(), "connect to kafka") || strings.Contains(err.Error(), "wrong-password") {
				t.Fatalf("wrong credentials: err = %v, want a start-up error without the password", err)
			}
		})
	}
}

// FANOUT_START_OFFSET=latest: a new group skips what was there before it.
func TestConsumer_startOffsetLatest(t *testing.T) {
	c := newCluster(t, 1, "fresh")
	addrs := c.ListenAddrs()
	produceTo(t, addrs, "fresh", 0, 5) // offsets 0-4, before the group exists
	s := newSink("r")
	cfg := testConfig(addrs, "latest-g")
	cfg.StartOffset = "latest"
	run := start(t, cfg, fanout.ReceiverConfig{Topic: "fresh", Routes: routesOf(s)})
	wait(t, guard, "joined", run.c.Ready)
	// The start offset is resolved after the join; keep producing until
	// something arrives.
	wait(t, guard, "new records delivered", func() bool {
		produceTo(t, addrs, "fresh", 0, 1)
		return s.Distinct("fresh") > 0
	})
	seen := s.Seen()
	for off := range 5 {
		if seen["fresh/0/"+string(rune('0'+off))] > 0 {
			t.Fatalf("record %d from before the group was delivered with start offset latest", off)
		}
	}
}

func TestConfig_badSettings(t *testing.T) {
	if _, err := build(Config{Brokers: []string{"x:1"}}, fanout.Options{}); err == nil || !strings.Contains(err.Error(), "group") {
		t.Fatalf("no group: %v", err)
	}
	if _, err := build(Config{Brokers: []string{"x:1"}, Group: "g", StartOffset: "middle"}, fanout.Options{}); err == nil || !strings.Contains(err.Error(), "middle") {
		t.Fatalf("bad start offset: %v", err)
	}
	if _, err := build(Config{Brokers: []string{"x:1"}, Group: "g", SASL: &SASLConfig{Mechanism: "GSSAPI"}}, fanout.Options{}); err == nil || !strings.Contains(err.Error(), "GSSAPI") {
		t.Fatalf("unknown mechanism: %v", err)
	}
}
