package tlsfiles

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writePair(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "c"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Config(Files{CAFile: cert, CertFile: cert, KeyFile: key})
	if err != nil || cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("good files: %v", err)
	}
	for _, tc := range []struct {
		name  string
		files Files
		want  []string
	}{
		{"CA holds no certificate", Files{CAFile: notPEM}, []string{"ca_file: holds no PEM certificate"}},
		{"CA missing", Files{CAFile: filepath.Join(dir, "nope")}, []string{"ca_file: cannot read it: no such file"}},
		{"cert without key", Files{CertFile: cert}, []string{"key_file: required with cert_file"}},
		{"key without cert", Files{KeyFile: key}, []string{"cert_file: required with key_file"}},
		{"pair that does not match", Files{CertFile: notPEM, KeyFile: key}, []string{"cert_file:"}},
		{"every problem at once", Files{CAFile: notPEM, CertFile: cert}, []string{"ca_file:", "key_file: required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Config(tc.files)
			if err == nil {
				t.Fatal("accepted")
			}
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("%v is not a *tlsfiles.Error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
