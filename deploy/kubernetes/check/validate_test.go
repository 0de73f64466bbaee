package check

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// worker is the fanout binary built from this repository.
var worker string

func buildWorker(dir string) error {
	worker = filepath.Join(dir, "fanout")
	cmd := exec.Command("go", "build", "-o", worker, ".")
	cmd.Dir = repoRoot
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build the worker: %v\n%s", err, out.String())
	}
	return nil
}

// dummySecret stands for every Secret key the pod reads. It has the
// Standard Webhooks form (whsec_ and base64), so it also passes as a
// signing secret.
const dummySecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// dummySecretFile is what the test puts in a mounted Secret file: a PEM
// certificate or key where the name says it is one (the worker reads TLS
// files as it would at run time), else dummySecret.
func dummySecretFile(t *testing.T, name string) string {
	t.Helper()
	pemPair.once.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			pemPair.err = err
			return
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fanout-check"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			pemPair.err = err
			return
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			pemPair.err = err
			return
		}
		pemPair.cert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		pemPair.key = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	})
	if pemPair.err != nil {
		t.Fatal(pemPair.err)
	}
	switch {
	case strings.HasSuffix(name, ".key"):
		return pemPair.key
	case strings.HasSuffix(name, ".crt"), strings.HasSuffix(name, ".pem"):
		return pemPair.cert
	}
	return dummySecret
}

var pemPair struct {
	once      sync.Once
	cert, key string
	err       error
}

// checkValidate runs `fanout validate` as the pod would, and wants it to
// pass without a warning: the container's
// environment (references resolved as the kubelet does, Secrets by
// dummySecret) and its volumes laid out under a temporary root, so that
// FANOUT_CONFIG reads the rendered ConfigMap and the TLS paths find the
// mounted Secret files. The worker's own validation then judges every
// FANOUT_* value the chart sets and the receivers file.
func checkValidate(t *testing.T, o *objects, p *pod) {
	root := t.TempDir()
	configMaps := map[string]*corev1.ConfigMap{}
	for _, cm := range all[*corev1.ConfigMap](o) {
		configMaps[cm.Name] = cm
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range p.spec.Volumes {
		volumes[v.Name] = v
	}
	var mounts []string
	for _, vm := range p.c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			t.Fatalf("volumeMount %s: no such volume", vm.Name)
		}
		dst := filepath.Join(root, vm.MountPath)
		mounts = append(mounts, vm.MountPath)
		files := map[string]string{}
		switch {
		case v.ConfigMap != nil:
			cm, ok := configMaps[v.ConfigMap.Name]
			if !ok {
				t.Fatalf("volume %s: ConfigMap %s is not rendered", v.Name, v.ConfigMap.Name)
			}
			for k, val := range cm.Data {
				files[k] = val
			}
		case v.Secret != nil:
			if len(v.Secret.Items) == 0 {
				t.Fatalf("volume %s: Secret %s without items: which files it holds is unknown here", v.Name, v.Secret.SecretName)
			}
			for _, it := range v.Secret.Items {
				files[it.Path] = dummySecretFile(t, it.Path)
			}
		default:
			t.Fatalf("volume %s: kind not laid out by this test", v.Name)
		}
		if vm.SubPath != "" {
			content, ok := files[vm.SubPath]
			if !ok {
				t.Fatalf("volumeMount %s: subPath %s is not in the volume", vm.Name, vm.SubPath)
			}
			files = map[string]string{"": content}
		}
		for name, content := range files {
			path := filepath.Join(dst, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	env := []string{"HOME=" + root}
	for _, e := range p.c.Env {
		val := e.Value
		switch {
		case e.ValueFrom == nil:
			for _, m := range mounts {
				if val == m || strings.HasPrefix(val, m+"/") {
					val = filepath.Join(root, val)
				}
			}
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			val = p.sts.Name + "-0"
		case e.ValueFrom.SecretKeyRef != nil:
			val = dummySecret
		default:
			t.Fatalf("env %s: reference %+v not resolved by this test", e.Name, e.ValueFrom)
		}
		env = append(env, e.Name+"="+val)
	}
	if len(p.c.EnvFrom) > 0 {
		t.Fatalf("envFrom %+v: not resolved by this test", p.c.EnvFrom)
	}
	cmd := exec.Command(worker, "validate")
	cmd.Env = env
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("fanout validate in the pod's environment: %v\n%s%s\nenv: %q", err, stdout.String(), stderr.String(), env)
	}
	if !strings.Contains(stdout.String(), "is valid") {
		t.Fatalf("fanout validate printed no verdict:\n%s", stdout.String())
	}
	// A warning is a pod that will not work as configured: for one, a
	// worst-case memory above GOMEMLIMIT, with which `fanout run` refuses
	// to start.
	for _, line := range strings.Split(stdout.String()+stderr.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(strings.ToLower(line)), "warning") {
			t.Errorf("fanout validate in the pod's environment: %s\n%s", line, stdout.String())
		}
	}
}
