package check

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.uber.org/goleak"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// klog and friends start goroutines at init; they are not the tests'.
	before := goleak.IgnoreCurrent()
	dir, err := os.MkdirTemp("", "fanout-chart-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildWorker(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(before); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines left behind: %v\n", err)
			return 1
		}
	}
	return code
}

// wantKinds is what each profile renders, sorted.
var wantKinds = map[string][]string{
	"defaults": {"ConfigMap", "PodDisruptionBudget", "Service", "ServiceAccount", "StatefulSet"},
	"full":     {"ConfigMap", "PodDisruptionBudget", "PodMonitor", "PrometheusRule", "ScaledObject", "Service", "ServiceAccount", "StatefulSet", "TriggerAuthentication"},
	"static":   {"ConfigMap", "Service", "ServiceAccount", "StatefulSet"},
}

// TestChart_profiles renders the chart with its defaults and with each
// ci/*-values.yaml, and holds every object to what the worker needs.
func TestChart_profiles(t *testing.T) {
	rules := rulesFile(t)
	defaults := valuesFile(t, filepath.Join(chartDir, "values.yaml"))
	for _, p := range profiles(t) {
		t.Run(p.name, func(t *testing.T) {
			o, err := render(p.values)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			kinds := o.kinds()
			slices.Sort(kinds)
			want, ok := wantKinds[p.name]
			if !ok {
				t.Fatalf("no wantKinds entry for profile %q: say what it renders", p.name)
			}
			if !slices.Equal(kinds, want) {
				t.Fatalf("kinds %v, want %v", kinds, want)
			}
			for _, m := range o.all {
				checkMeta(t, m)
			}
			sts := only[*appsv1.StatefulSet](t, o)
			pod := newPod(t, o, sts)
			t.Run("static membership", func(t *testing.T) { checkStaticMembership(t, o, pod) })
			t.Run("probes", func(t *testing.T) { checkProbes(t, o, pod) })
			t.Run("drain budget", func(t *testing.T) { checkDrain(t, pod) })
			t.Run("memory", func(t *testing.T) {
				pct := p.values["goMemLimitPercent"]
				if pct == nil {
					pct = defaults["goMemLimitPercent"]
				}
				checkMemory(t, pod, pct)
			})
			t.Run("pod security restricted", func(t *testing.T) { checkPodSecurity(t, pod) })
			t.Run("fanout validate", func(t *testing.T) { checkValidate(t, o, pod) })
			t.Run("disruption budget", func(t *testing.T) { checkPDB(t, o, pod) })
			t.Run("autoscaling", func(t *testing.T) { checkAutoscaling(t, o, pod) })
			t.Run("pod monitor", func(t *testing.T) { checkPodMonitor(t, o, pod, rules) })
			t.Run("prometheus rule", func(t *testing.T) { checkPrometheusRule(t, o, rules) })
		})
	}
}

// checkMeta holds an object's name, namespace and labels to the API
// server's rules (strict decoding checks fields and types, not values).
func checkMeta(t *testing.T, m manifest) {
	t.Helper()
	type withMeta interface{ GetObjectMeta() metav1.Object }
	v, ok := m.obj.(withMeta)
	if !ok {
		t.Fatalf("%s: %T has no object meta", m.source, m.obj)
	}
	meta := v.GetObjectMeta()
	if meta.GetNamespace() != namespace {
		t.Errorf("%s %s: namespace %q, want the release's %q", m.source, meta.GetName(), meta.GetNamespace(), namespace)
	}
	nameErrs := validation.IsDNS1123Subdomain(meta.GetName())
	if _, isService := m.obj.(*corev1.Service); isService {
		nameErrs = validation.IsDNS1035Label(meta.GetName())
	}
	for _, e := range nameErrs {
		t.Errorf("%s: name %q: %s", m.source, meta.GetName(), e)
	}
	for _, e := range metav1validation.ValidateLabels(meta.GetLabels(), field.NewPath("metadata", "labels")) {
		t.Errorf("%s: %v", m.source, e)
	}
	if sts, ok := m.obj.(*appsv1.StatefulSet); ok {
		// its pods are labelled controller-revision-hash=<name>-<10 characters>
		if n := len(sts.Name); n > 52 {
			t.Errorf("StatefulSet name %q has %d characters: its pods' revision label would pass 63", sts.Name, n)
		}
		for _, e := range metav1validation.ValidateLabels(sts.Spec.Template.Labels, field.NewPath("spec", "template", "metadata", "labels")) {
			t.Errorf("%s: %v", m.source, e)
		}
		for _, c := range sts.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				for _, msg := range validation.IsEnvVarName(e.Name) {
					t.Errorf("container %s: env %q: %s", c.Name, e.Name, msg)
				}
			}
			for _, p := range c.Ports {
				for _, msg := range validation.IsValidPortName(p.Name) {
					t.Errorf("container %s: port name %q: %s", c.Name, p.Name, msg)
				}
			}
		}
	}
}

// pod is the StatefulSet's pod template with its one container.
type pod struct {
	sts  *appsv1.StatefulSet
	spec *corev1.PodSpec
	c    *corev1.Container
	env  map[string]corev1.EnvVar
}

func newPod(t *testing.T, o *objects, sts *appsv1.StatefulSet) *pod {
	t.Helper()
	spec := &sts.Spec.Template.Spec
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Fatalf("%d containers and %d init containers, want the one worker", len(spec.Containers), len(spec.InitContainers))
	}
	p := &pod{sts: sts, spec: spec, c: &spec.Containers[0], env: map[string]corev1.EnvVar{}}
	for _, e := range p.c.Env {
		if _, dup := p.env[e.Name]; dup {
			t.Errorf("env %s set twice", e.Name)
		}
		p.env[e.Name] = e
	}
	sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if sel.Empty() || !sel.Matches(labels.Set(sts.Spec.Template.Labels)) {
		t.Fatalf("StatefulSet selector %v does not select its pods %v", sts.Spec.Selector, sts.Spec.Template.Labels)
	}
	return p
}

// value is the literal value of an environment variable, failing when it
// is missing or comes from a reference.
func (p *pod) value(t *testing.T, name string) string {
	t.Helper()
	e, ok := p.env[name]
	if !ok {
		t.Fatalf("env %s is not set", name)
	}
	if e.ValueFrom != nil {
		t.Fatalf("env %s comes from %v, want a literal value", name, e.ValueFrom)
	}
	return e.Value
}

func (p *pod) selects(t *testing.T, what string, sel *metav1.LabelSelector) {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if s.Empty() || !s.Matches(labels.Set(p.sts.Spec.Template.Labels)) {
		t.Errorf("%s selector %v does not select the pods %v", what, sel, p.sts.Spec.Template.Labels)
	}
}

// port resolves a probe's or endpoint's port against the container's.
func (p *pod) port(t *testing.T, port intstr.IntOrString) int32 {
	t.Helper()
	if port.Type == intstr.Int {
		return port.IntVal
	}
	for _, cp := range p.c.Ports {
		if cp.Name == port.StrVal {
			return cp.ContainerPort
		}
	}
	t.Fatalf("no container port named %q", port.StrVal)
	return 0
}

// A restarted pod takes its partitions back only if it comes back under the
// same FANOUT_INSTANCE_ID: a StatefulSet pod's name is stable and unique.
func checkStaticMembership(t *testing.T, o *objects, p *pod) {
	id, ok := p.env["FANOUT_INSTANCE_ID"]
	if !ok || id.ValueFrom == nil || id.ValueFrom.FieldRef == nil || id.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Fatalf("FANOUT_INSTANCE_ID = %+v, want the pod's name (fieldRef metadata.name)", id)
	}
	if len(all[*appsv1.Deployment](o)) > 0 {
		t.Error("a Deployment's pods get new names on every restart: no use for static membership")
	}
	var governing *corev1.Service
	for _, s := range all[*corev1.Service](o) {
		if s.Name == p.sts.Spec.ServiceName {
			governing = s
		}
	}
	if governing == nil {
		t.Fatalf("serviceName %q is not rendered", p.sts.Spec.ServiceName)
	}
	if governing.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("governing Service %s is not headless (clusterIP %q)", governing.Name, governing.Spec.ClusterIP)
	}
	p.selects(t, "governing Service", &metav1.LabelSelector{MatchLabels: governing.Spec.Selector})
	if p.sts.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		t.Errorf("update strategy %q: pods would not be replaced on upgrade", p.sts.Spec.UpdateStrategy.Type)
	}
}

// Probes on /healthz and /readyz at the port of FANOUT_HTTP_ADDR.
func checkProbes(t *testing.T, o *objects, p *pod) {
	_, portText, err := net.SplitHostPort(p.value(t, "FANOUT_HTTP_ADDR"))
	if err != nil {
		t.Fatalf("FANOUT_HTTP_ADDR: %v", err)
	}
	httpPort, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatalf("FANOUT_HTTP_ADDR port: %v", err)
	}
	for _, c := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", p.c.LivenessProbe, "/healthz"}, {"readiness", p.c.ReadinessProbe, "/readyz"}} {
		if c.probe == nil || c.probe.HTTPGet == nil {
			t.Errorf("%s probe %+v, want an HTTP GET of %s", c.name, c.probe, c.path)
			continue
		}
		if c.probe.HTTPGet.Path != c.path {
			t.Errorf("%s probe path %q, want %q", c.name, c.probe.HTTPGet.Path, c.path)
		}
		if got := p.port(t, c.probe.HTTPGet.Port); int(got) != httpPort {
			t.Errorf("%s probe port %d, but FANOUT_HTTP_ADDR listens on %d", c.name, got, httpPort)
		}
	}
	for _, s := range all[*corev1.Service](o) {
		for _, sp := range s.Spec.Ports {
			if got := p.port(t, sp.TargetPort); int(got) != httpPort {
				t.Errorf("Service %s port %s targets %d, the worker listens on %d", s.Name, sp.Name, got, httpPort)
			}
		}
	}
}

// The drain fits in FANOUT_SHUTDOWN_TIMEOUT + 1s; the kubelet must wait
// longer before it kills, and the session must outlast a whole restart.
func checkDrain(t *testing.T, p *pod) {
	shutdown, err := time.ParseDuration(p.value(t, "FANOUT_SHUTDOWN_TIMEOUT"))
	if err != nil {
		t.Fatalf("FANOUT_SHUTDOWN_TIMEOUT: %v", err)
	}
	if p.spec.TerminationGracePeriodSeconds == nil {
		t.Fatal("terminationGracePeriodSeconds unset (Kubernetes' 30s would be below the default drain budget)")
	}
	grace := time.Duration(*p.spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= shutdown+time.Second {
		t.Errorf("terminationGracePeriodSeconds %s is not above FANOUT_SHUTDOWN_TIMEOUT %s + 1s", grace, shutdown)
	}
	if p.c.Lifecycle != nil && p.c.Lifecycle.PreStop != nil {
		t.Errorf("a preStop hook spends the grace period before SIGTERM: %+v", p.c.Lifecycle.PreStop)
	}
	session, err := time.ParseDuration(p.value(t, "FANOUT_SESSION_TIMEOUT"))
	if err != nil {
		t.Fatalf("FANOUT_SESSION_TIMEOUT: %v", err)
	}
	if session <= grace {
		t.Errorf("FANOUT_SESSION_TIMEOUT %s is not above the grace period %s: a restarting static member's session ends before it is back", session, grace)
	}
}

var goMemLimitRE = regexp.MustCompile(`^([0-9]+)MiB$`)

// A memory limit, and GOMEMLIMIT at the given percentage of it.
func checkMemory(t *testing.T, p *pod, pct any) {
	limit, ok := p.c.Resources.Limits[corev1.ResourceMemory]
	if !ok || limit.IsZero() {
		t.Fatal("no memory limit: the worker's start-up check against its memory limit has nothing to hold it to")
	}
	for name, req := range p.c.Resources.Requests {
		if l, ok := p.c.Resources.Limits[name]; ok && req.Cmp(l) > 0 {
			t.Errorf("%s request %s above its limit %s", name, req.String(), l.String())
		}
	}
	percent, err := strconv.ParseInt(fmt.Sprint(pct), 10, 64)
	if err != nil {
		t.Fatalf("goMemLimitPercent %v: %v", pct, err)
	}
	m := goMemLimitRE.FindStringSubmatch(p.value(t, "GOMEMLIMIT"))
	if m == nil {
		t.Fatalf("GOMEMLIMIT %q, want <n>MiB", p.value(t, "GOMEMLIMIT"))
	}
	got, _ := strconv.ParseInt(m[1], 10, 64)
	want := limit.Value() * percent / 100 / (1 << 20)
	if got != want {
		t.Errorf("GOMEMLIMIT %dMiB, want %d%% of the %s limit = %dMiB", got, percent, limit.String(), want)
	}
}

// The pod passes the "restricted" Pod Security Standard, as a namespace
// labelled pod-security.kubernetes.io/enforce=restricted would check it.
func checkPodSecurity(t *testing.T, p *pod) {
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	for _, r := range ev.EvaluatePod(lv, &p.sts.Spec.Template.ObjectMeta, p.spec) {
		if !r.Allowed {
			t.Errorf("restricted: %s: %s", r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
	if p.spec.AutomountServiceAccountToken == nil || *p.spec.AutomountServiceAccountToken {
		t.Error("the service account token is mounted, and the worker does not use the Kubernetes API")
	}
}

func checkPDB(t *testing.T, o *objects, p *pod) {
	for _, pdb := range all[*policyv1.PodDisruptionBudget](o) {
		p.selects(t, "PodDisruptionBudget", pdb.Spec.Selector)
		if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
			t.Error("PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
		}
		if mu := pdb.Spec.MaxUnavailable; mu != nil && mu.Type == intstr.Int && mu.IntVal < 1 {
			t.Errorf("maxUnavailable %d blocks every node drain", mu.IntVal)
		}
	}
}

// kedaSASL is KEDA's name for each FANOUT_SASL_MECHANISM.
var kedaSASL = map[string]string{"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}

// KEDA scales the StatefulSet on the lag of the worker's own group, with
// the worker's own credentials.
func checkAutoscaling(t *testing.T, o *objects, p *pod) {
	sos := all[*kedav1alpha1.ScaledObject](o)
	if len(sos) == 0 {
		if p.sts.Spec.Replicas == nil {
			t.Error("no ScaledObject and no replicas")
		}
		if len(all[*kedav1alpha1.TriggerAuthentication](o)) > 0 {
			t.Error("a TriggerAuthentication without a ScaledObject")
		}
		return
	}
	so := sos[0]
	if len(sos) > 1 {
		t.Fatalf("%d ScaledObjects for one StatefulSet", len(sos))
	}
	if p.sts.Spec.Replicas != nil {
		t.Errorf("replicas %d set with a ScaledObject: every upgrade would reset KEDA's count", *p.sts.Spec.Replicas)
	}
	ref := so.Spec.ScaleTargetRef
	if ref == nil || ref.Kind != "StatefulSet" || ref.APIVersion != "apps/v1" || ref.Name != p.sts.Name {
		t.Errorf("scaleTargetRef %+v, want apps/v1 StatefulSet %s", ref, p.sts.Name)
	}
	if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 {
		t.Error("minReplicaCount below 1: a scaled-to-zero group has nobody to see the lag come back but KEDA, and the PodDisruptionBudget blocks nothing")
	}
	if so.Spec.MaxReplicaCount == nil || (so.Spec.MinReplicaCount != nil && *so.Spec.MaxReplicaCount < *so.Spec.MinReplicaCount) {
		t.Errorf("maxReplicaCount %v below minReplicaCount %v", so.Spec.MaxReplicaCount, so.Spec.MinReplicaCount)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "kafka" {
		t.Fatalf("triggers %+v, want one kafka trigger", so.Spec.Triggers)
	}
	tr := so.Spec.Triggers[0]
	md := tr.Metadata
	for key, want := range map[string]string{
		"bootstrapServers":   p.value(t, "FANOUT_BROKERS"),
		"consumerGroup":      p.value(t, "FANOUT_GROUP"),
		"offsetResetPolicy":  p.value(t, "FANOUT_START_OFFSET"),
		"allowIdleConsumers": "false",
	} {
		if md[key] != want {
			t.Errorf("kafka trigger %s = %q, want %q", key, md[key], want)
		}
	}
	if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n < 1 {
		t.Errorf("lagThreshold %q, want a positive integer", md["lagThreshold"])
	}
	mech := ""
	if _, ok := p.env["FANOUT_SASL_MECHANISM"]; ok {
		mech = p.value(t, "FANOUT_SASL_MECHANISM")
	}
	if md["sasl"] != kedaSASL[mech] {
		t.Errorf("kafka trigger sasl %q, want %q for FANOUT_SASL_MECHANISM %q", md["sasl"], kedaSASL[mech], mech)
	}
	tlsOn := false
	if _, ok := p.env["FANOUT_TLS_ENABLED"]; ok {
		tlsOn = p.value(t, "FANOUT_TLS_ENABLED") == "true"
	}
	if (md["tls"] == "enable") != tlsOn {
		t.Errorf("kafka trigger tls %q, worker FANOUT_TLS_ENABLED %v", md["tls"], tlsOn)
	}
	// The scaler must log in as the worker does: same Secret keys.
	want := map[string]corev1.SecretKeySelector{}
	for param, env := range map[string]string{"username": "FANOUT_SASL_USERNAME", "password": "FANOUT_SASL_PASSWORD"} {
		if e, ok := p.env[env]; ok {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Fatalf("%s is not from a Secret", env)
			}
			want[param] = *e.ValueFrom.SecretKeyRef
		}
	}
	for param, file := range map[string]string{"ca": "FANOUT_TLS_CA_FILE", "cert": "FANOUT_TLS_CERT_FILE", "key": "FANOUT_TLS_KEY_FILE"} {
		if _, ok := p.env[file]; ok {
			secret, key := p.secretFileSource(t, p.value(t, file))
			want[param] = corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}
		}
	}
	if len(want) == 0 {
		if tr.AuthenticationRef != nil {
			t.Errorf("authenticationRef %+v for a broker without SASL or TLS", tr.AuthenticationRef)
		}
		return
	}
	if tr.AuthenticationRef == nil {
		t.Fatal("the worker authenticates to Kafka but the trigger has no authenticationRef")
	}
	var ta *kedav1alpha1.TriggerAuthentication
	for _, x := range all[*kedav1alpha1.TriggerAuthentication](o) {
		if x.Name == tr.AuthenticationRef.Name {
			ta = x
		}
	}
	if ta == nil {
		t.Fatalf("authenticationRef %q is not rendered", tr.AuthenticationRef.Name)
	}
	got := map[string]corev1.SecretKeySelector{}
	for _, r := range ta.Spec.SecretTargetRef {
		got[r.Parameter] = corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: r.Name}, Key: r.Key}
	}
	if !apiequality.Semantic.DeepEqual(got, want) {
		t.Errorf("TriggerAuthentication %v, want the worker's own Secrets %v", got, want)
	}
}

// secretFileSource names the Secret and key that the pod mounts at path.
func (p *pod) secretFileSource(t *testing.T, path string) (secret, key string) {
	t.Helper()
	for _, vm := range p.c.VolumeMounts {
		rel, err := filepath.Rel(vm.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range p.spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					return v.Secret.SecretName, it.Key
				}
			}
		}
	}
	t.Fatalf("%s is not a file of a mounted Secret", path)
	return "", ""
}

// jobRE finds the job names the rules select.
var jobRE = regexp.MustCompile(`\bjob\s*=\s*"([^"]+)"`)

// The PodMonitor scrapes the pods' metrics port under the job name the
// rules select.
func checkPodMonitor(t *testing.T, o *objects, p *pod, rules monitoringv1.PrometheusRuleSpec) {
	for _, pm := range all[*monitoringv1.PodMonitor](o) {
		p.selects(t, "PodMonitor", &pm.Spec.Selector)
		if ns := pm.Spec.NamespaceSelector; ns.Any || (len(ns.MatchNames) > 0 && !slices.Contains(ns.MatchNames, namespace)) {
			t.Errorf("PodMonitor namespaceSelector %+v, want the release's namespace", ns)
		}
		if len(pm.Spec.PodMetricsEndpoints) != 1 {
			t.Fatalf("%d endpoints, want 1", len(pm.Spec.PodMetricsEndpoints))
		}
		ep := pm.Spec.PodMetricsEndpoints[0]
		if ep.Port == nil {
			t.Fatal("endpoint names no port")
		}
		_, portText, _ := net.SplitHostPort(p.value(t, "FANOUT_HTTP_ADDR"))
		if got := p.port(t, intstr.FromString(*ep.Port)); strconv.Itoa(int(got)) != portText {
			t.Errorf("PodMonitor scrapes port %d, FANOUT_HTTP_ADDR is %s", got, p.value(t, "FANOUT_HTTP_ADDR"))
		}
		if ep.Path != "/metrics" {
			t.Errorf("path %q, want /metrics", ep.Path)
		}
		job := ""
		for _, r := range ep.RelabelConfigs {
			if r.TargetLabel == "job" && r.Replacement != nil && len(r.SourceLabels) == 0 {
				job = *r.Replacement
			}
		}
		if job == "" {
			t.Fatal("PodMonitor leaves job as <namespace>/<name>, which no rule selects")
		}
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				for _, m := range jobRE.FindAllStringSubmatch(r.Expr.String(), -1) {
					if m[1] != job {
						t.Errorf("rule %s%s selects job %q, the PodMonitor sets job %q", r.Alert, r.Record, m[1], job)
					}
				}
			}
		}
	}
}

// The PrometheusRule is alerting/rules.yml, whatever that file holds now.
func checkPrometheusRule(t *testing.T, o *objects, rules monitoringv1.PrometheusRuleSpec) {
	for _, pr := range all[*monitoringv1.PrometheusRule](o) {
		if !apiequality.Semantic.DeepEqual(pr.Spec, rules) {
			got, _ := yaml.Marshal(pr.Spec)
			want, _ := yaml.Marshal(rules)
			t.Errorf("PrometheusRule differs from alerting/rules.yml\n--- rendered\n%s\n--- alerting/rules.yml\n%s", got, want)
		}
	}
}

// rulesFile decodes alerting/rules.yml strictly as a PrometheusRule's spec:
// a field prometheus-operator does not know fails here.
func rulesFile(t *testing.T) monitoringv1.PrometheusRuleSpec {
	t.Helper()
	var spec monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(readFile(t, filepath.Join(repoRoot, "alerting", "rules.yml")), &spec); err != nil {
		t.Fatalf("alerting/rules.yml as a PrometheusRule spec: %v", err)
	}
	if len(spec.Groups) == 0 {
		t.Fatal("alerting/rules.yml has no groups")
	}
	return spec
}

// The chart's rules file is the repository's, not a copy.
func TestChart_rulesFileIsTheRepositorys(t *testing.T) {
	link := filepath.Join(chartDir, "files", "rules.yml")
	st, err := os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("%s is a %s, want a symbolic link to alerting/rules.yml (a copy would drift)", link, describeMode(st.Mode()))
	}
	got, err := filepath.EvalSymlinks(link)
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.EvalSymlinks(filepath.Join(repoRoot, "alerting", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("%s resolves to %s, want %s", link, got, want)
	}
}

// helm lint finds nothing above INFO in any profile.
func TestChart_lint(t *testing.T) {
	for _, p := range profiles(t) {
		t.Run(p.name, func(t *testing.T) {
			res := lint.RunAll(chartDir, p.values, namespace)
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m.Error())
				}
			}
		})
	}
}

// Bad values fail the render with a message that names the value.
func TestChart_rejectsBadValues(t *testing.T) {
	cases := []struct {
		name, values string
		want         []string // each must appear in the error
	}{
		{"misspelt key", "replica: 3", []string{"replica"}},
		{"brokers as one string", "kafka: {brokers: [\"a:9092,b:9092\"]}", []string{"brokers"}},
		{"unknown SASL mechanism", "kafka: {sasl: {mechanism: GSSAPI, secretName: s}}", []string{"mechanism"}},
		{"SASL without a Secret", "kafka: {sasl: {mechanism: SCRAM-SHA-512}}", []string{"kafka.sasl.secretName"}},
		{"TLS Secret with TLS off", "kafka: {tls: {caSecretName: ca}}", []string{"kafka.tls.enabled"}},
		{"session ends before a restart", "sessionTimeoutSeconds: 40", []string{"sessionTimeoutSeconds", "terminationGracePeriodSeconds"}},
		{"grace margin below the drain's extra second", "terminationGraceMarginSeconds: 1", []string{"terminationGraceMarginSeconds"}},
		{"fractional memory limit", "resources: {limits: {memory: 0.5Gi}}", []string{"resources.limits.memory", "0.5Gi"}},
		{"memory limit too small", "resources: {limits: {memory: 64Mi}}", []string{"resources.limits.memory", "64MiB"}},
		{"no memory limit", "resources: {limits: {memory: null}}", []string{"memory"}},
		{"chart-owned variable in extraEnv", "extraEnv: [{name: FANOUT_INSTANCE_ID, value: x}]", []string{"extraEnv[0]", "FANOUT_INSTANCE_ID"}},
		{"chart-owned variable in secretEnv", "secretEnv: {FANOUT_SASL_PASSWORD: {secretName: s, key: k}}", []string{"secretEnv.FANOUT_SASL_PASSWORD"}},
		{"secretEnv without a key", "secretEnv: {TOKEN: {secretName: s}}", []string{"key"}},
		{"no receivers", "config: {receivers: null}", []string{"receivers"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(valuesYAML(t, c.values))
			if err == nil {
				t.Fatalf("values %q rendered", c.values)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %q:\n%v", w, err)
				}
			}
		})
	}
}

func describeMode(m os.FileMode) string {
	if m.IsRegular() {
		return "regular file (a copy)"
	}
	return m.Type().String()
}
