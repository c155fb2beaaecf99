package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/stretchr/testify/require"
)

// --- small typed mirrors of the custom resources (strict decoding rejects unknown fields) ---

// relabelConfig mirrors monitoring.coreos.com/v1 RelabelConfig.
type relabelConfig struct {
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    *string  `json:"separator,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Modulus      uint64   `json:"modulus,omitempty"`
	Replacement  *string  `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

type namespaceSelector struct {
	Any        bool     `json:"any,omitempty"`
	MatchNames []string `json:"matchNames,omitempty"`
}

// serviceMonitor mirrors monitoring.coreos.com/v1 ServiceMonitor (the fields this repo uses).
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel          string               `json:"jobLabel,omitempty"`
		TargetLabels      []string             `json:"targetLabels,omitempty"`
		PodTargetLabels   []string             `json:"podTargetLabels,omitempty"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector namespaceSelector    `json:"namespaceSelector,omitempty"`
		SampleLimit       *uint64              `json:"sampleLimit,omitempty"`
		Endpoints         []scrapeEndpoint     `json:"endpoints"`
	} `json:"spec"`
}

// scrapeEndpoint is an endpoint of a ServiceMonitor or a PodMonitor (the fields this repo uses).
type scrapeEndpoint struct {
	Port                 string              `json:"port,omitempty"`
	TargetPort           *intstr.IntOrString `json:"targetPort,omitempty"`
	Path                 string              `json:"path,omitempty"`
	Scheme               string              `json:"scheme,omitempty"`
	Interval             string              `json:"interval,omitempty"`
	ScrapeTimeout        string              `json:"scrapeTimeout,omitempty"`
	HonorLabels          bool                `json:"honorLabels,omitempty"`
	RelabelConfigs       []relabelConfig     `json:"relabelings,omitempty"`
	MetricRelabelConfigs []relabelConfig     `json:"metricRelabelings,omitempty"`
}

// podMonitor mirrors monitoring.coreos.com/v1 PodMonitor (the fields this repo uses).
type podMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel            string               `json:"jobLabel,omitempty"`
		PodTargetLabels     []string             `json:"podTargetLabels,omitempty"`
		Selector            metav1.LabelSelector `json:"selector"`
		NamespaceSelector   namespaceSelector    `json:"namespaceSelector,omitempty"`
		PodMetricsEndpoints []scrapeEndpoint     `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

type ofResources struct {
	Memory string `json:"memory,omitempty"`
	CPU    string `json:"cpu,omitempty"`
}

// ofFunction mirrors openfaas.com/v1 Function (faas-netes pkg/apis/openfaas/v1).
type ofFunction struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Name                   string            `json:"name"`
		Image                  string            `json:"image"`
		Handler                string            `json:"handler,omitempty"`
		Annotations            map[string]string `json:"annotations,omitempty"`
		Labels                 map[string]string `json:"labels,omitempty"`
		Environment            map[string]string `json:"environment,omitempty"`
		Constraints            []string          `json:"constraints,omitempty"`
		Secrets                []string          `json:"secrets,omitempty"`
		Limits                 *ofResources      `json:"limits,omitempty"`
		Requests               *ofResources      `json:"requests,omitempty"`
		ReadOnlyRootFilesystem bool              `json:"readOnlyRootFilesystem"`
	} `json:"spec"`
}

// ofProfile mirrors openfaas.com/v1 Profile.
type ofProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Tolerations               []corev1.Toleration               `json:"tolerations,omitempty"`
		RuntimeClassName          *string                           `json:"runtimeClassName,omitempty"`
		PodSecurityContext        *corev1.PodSecurityContext        `json:"podSecurityContext,omitempty"`
		Affinity                  *corev1.Affinity                  `json:"affinity,omitempty"`
		TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
		DNSPolicy                 *corev1.DNSPolicy                 `json:"dnsPolicy,omitempty"`
		DNSConfig                 *corev1.PodDNSConfig              `json:"dnsConfig,omitempty"`
	} `json:"spec"`
}

// argoApplication mirrors argoproj.io/v1alpha1 Application (the fields this repo uses).
type argoApplication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Project string `json:"project"`
		Source  struct {
			RepoURL        string `json:"repoURL"`
			TargetRevision string `json:"targetRevision,omitempty"`
			Path           string `json:"path,omitempty"`
			Kustomize      *struct {
				Images []string `json:"images,omitempty"`
			} `json:"kustomize,omitempty"`
		} `json:"source"`
		Destination struct {
			Server    string `json:"server,omitempty"`
			Name      string `json:"name,omitempty"`
			Namespace string `json:"namespace,omitempty"`
		} `json:"destination"`
		SyncPolicy *struct {
			Automated *struct {
				Prune      bool `json:"prune,omitempty"`
				SelfHeal   bool `json:"selfHeal,omitempty"`
				AllowEmpty bool `json:"allowEmpty,omitempty"`
			} `json:"automated,omitempty"`
			SyncOptions []string `json:"syncOptions,omitempty"`
			Retry       *struct {
				Limit   int64 `json:"limit,omitempty"`
				Backoff *struct {
					Duration    string `json:"duration,omitempty"`
					Factor      *int64 `json:"factor,omitempty"`
					MaxDuration string `json:"maxDuration,omitempty"`
				} `json:"backoff,omitempty"`
			} `json:"retry,omitempty"`
		} `json:"syncPolicy,omitempty"`
		IgnoreDifferences []struct {
			Group             string   `json:"group,omitempty"`
			Kind              string   `json:"kind"`
			Name              string   `json:"name,omitempty"`
			Namespace         string   `json:"namespace,omitempty"`
			JSONPointers      []string `json:"jsonPointers,omitempty"`
			JQPathExpressions []string `json:"jqPathExpressions,omitempty"`
		} `json:"ignoreDifferences,omitempty"`
		RevisionHistoryLimit *int64 `json:"revisionHistoryLimit,omitempty"`
	} `json:"spec"`
}

// kustomization mirrors kustomize.config.k8s.io Kustomization and Component.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	Components []string `json:"components,omitempty"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
	Patches []struct {
		Path   string `json:"path,omitempty"`
		Patch  string `json:"patch,omitempty"`
		Target *struct {
			Group         string `json:"group,omitempty"`
			Version       string `json:"version,omitempty"`
			Kind          string `json:"kind,omitempty"`
			Name          string `json:"name,omitempty"`
			Namespace     string `json:"namespace,omitempty"`
			LabelSelector string `json:"labelSelector,omitempty"`
		} `json:"target,omitempty"`
	} `json:"patches,omitempty"`
	ConfigMapGenerator []struct {
		Name     string   `json:"name"`
		Behavior string   `json:"behavior,omitempty"`
		Files    []string `json:"files,omitempty"`
		Literals []string `json:"literals,omitempty"`
	} `json:"configMapGenerator,omitempty"`
	Configurations []string `json:"configurations,omitempty"`
}

// transformerConfig mirrors a kustomize transformer configuration (configurations:).
type transformerConfig struct {
	Images []struct {
		Path string `json:"path"`
		Kind string `json:"kind"`
	} `json:"images"`
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
	From  string `json:"from,omitempty"`
}

// kinds maps apiVersion/kind to a fresh typed object.
var kinds = map[string]func() any{
	"v1/Namespace":                                  func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                             func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                                     func() any { return &corev1.Secret{} },
	"v1/Service":                                    func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                            func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":                 func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":        func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":            func() any { return &networkingv1.NetworkPolicy{} },
	"node.k8s.io/v1/RuntimeClass":                   func() any { return &nodev1.RuntimeClass{} },
	"monitoring.coreos.com/v1/ServiceMonitor":       func() any { return &serviceMonitor{} },
	"monitoring.coreos.com/v1/PodMonitor":           func() any { return &podMonitor{} },
	"openfaas.com/v1/Function":                      func() any { return &ofFunction{} },
	"openfaas.com/v1/Profile":                       func() any { return &ofProfile{} },
	"argoproj.io/v1alpha1/Application":              func() any { return &argoApplication{} },
	"kustomize.config.k8s.io/v1beta1/Kustomization": func() any { return &kustomization{} },
	"kustomize.config.k8s.io/v1alpha1/Component":    func() any { return &kustomization{} },
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// splitDocs splits a multi-document YAML stream, dropping empty documents.
func splitDocs(raw []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(raw), -1) {
		var probe any
		if yaml.Unmarshal([]byte(d), &probe) == nil && probe != nil {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// decodeObject decodes one manifest strictly into its typed object.
func decodeObject(t *testing.T, where string, doc []byte) any {
	t.Helper()
	var tm metav1.TypeMeta
	require.NoError(t, yaml.Unmarshal(doc, &tm), where)
	gvk := tm.APIVersion + "/" + tm.Kind
	mk, ok := kinds[gvk]
	require.True(t, ok, "%s: %s is not a kind this repository validates (add a typed decoder)", where, gvk)
	obj := mk()
	require.NoError(t, strictUnmarshal(doc, obj), "%s: %s", where, gvk)
	return obj
}

// manifestSet is every object of a set of files (or of a kustomize build), by kind.
type manifestSet struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
	netpols     []*networkingv1.NetworkPolicy
	sms         []*serviceMonitor
	pms         []*podMonitor
	functions   []*ofFunction
	profiles    []*ofProfile
	sas         []*corev1.ServiceAccount
	configMaps  []*corev1.ConfigMap
	namespaces  []*corev1.Namespace
	rtClasses   []*nodev1.RuntimeClass
}

func (m *manifestSet) add(obj any) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		m.deployments = append(m.deployments, o)
	case *corev1.Service:
		m.services = append(m.services, o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		m.hpas = append(m.hpas, o)
	case *policyv1.PodDisruptionBudget:
		m.pdbs = append(m.pdbs, o)
	case *networkingv1.NetworkPolicy:
		m.netpols = append(m.netpols, o)
	case *serviceMonitor:
		m.sms = append(m.sms, o)
	case *podMonitor:
		m.pms = append(m.pms, o)
	case *ofFunction:
		m.functions = append(m.functions, o)
	case *ofProfile:
		m.profiles = append(m.profiles, o)
	case *corev1.ServiceAccount:
		m.sas = append(m.sas, o)
	case *corev1.ConfigMap:
		m.configMaps = append(m.configMaps, o)
	case *corev1.Namespace:
		m.namespaces = append(m.namespaces, o)
	case *nodev1.RuntimeClass:
		m.rtClasses = append(m.rtClasses, o)
	}
}

func (m *manifestSet) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	for _, d := range m.deployments {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no Deployment %s", name)
	return nil
}

// k8sFiles returns every YAML file under deploy/k8s and deploy/argocd.
func k8sFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, root := range []string{"k8s", "argocd"} {
		require.NoError(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				files = append(files, p)
			}
			return err
		}))
	}
	sort.Strings(files)
	return files
}

// TestKubernetesManifestsStrict decodes every manifest under deploy/k8s and deploy/argocd
// strictly into its k8s.io/api type (or the typed mirror of its CRD), checks that every
// kustomization points at files that exist and that every file is used by one.
func TestKubernetesManifestsStrict(t *testing.T) {
	t.Parallel()
	role := map[string]string{} // file -> how a kustomization uses it
	var kusts []string
	for _, f := range k8sFiles(t) {
		if filepath.Base(f) == "kustomization.yaml" {
			kusts = append(kusts, f)
		}
	}
	require.NotEmpty(t, kusts)
	for _, kf := range kusts {
		var k kustomization
		readYAML(t, kf, &k, true)
		dir := filepath.Dir(kf)
		switch k.Kind {
		case "Kustomization":
			require.Equal(t, "kustomize.config.k8s.io/v1beta1", k.APIVersion, kf)
		case "Component":
			require.Equal(t, "kustomize.config.k8s.io/v1alpha1", k.APIVersion, kf)
		default:
			t.Fatalf("%s: kind %q", kf, k.Kind)
		}
		for _, r := range k.Resources {
			p := filepath.Join(dir, r)
			st, err := os.Stat(p)
			require.NoError(t, err, "%s: resource %s", kf, r)
			if st.IsDir() {
				require.FileExists(t, filepath.Join(p, "kustomization.yaml"), "%s: resource dir %s", kf, r)
			} else {
				role[p] = "resource"
			}
		}
		for _, c := range k.Components {
			var ck kustomization
			readYAML(t, filepath.Join(dir, c, "kustomization.yaml"), &ck, true)
			require.Equal(t, "Component", ck.Kind, "%s: component %s", kf, c)
		}
		for _, p := range k.Patches {
			require.NotEmpty(t, p.Path, "%s: inline patches are not used here", kf)
			pp := filepath.Join(dir, p.Path)
			require.FileExists(t, pp, "%s: patch", kf)
			role[pp] = "patch"
			if p.Target != nil {
				role[pp] = "json6902"
			}
		}
		for _, c := range k.Configurations {
			pp := filepath.Join(dir, c)
			require.FileExists(t, pp, "%s: configuration", kf)
			role[pp] = "configuration"
		}
		for _, g := range k.ConfigMapGenerator {
			for _, f := range g.Files {
				_, src, ok := strings.Cut(f, "=")
				if !ok {
					src = f
				}
				pp := filepath.Join(dir, src)
				require.FileExists(t, pp, "%s: configMapGenerator file", kf)
				role[pp] = "generator"
			}
		}
		role[kf] = "kustomization"
	}
	role[filepath.Join("k8s", "secret.example.yaml")] = "resource"
	role[filepath.Join("argocd", "application.yaml")] = "resource"

	var all manifestSet
	for _, f := range k8sFiles(t) {
		r, ok := role[f]
		require.True(t, ok, "%s is referenced by no kustomization", f)
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		switch r {
		case "kustomization":
			continue
		case "configuration":
			var tc transformerConfig
			require.NoError(t, strictUnmarshal(raw, &tc), f)
			require.NotEmpty(t, tc.Images, f)
		case "json6902":
			var ops []jsonPatchOp
			require.NoError(t, strictUnmarshal(raw, &ops), f)
			for _, op := range ops {
				require.Contains(t, []string{"add", "remove", "replace", "copy", "move", "test"}, op.Op, f)
				require.True(t, strings.HasPrefix(op.Path, "/"), f)
			}
		case "generator":
			envoy, err := os.ReadFile(envoyFile)
			require.NoError(t, err)
			require.True(t, bytes.Equal(envoy, raw), "%s must be a copy of deploy/%s (cp deploy/%s %s)", f, envoyFile, envoyFile, "deploy/"+f)
		case "resource", "patch":
			docs := splitDocs(raw)
			require.NotEmpty(t, docs, f)
			for i, d := range docs {
				obj := decodeObject(t, fmt.Sprintf("%s#%d", f, i), d)
				if r == "resource" {
					all.add(obj)
				}
			}
		}
	}
	checkPlatform(t, &all)
	checkFunctions(t, &all)
}

func restrictedContainer(t *testing.T, where string, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	require.NotNil(t, sc, where)
	require.NotNil(t, sc.AllowPrivilegeEscalation, where)
	require.False(t, *sc.AllowPrivilegeEscalation, where)
	require.NotNil(t, sc.ReadOnlyRootFilesystem, where)
	require.True(t, *sc.ReadOnlyRootFilesystem, where)
	require.NotNil(t, sc.RunAsNonRoot, where)
	require.True(t, *sc.RunAsNonRoot, where)
	require.NotNil(t, sc.Capabilities, where)
	require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, where)
	require.Empty(t, sc.Capabilities.Add, where)
	require.NotNil(t, sc.SeccompProfile, where)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type, where)
	require.NotNil(t, c.Resources.Requests.Cpu(), where)
	require.False(t, c.Resources.Requests.Cpu().IsZero(), "%s: cpu request", where)
	require.False(t, c.Resources.Requests.Memory().IsZero(), "%s: memory request", where)
	require.False(t, c.Resources.Limits.Memory().IsZero(), "%s: memory limit", where)
}

func containerPort(c corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// checkPlatform checks the api/worker/envoy Deployments and what points at them.
func checkPlatform(t *testing.T, m *manifestSet) {
	t.Helper()
	require.Len(t, m.deployments, 3)
	for _, d := range m.deployments {
		where := "Deployment " + d.Name
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		require.NoError(t, err, where)
		require.True(t, sel.Matches(labels.Set(d.Spec.Template.Labels)), "%s: selector must match the pod labels", where)
		ps := d.Spec.Template.Spec
		require.NotNil(t, ps.AutomountServiceAccountToken, where)
		require.False(t, *ps.AutomountServiceAccountToken, where)
		require.NotNil(t, ps.SecurityContext, where)
		require.NotNil(t, ps.SecurityContext.RunAsNonRoot, where)
		require.True(t, *ps.SecurityContext.RunAsNonRoot, where)
		require.NotNil(t, ps.SecurityContext.SeccompProfile, where)
		require.False(t, ps.HostNetwork || ps.HostPID || ps.HostIPC, where)
		require.Len(t, ps.Containers, 1, where)
		c := ps.Containers[0]
		restrictedContainer(t, where, c)
		require.NotNil(t, c.LivenessProbe, where)
		require.NotNil(t, c.ReadinessProbe, where)
		if d.Name == "envoy" {
			continue
		}
		require.Equal(t, "ghcr.io/lambda-microservice/lambda", strings.Split(c.Image, ":")[0], where)
		require.Equal(t, []string{d.Name}, c.Args, "%s: the subcommand", where)
		require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path, where)
		// Readiness checks dependencies (/readyz) on the api and on the worker's metrics server.
		wantReady := map[string]string{"api": "/readyz", "worker": "/readyz"}[d.Name]
		require.Equal(t, wantReady, c.ReadinessProbe.HTTPGet.Path, where)
		_, ok := containerPort(c, c.ReadinessProbe.HTTPGet.Port.StrVal)
		require.True(t, ok, "%s: probe port %s", where, c.ReadinessProbe.HTTPGet.Port.String())
		var cm, secret bool
		for _, ef := range c.EnvFrom {
			cm = cm || (ef.ConfigMapRef != nil && ef.ConfigMapRef.Name == "lambda-config")
			secret = secret || (ef.SecretRef != nil && ef.SecretRef.Name == "lambda-secrets")
		}
		require.True(t, cm && secret, "%s: envFrom the ConfigMap lambda-config and the Secret lambda-secrets", where)
		require.Nil(t, d.Spec.Replicas, "%s: the HPA owns replicas", where)
	}
	// ConfigMap carries only non-secret LAMBDA_ settings.
	for _, cm := range m.configMaps {
		if cm.Name != "lambda-config" {
			continue
		}
		for k := range cm.Data {
			require.True(t, strings.HasPrefix(k, "LAMBDA_"), "ConfigMap %s key %s", cm.Name, k)
			require.NotContains(t, []string{"LAMBDA_DATABASE_URL", "LAMBDA_REDIS_URL", "LAMBDA_ADMIN_TOKEN"}, k, "secrets belong in lambda-secrets")
		}
	}

	// Services select pods of a Deployment and target a named container port.
	for _, s := range m.services {
		var found bool
		for _, d := range m.deployments {
			if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				found = true
				for _, p := range s.Spec.Ports {
					_, ok := containerPort(d.Spec.Template.Spec.Containers[0], p.TargetPort.StrVal)
					require.True(t, ok, "Service %s port %s targets %s", s.Name, p.Name, p.TargetPort.String())
				}
			}
		}
		require.True(t, found, "Service %s selects no Deployment", s.Name)
	}

	// HPAs: autoscaling/v2 on existing Deployments; the api one on CPU and on request rate.
	hpaFor := map[string]*autoscalingv2.HorizontalPodAutoscaler{}
	for _, h := range m.hpas {
		m.deployment(t, h.Spec.ScaleTargetRef.Name)
		hpaFor[h.Spec.ScaleTargetRef.Name] = h
		require.NotNil(t, h.Spec.MinReplicas)
		require.GreaterOrEqual(t, *h.Spec.MinReplicas, int32(2), "HPA %s: at least 2 replicas for the PDB to allow drains", h.Name)
	}
	require.Contains(t, hpaFor, "api")
	require.Contains(t, hpaFor, "worker")
	var cpu, rate bool
	for _, mt := range hpaFor["api"].Spec.Metrics {
		cpu = cpu || (mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource.Name == corev1.ResourceCPU)
		rate = rate || (mt.Type == autoscalingv2.PodsMetricSourceType && mt.Pods.Metric.Name == "lambda_http_requests_per_second")
	}
	require.True(t, cpu && rate, "api HPA scales on CPU and on lambda_http_requests_per_second")

	// PDBs select the pods of api, worker and envoy.
	covered := map[string]bool{}
	for _, p := range m.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		require.NoError(t, err)
		for _, d := range m.deployments {
			if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				covered[d.Name] = true
			}
		}
	}
	require.Equal(t, map[string]bool{"api": true, "worker": true, "envoy": true}, covered)

	// ServiceMonitors select a Service and name one of its ports; job labels match the rules.
	jobs := map[string]bool{}
	for _, sm := range m.sms {
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		require.NoError(t, err)
		var ports []string
		for _, s := range m.services {
			if sel.Matches(labels.Set(s.Labels)) {
				for _, p := range s.Spec.Ports {
					ports = append(ports, p.Name)
				}
			}
		}
		require.NotEmpty(t, ports, "ServiceMonitor %s selects no Service", sm.Name)
		for _, ep := range sm.Spec.Endpoints {
			require.Contains(t, ports, ep.Port, "ServiceMonitor %s", sm.Name)
			for _, rl := range ep.RelabelConfigs {
				if rl.TargetLabel == "job" && rl.Replacement != nil {
					jobs[*rl.Replacement] = true
				}
			}
		}
	}
	require.Equal(t, map[string]bool{"lambda-api": true, "lambda-worker": true}, jobs)

	for _, sa := range m.sas {
		require.NotNil(t, sa.AutomountServiceAccountToken, "ServiceAccount %s", sa.Name)
		require.False(t, *sa.AutomountServiceAccountToken, "ServiceAccount %s", sa.Name)
	}
}

// checkFunctions checks the runtime Functions against the faas-cli stack, the runtime
// registry, and the openfaas-fn hardening (Profile, NetworkPolicies, PodMonitor).
func checkFunctions(t *testing.T, m *manifestSet) {
	t.Helper()
	fns := map[string]*ofFunction{}
	for _, f := range m.functions {
		fns[f.Spec.Name] = f
		where := "Function " + f.Name
		require.Equal(t, f.Name, f.Spec.Name, where)
		title := strings.TrimPrefix(f.Name, "runtime-")
		require.Equal(t, "ghcr.io/lambda-microservice/runtime-"+title, strings.Split(f.Spec.Image, ":")[0], where)
		require.True(t, f.Spec.ReadOnlyRootFilesystem, where)
		require.Equal(t, title, f.Spec.Environment["LAMBDA_RUNTIME"], where)
		require.NotEmpty(t, f.Spec.Labels["com.openfaas.scale.min"], where)
		require.NotEmpty(t, f.Spec.Labels["com.openfaas.scale.max"], where)
		require.NotNil(t, f.Spec.Limits, where)
		require.NotEmpty(t, f.Spec.Limits.Memory, where)
		require.Contains(t, strings.Split(f.Spec.Annotations["com.openfaas.profile"], ","), "lambda-runtime", where)
	}
	require.Contains(t, fns, "runtime-python")
	require.Contains(t, fns, "runtime-node")
	require.Contains(t, fns, "runtime-rust")

	// The Profile they name: non-root, seccomp.
	var hardening *ofProfile
	for _, p := range m.profiles {
		if p.Name == "lambda-runtime" {
			hardening = p
		}
	}
	require.NotNil(t, hardening)
	psc := hardening.Spec.PodSecurityContext
	require.NotNil(t, psc)
	require.True(t, psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	require.NotNil(t, psc.SeccompProfile)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)

	// No service-account token in openfaas-fn.
	var noToken bool
	for _, sa := range m.sas {
		if sa.Name == "default" && sa.AutomountServiceAccountToken != nil && !*sa.AutomountServiceAccountToken {
			noToken = true
		}
	}
	require.True(t, noToken, "the default ServiceAccount of openfaas-fn mounts no token")

	// Default-deny egress covering every runtime pod.
	var denyEgress bool
	for _, np := range m.netpols {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		require.NoError(t, err)
		isEgress := false
		for _, pt := range np.Spec.PolicyTypes {
			isEgress = isEgress || pt == networkingv1.PolicyTypeEgress
		}
		if isEgress && len(np.Spec.Egress) == 0 {
			all := true
			for name := range fns {
				all = all && sel.Matches(labels.Set{"faas_function": name})
			}
			denyEgress = denyEgress || all
		}
	}
	require.True(t, denyEgress, "a NetworkPolicy with no egress rule selects every runtime pod")

	require.Len(t, m.pms, 1)
	var job string
	for _, ep := range m.pms[0].Spec.PodMetricsEndpoints {
		for _, rl := range ep.RelabelConfigs {
			if rl.TargetLabel == "job" && rl.Replacement != nil {
				job = *rl.Replacement
			}
		}
	}
	require.Equal(t, "lambda-runtime", job, "the LambdaRuntimeDown alert watches up{job=\"lambda-runtime\"}")

	// deploy/openfaas/stack.yml describes the same functions.
	st := loadStack(t)
	require.Len(t, st.Functions, len(fns))
	for name, sf := range st.Functions {
		f, ok := fns[name]
		require.True(t, ok, "stack.yml function %s has no Function object", name)
		require.Equal(t, f.Spec.Image, sf.Image, name)
		require.Equal(t, f.Spec.Environment, sf.Environment, name)
		require.Equal(t, f.Spec.Labels, *sf.Labels, name)
		require.Equal(t, f.Spec.Annotations, *sf.Annotations, name)
		require.Equal(t, f.Spec.ReadOnlyRootFilesystem, sf.ReadOnlyRootFilesystem, name)
		require.Equal(t, f.Spec.Limits.Memory, sf.Limits.Memory, name)
		require.Equal(t, f.Spec.Limits.CPU, sf.Limits.CPU, name)
		require.Equal(t, f.Spec.Requests.Memory, sf.Requests.Memory, name)
		require.Equal(t, f.Spec.Requests.CPU, sf.Requests.CPU, name)
	}

	// Every runtime the registry lists is deployed, under the same function name and image.
	var reg struct {
		Runtimes []struct {
			Title    string `json:"title"`
			Function string `json:"function"`
			Image    string `json:"image"`
		} `json:"runtimes"`
	}
	readYAML(t, "../runtimes/runtimes.yaml", &reg, false)
	require.NotEmpty(t, reg.Runtimes)
	for _, r := range reg.Runtimes {
		f, ok := fns[r.Function]
		require.True(t, ok, "runtime %s (function %s) has no Function object", r.Title, r.Function)
		require.Equal(t, strings.Split(r.Image, ":")[0], strings.Split(f.Spec.Image, ":")[0], r.Title)
		require.Equal(t, r.Title, f.Spec.Environment["LAMBDA_RUNTIME"], r.Title)
	}
}

func TestArgoCDApplication(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("argocd/application.yaml")
	require.NoError(t, err)
	app := decodeObject(t, "argocd/application.yaml", raw).(*argoApplication)
	require.Equal(t, "deploy/k8s/overlays/production", app.Spec.Source.Path)
	require.DirExists(t, strings.TrimPrefix(app.Spec.Source.Path, "deploy/"))
	require.NotEmpty(t, app.Spec.Source.RepoURL)
	require.NotEmpty(t, app.Spec.Destination.Server)
	require.NotNil(t, app.Spec.SyncPolicy.Automated)
}

// kustomizeBuild renders a kustomization with the kustomize library and decodes every
// rendered object strictly.
func kustomizeBuild(t *testing.T, dir string) *manifestSet {
	t.Helper()
	opts := krusty.MakeDefaultOptions()
	res, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	require.NoError(t, err, "kustomize build %s", dir)
	out, err := res.AsYaml()
	require.NoError(t, err)
	var m manifestSet
	for i, d := range splitDocs(out) {
		m.add(decodeObject(t, fmt.Sprintf("kustomize build %s #%d", dir, i), d))
	}
	return &m
}

func TestKustomizeBuildProduction(t *testing.T) {
	t.Parallel()
	m := kustomizeBuild(t, "k8s/overlays/production")
	checkPlatform(t, m)
	checkFunctions(t, m)

	ns := map[string]bool{}
	for _, n := range m.namespaces {
		ns[n.Name] = true
	}
	require.Equal(t, map[string]bool{"lambda": true, "openfaas": true, "openfaas-fn": true, "temporal": true}, ns)
	for _, d := range m.deployments {
		require.Equal(t, "lambda", d.Namespace, d.Name)
		require.Equal(t, "production", d.Spec.Template.Labels["app.kubernetes.io/instance"], d.Name)
	}
	for _, f := range m.functions {
		require.Equal(t, "openfaas-fn", f.Namespace, f.Name)
	}
	api := m.deployment(t, "api")
	require.Equal(t, "1", api.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().String(), "production patch applied")
	var envoyCM bool
	for _, cm := range m.configMaps {
		if strings.HasPrefix(cm.Name, "envoy-config-") {
			envoyCM = true
			require.Contains(t, cm.Data, "envoy.yaml")
		}
	}
	require.True(t, envoyCM, "generated envoy ConfigMap (hash-suffixed)")
	envoyVolume := m.deployment(t, "envoy").Spec.Template.Spec.Volumes[0].ConfigMap.Name
	require.True(t, strings.HasPrefix(envoyVolume, "envoy-config-"), "the Deployment follows the generated name: %s", envoyVolume)
}

func TestKustomizeBuildGVisorComponent(t *testing.T) {
	t.Parallel()
	// An overlay of the production overlay with the gVisor component enabled.
	dir := t.TempDir()
	abs, err := filepath.Abs("k8s")
	require.NoError(t, err)
	rel := func(p string) string {
		r, err := filepath.Rel(dir, filepath.Join(abs, p))
		require.NoError(t, err)
		return r
	}
	k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\ncomponents:\n  - %s\n",
		rel("overlays/production"), rel("components/gvisor"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644))
	m := kustomizeBuild(t, dir)
	require.Len(t, m.rtClasses, 1)
	require.Equal(t, "runsc", m.rtClasses[0].Handler)
	for _, f := range m.functions {
		require.Equal(t, []string{"lambda-runtime", "gvisor"}, strings.Split(f.Spec.Annotations["com.openfaas.profile"], ","), f.Name)
	}
	var gv *ofProfile
	for _, p := range m.profiles {
		if p.Name == "gvisor" {
			gv = p
		}
	}
	require.NotNil(t, gv)
	require.Equal(t, "openfaas-fn", gv.Namespace)
	require.Equal(t, m.rtClasses[0].Name, *gv.Spec.RuntimeClassName)
}
