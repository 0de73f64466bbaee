package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"
)

const (
	releaseName = "fanout"
	namespace   = "events"
)

var (
	repoRoot = filepath.Join("..", "..", "..")
	chartDir = filepath.Join("..", "fanout")
)

// scheme knows every kind the chart may render; decoding anything else
// fails.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme,
		kedav1alpha1.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strict decodes with unknown and duplicate fields as errors.
var strict = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// manifest is one rendered object, as `helm template` prints it.
type manifest struct {
	source string // template file, e.g. fanout/templates/statefulset.yaml
	yaml   string
	obj    runtime.Object
}

// objects is one rendering of the chart.
type objects struct {
	all []manifest
}

// render renders the chart as `helm template fanout deploy/kubernetes/fanout
// --namespace events -f <values>` does: values coalesced with the chart's
// and checked against values.schema.json, templates rendered in strict mode
// (a missing value is an error), NOTES.txt dropped, manifests split and
// put in install order. Each manifest is then decoded strictly.
func render(userValues map[string]any) (*objects, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	caps := common.DefaultCapabilities.Copy()
	vals, err := util.ToRenderValuesWithSchemaValidation(ch, userValues,
		common.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}, caps, false)
	if err != nil {
		return nil, err
	}
	files, err := engine.Engine{Strict: true}.RenderWithContext(context.Background(), ch, vals)
	if err != nil {
		return nil, err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, sorted, err := releaseutil.SortManifests(files, caps.APIVersions, releaseutil.InstallOrder)
	if err != nil {
		return nil, err
	}
	if len(hooks) > 0 {
		return nil, fmt.Errorf("%d hooks rendered; the chart has none", len(hooks))
	}
	out := &objects{}
	for _, m := range sorted {
		obj, _, err := strict.Decode([]byte(m.Content), nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w\n%s", m.Name, err, m.Content)
		}
		out.all = append(out.all, manifest{source: m.Name, yaml: m.Content, obj: obj})
	}
	return out, nil
}

// valuesFile reads a values file as `helm -f` does.
func valuesFile(t *testing.T, path string) map[string]any {
	t.Helper()
	v, err := common.ReadValuesFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// valuesYAML parses values written inline in a test.
func valuesYAML(t *testing.T, text string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal([]byte(text), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// kinds lists the rendered kinds in install order.
func (o *objects) kinds() []string {
	var out []string
	for _, m := range o.all {
		out = append(out, m.obj.GetObjectKind().GroupVersionKind().Kind)
	}
	return out
}

// only returns the one object of type T, failing when there are none or
// several.
func only[T runtime.Object](t *testing.T, o *objects) T {
	t.Helper()
	got := all[T](o)
	if len(got) != 1 {
		var zero T
		t.Fatalf("%d objects of type %T rendered, want 1 (kinds: %v)", len(got), zero, o.kinds())
	}
	return got[0]
}

// all returns the objects of type T.
func all[T runtime.Object](o *objects) []T {
	var out []T
	for _, m := range o.all {
		if v, ok := m.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// profile is a values file the chart is rendered with.
type profile struct {
	name   string
	file   string // "" for the chart's defaults
	values map[string]any
}

// profiles are the defaults plus every ci/*-values.yaml (chart-testing's
// convention).
func profiles(t *testing.T) []profile {
	t.Helper()
	out := []profile{{name: "defaults", values: map[string]any{}}}
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no ci/*-values.yaml in the chart")
	}
	for _, f := range files {
		out = append(out, profile{name: strings.TrimSuffix(filepath.Base(f), "-values.yaml"), file: f, values: valuesFile(t, f)})
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
