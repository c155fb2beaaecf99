package deploy

import (
	"bytes"
	"os"
	"regexp"
	"testing"

	"github.com/openfaas/go-sdk/stack"
	"github.com/stretchr/testify/require"
	yamlv3 "gopkg.in/yaml.v3"
)

// loadStack parses deploy/openfaas/stack.yml with the OpenFaaS stack parser (provider and
// schema version checks) and again strictly into its types (unknown keys are errors).
func loadStack(t *testing.T) *stack.Services {
	t.Helper()
	raw, err := os.ReadFile("openfaas/stack.yml")
	require.NoError(t, err)
	s, err := stack.ParseYAMLData(raw, "", "", false)
	require.NoError(t, err)
	var strict stack.Services
	dec := yamlv3.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&strict), "stack.yml has a key faas-cli does not know")
	require.Equal(t, "1.0", s.Version)
	for name, f := range s.Functions {
		require.True(t, f.SkipBuild, "%s: images come from the release workflow", name)
		require.Equal(t, "openfaas-fn", f.Namespace, name)
		require.NotNil(t, f.Labels, name)
		require.NotNil(t, f.Annotations, name)
		require.NotNil(t, f.Limits, name)
		require.NotNil(t, f.Requests, name)
	}
	return s
}

func TestOpenFaaSStack(t *testing.T) {
	t.Parallel()
	s := loadStack(t)
	require.Equal(t, "openfaas", s.Provider.Name)
	require.NotEmpty(t, s.Provider.GatewayURL)
	for _, name := range []string{"runtime-python", "runtime-node", "runtime-rust"} {
		require.Contains(t, s.Functions, name)
		require.Equal(t, name[len("runtime-"):], s.Functions[name].Environment["LAMBDA_RUNTIME"])
	}
}

type resourceValues struct {
	Requests map[string]string `yaml:"requests,omitempty"`
	Limits   map[string]string `yaml:"limits,omitempty"`
}

type sqlStore struct {
	PluginName      string `yaml:"pluginName"`
	CreateDatabase  bool   `yaml:"createDatabase"`
	ManageSchema    bool   `yaml:"manageSchema"`
	DatabaseName    string `yaml:"databaseName"`
	ConnectAddr     string `yaml:"connectAddr"`
	ConnectProtocol string `yaml:"connectProtocol"`
	User            string `yaml:"user"`
	ExistingSecret  string `yaml:"existingSecret"`
	SecretKey       string `yaml:"secretKey"`
	MaxConns        int    `yaml:"maxConns"`
	MaxIdleConns    int    `yaml:"maxIdleConns"`
	MaxConnLifetime string `yaml:"maxConnLifetime"`
}

// temporalValues mirrors the keys of the official Temporal chart's values.yaml (chart 1.x)
// that deploy/helm/temporal-values.yaml sets.
type temporalValues struct {
	Server struct {
		ReplicaCount int `yaml:"replicaCount"`
		Config       struct {
			LogLevel    string `yaml:"logLevel"`
			Persistence struct {
				DefaultStore     string `yaml:"defaultStore"`
				VisibilityStore  string `yaml:"visibilityStore"`
				NumHistoryShards int    `yaml:"numHistoryShards"`
				Datastores       map[string]struct {
					SQL sqlStore `yaml:"sql"`
				} `yaml:"datastores"`
			} `yaml:"persistence"`
			Metrics struct {
				Prometheus struct {
					TimerType     string `yaml:"timerType"`
					ListenAddress string `yaml:"listenAddress"`
				} `yaml:"prometheus"`
			} `yaml:"metrics"`
			Namespaces struct {
				Create    bool `yaml:"create"`
				Namespace []struct {
					Name      string `yaml:"name"`
					Retention string `yaml:"retention"`
				} `yaml:"namespace"`
			} `yaml:"namespaces"`
		} `yaml:"config"`
		Metrics struct {
			ServiceMonitor struct {
				Enabled          bool              `yaml:"enabled"`
				Interval         string            `yaml:"interval"`
				AdditionalLabels map[string]string `yaml:"additionalLabels"`
			} `yaml:"serviceMonitor"`
		} `yaml:"metrics"`
		SecurityContext map[string]int `yaml:"securityContext"`
		Frontend        struct {
			Resources resourceValues `yaml:"resources"`
		} `yaml:"frontend"`
		History struct {
			Resources resourceValues `yaml:"resources"`
		} `yaml:"history"`
		Matching struct {
			Resources resourceValues `yaml:"resources"`
		} `yaml:"matching"`
		Worker struct {
			Resources resourceValues `yaml:"resources"`
		} `yaml:"worker"`
	} `yaml:"server"`
	Admintools struct {
		Enabled bool `yaml:"enabled"`
	} `yaml:"admintools"`
	Web struct {
		Enabled      bool `yaml:"enabled"`
		ReplicaCount int  `yaml:"replicaCount"`
		Service      struct {
			Type string `yaml:"type"`
			Port int    `yaml:"port"`
		} `yaml:"service"`
		Resources resourceValues `yaml:"resources"`
	} `yaml:"web"`
	Schema struct {
		UseHelmHooks bool `yaml:"useHelmHooks"`
	} `yaml:"schema"`
}

type probeValues struct {
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	SuccessThreshold    int `yaml:"successThreshold,omitempty"`
	FailureThreshold    int `yaml:"failureThreshold"`
}

// openfaasValues mirrors the keys of the official OpenFaaS chart's values.yaml that
// deploy/helm/openfaas-values.yaml sets.
type openfaasValues struct {
	FunctionNamespace       string `yaml:"functionNamespace"`
	CreateCRDs              bool   `yaml:"createCRDs"`
	BasicAuth               bool   `yaml:"basic_auth"`
	GenerateBasicAuth       bool   `yaml:"generateBasicAuth"`
	RBAC                    bool   `yaml:"rbac"`
	ClusterRole             bool   `yaml:"clusterRole"`
	Async                   bool   `yaml:"async"`
	ExposeServices          bool   `yaml:"exposeServices"`
	ServiceType             string `yaml:"serviceType"`
	HTTPProbe               bool   `yaml:"httpProbe"`
	OpenfaasImagePullPolicy string `yaml:"openfaasImagePullPolicy"`
	Functions               struct {
		ImagePullPolicy string      `yaml:"imagePullPolicy"`
		HTTPProbe       bool        `yaml:"httpProbe"`
		SetNonRootUser  bool        `yaml:"setNonRootUser"`
		ReadinessProbe  probeValues `yaml:"readinessProbe"`
		LivenessProbe   probeValues `yaml:"livenessProbe"`
	} `yaml:"functions"`
	Gateway struct {
		Replicas            int            `yaml:"replicas"`
		UpstreamTimeout     string         `yaml:"upstreamTimeout"`
		ReadTimeout         string         `yaml:"readTimeout"`
		WriteTimeout        string         `yaml:"writeTimeout"`
		DirectFunctions     bool           `yaml:"directFunctions"`
		ScaleFromZero       bool           `yaml:"scaleFromZero"`
		MaxIdleConns        int            `yaml:"maxIdleConns"`
		MaxIdleConnsPerHost int            `yaml:"maxIdleConnsPerHost"`
		Resources           resourceValues `yaml:"resources"`
	} `yaml:"gateway"`
	OpenfaasPro bool `yaml:"openfaasPro"`
	Operator    struct {
		Create bool `yaml:"create"`
	} `yaml:"operator"`
	Prometheus struct {
		Create bool `yaml:"create"`
	} `yaml:"prometheus"`
	Alertmanager struct {
		Create bool `yaml:"create"`
	} `yaml:"alertmanager"`
}

// prometheusAdapterValues mirrors the prometheus-adapter chart keys used.
type prometheusAdapterValues struct {
	Prometheus struct {
		URL  string `yaml:"url"`
		Port int    `yaml:"port"`
	} `yaml:"prometheus"`
	Rules struct {
		Default bool `yaml:"default"`
		Custom  []struct {
			SeriesQuery string `yaml:"seriesQuery"`
			Resources   struct {
				Overrides map[string]struct {
					Resource string `yaml:"resource"`
				} `yaml:"overrides"`
			} `yaml:"resources"`
			Name struct {
				Matches string `yaml:"matches"`
				As      string `yaml:"as"`
			} `yaml:"name"`
			MetricsQuery string `yaml:"metricsQuery"`
		} `yaml:"custom"`
	} `yaml:"rules"`
}

func strictYAMLv3(t *testing.T, file string, v any) {
	t.Helper()
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	dec := yamlv3.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(v), file)
}

func TestHelmValues(t *testing.T) {
	t.Parallel()
	var tv temporalValues
	strictYAMLv3(t, "helm/temporal-values.yaml", &tv)
	p := tv.Server.Config.Persistence
	require.Contains(t, p.Datastores, p.DefaultStore)
	require.Contains(t, p.Datastores, p.VisibilityStore)
	for name, ds := range p.Datastores {
		require.Contains(t, []string{"postgres12", "postgres12_pgx"}, ds.SQL.PluginName, name)
		require.NotEmpty(t, ds.SQL.ExistingSecret, "%s: the password comes from a Secret", name)
	}
	require.Equal(t, "histogram", tv.Server.Config.Metrics.Prometheus.TimerType)
	var nsNames []string
	for _, n := range tv.Server.Config.Namespaces.Namespace {
		nsNames = append(nsNames, n.Name)
	}
	// The Temporal namespaces the k8s ConfigMaps name exist.
	require.Contains(t, nsNames, "default")
	require.Contains(t, nsNames, "lambda-production")

	var ov openfaasValues
	strictYAMLv3(t, "helm/openfaas-values.yaml", &ov)
	require.Equal(t, "openfaas-fn", ov.FunctionNamespace)
	require.True(t, ov.Functions.SetNonRootUser)
	require.True(t, ov.BasicAuth)

	var av prometheusAdapterValues
	strictYAMLv3(t, "helm/prometheus-adapter-values.yaml", &av)
	require.Len(t, av.Rules.Custom, 1)
	r := av.Rules.Custom[0]
	series := regexp.MustCompile(`^(\w+)\{`).FindStringSubmatch(r.SeriesQuery)
	require.Len(t, series, 2)
	require.True(t, definedMetricNames(t)[series[1]], "%s is a platform metric", series[1])
	got := regexp.MustCompile(r.Name.Matches).ReplaceAllString(series[1], r.Name.As)
	require.Equal(t, "lambda_http_requests_per_second", got, "the name the api HPA scales on")
}
