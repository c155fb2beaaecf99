package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/logging"
)

// esProperty is one field of an Elasticsearch mapping.
type esProperty struct {
	Type        string                `json:"type,omitempty"`
	Format      string                `json:"format,omitempty"`
	IgnoreAbove int                   `json:"ignore_above,omitempty"`
	Index       *bool                 `json:"index,omitempty"`
	Properties  map[string]esProperty `json:"properties,omitempty"`
}

// esIndexTemplate mirrors the body of PUT _index_template/<name> (composable templates).
type esIndexTemplate struct {
	IndexPatterns []string       `json:"index_patterns"`
	Priority      int            `json:"priority"`
	Version       int            `json:"version,omitempty"`
	ComposedOf    []string       `json:"composed_of,omitempty"`
	Meta          map[string]any `json:"_meta,omitempty"`
	DataStream    map[string]any `json:"data_stream,omitempty"`
	Template      struct {
		Settings map[string]any `json:"settings"`
		Aliases  map[string]any `json:"aliases,omitempty"`
		Mappings struct {
			Dynamic          any                         `json:"dynamic,omitempty"`
			DateDetection    *bool                       `json:"date_detection,omitempty"`
			DynamicTemplates []map[string]map[string]any `json:"dynamic_templates,omitempty"`
			Properties       map[string]esProperty       `json:"properties"`
		} `json:"mappings"`
	} `json:"template"`
}

var esTypes = map[string]bool{
	"keyword": true, "text": true, "match_only_text": true, "wildcard": true, "date": true,
	"date_nanos": true, "long": true, "integer": true, "short": true, "double": true, "float": true,
	"scaled_float": true, "boolean": true, "ip": true, "object": true, "flattened": true,
	"constant_keyword": true, "nested": true,
}

func loadIndexTemplate(t *testing.T) esIndexTemplate {
	t.Helper()
	raw, err := os.ReadFile("elastic/index-template.json")
	require.NoError(t, err)
	var tpl esIndexTemplate
	require.NoError(t, strictUnmarshal(raw, &tpl), "index-template.json")
	return tpl
}

// mapped returns the mapping of a dotted field name, walking object properties.
func mapped(props map[string]esProperty, field string) (esProperty, bool) {
	parts := strings.Split(field, ".")
	var p esProperty
	for i, part := range parts {
		var ok bool
		if p, ok = props[part]; !ok {
			return esProperty{}, false
		}
		if i < len(parts)-1 {
			props = p.Properties
		}
	}
	return p, p.Type != ""
}

func checkProperties(t *testing.T, at string, props map[string]esProperty) {
	t.Helper()
	for name, p := range props {
		where := strings.TrimPrefix(at+"."+name, ".")
		if p.Properties != nil {
			require.Empty(t, p.Type, "%s: an object has properties, no type", where)
			checkProperties(t, where, p.Properties)
			continue
		}
		require.True(t, esTypes[p.Type], "%s: type %q", where, p.Type)
	}
}

func TestElasticIndexTemplate(t *testing.T) {
	t.Parallel()
	tpl := loadIndexTemplate(t)
	require.Equal(t, []string{"lambda-*"}, tpl.IndexPatterns)
	props := tpl.Template.Mappings.Properties
	checkProperties(t, "", props)
	for _, f := range []string{"@timestamp", "log.level", "message", "service.name", "lambda.execution_id", "lambda.function", "trace.id"} {
		_, ok := mapped(props, f)
		require.True(t, ok, "the template maps %s", f)
	}
	ts, _ := mapped(props, "@timestamp")
	require.Equal(t, "date", ts.Type)
}

// TestElasticTemplateCoversPlatformLogs writes real log lines with logging.New (service
// "api", every field the platform names, caller, stack trace) and checks that each key maps
// to a field of the template with a type that fits its value.
func TestElasticTemplateCoversPlatformLogs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log, err := logging.New(logging.Config{Level: "debug", Format: "json"}, "api", &buf)
	require.NoError(t, err)
	log = log.Named("http").WithOptions(zap.AddCaller(), zap.AddStacktrace(zap.ErrorLevel))
	log.Info("request served",
		zap.String(logging.FieldRequestID, "req-1"),
		zap.String(logging.FieldTraceID, "4bf92f3577b34da6a3ce929d0e0e4736"),
	)
	log.Error("invoke failed",
		zap.String(logging.FieldExecutionID, "01JEXAMPLE"),
		zap.String(logging.FieldFunction, "add"),
		zap.String(logging.FieldRuntime, "python"),
		zap.String(logging.FieldRequestID, "req-2"),
		zap.String(logging.FieldTraceID, "4bf92f3577b34da6a3ce929d0e0e4736"),
		logging.Err(errors.New("runtime-python: connection refused")),
	)
	require.NoError(t, log.Sync())

	props := loadIndexTemplate(t).Template.Mappings.Properties
	seen := map[string]bool{}
	sc := bufio.NewScanner(&buf)
	lines := 0
	for sc.Scan() {
		lines++
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec), sc.Text())
		for k, v := range rec {
			seen[k] = true
			p, ok := mapped(props, k)
			require.True(t, ok, "log key %q (from logging.New) has no field in index-template.json", k)
			switch p.Type {
			case "date":
				s, _ := v.(string)
				_, err := time.Parse("2006-01-02T15:04:05.000Z0700", s)
				require.NoError(t, err, "%s=%v: zap's ISO8601 time, which the mapping's format accepts", k, v)
				require.Contains(t, p.Format, "yyyy-MM-dd'T'HH:mm:ss.SSSZ", "%s: format for +hhmm offsets", k)
			case "long", "integer", "double", "float":
				_, ok := v.(float64)
				require.True(t, ok, "%s=%v is not a number", k, v)
			default:
				_, ok := v.(string)
				require.True(t, ok, "%s=%v: %s field holds a string", k, v, p.Type)
			}
		}
	}
	require.Equal(t, 2, lines)
	for _, k := range []string{"@timestamp", "log.level", "message", "log.logger", "service.name", "ecs.version",
		"error.message", "error.stack_trace", "log.origin.function",
		logging.FieldExecutionID, logging.FieldFunction, logging.FieldRuntime, logging.FieldRequestID, logging.FieldTraceID} {
		require.True(t, seen[k], "the test log lines should carry %s", k)
	}
}

// The keys of Envoy's JSON access log are mapped too.
func TestElasticTemplateCoversEnvoyAccessLog(t *testing.T) {
	t.Parallel()
	hcm, _ := edge(t, loadEnvoy(t))
	props := loadIndexTemplate(t).Template.Mappings.Properties
	var keys []string
	for _, al := range hcm.GetAccessLog() {
		cfg := unpack(t, al.GetTypedConfig(), &streamv3.StdoutAccessLog{})
		for k := range cfg.GetLogFormat().GetJsonFormat().GetFields() {
			keys = append(keys, k)
		}
	}
	require.NotEmpty(t, keys)
	sort.Strings(keys)
	for _, k := range keys {
		_, ok := mapped(props, k)
		require.True(t, ok, "envoy access log key %q has no field in index-template.json", k)
	}
}

// filebeatConfig mirrors the parts of deploy/elastic/filebeat.yml the stack relies on.
type filebeatConfig struct {
	Inputs []struct {
		Type    string           `json:"type"`
		ID      string           `json:"id"`
		Paths   []string         `json:"paths"`
		Parsers []map[string]any `json:"parsers"`
	} `json:"filebeat.inputs"`
	Processors []map[string]any `json:"processors"`
	Output     struct {
		Hosts []string `json:"hosts"`
		Index string   `json:"index"`
	} `json:"output.elasticsearch"`
	TemplateEnabled *bool `json:"setup.template.enabled"`
	ILMEnabled      *bool `json:"setup.ilm.enabled"`
}

func TestFilebeatConfig(t *testing.T) {
	t.Parallel()
	var fb filebeatConfig
	readYAML(t, "elastic/filebeat.yml", &fb, false)
	require.Len(t, fb.Inputs, 1)
	in := fb.Inputs[0]
	require.Equal(t, "filestream", in.Type)
	require.NotEmpty(t, in.ID, "filestream inputs need a unique id")
	require.NotEmpty(t, in.Paths)
	var parsers []string
	for _, p := range in.Parsers {
		for k := range p {
			parsers = append(parsers, k)
		}
	}
	require.Equal(t, []string{"container", "ndjson"}, parsers, "docker log lines, then the JSON the platform writes")
	ndjson := in.Parsers[1]["ndjson"].(map[string]any)
	require.Equal(t, true, ndjson["expand_keys"], "dotted ECS keys become objects, as the template maps them")

	require.True(t, strings.HasPrefix(fb.Output.Index, "lambda-"), "indices match the template's lambda-* pattern")
	require.NotEmpty(t, fb.Output.Hosts)
	require.NotNil(t, fb.TemplateEnabled)
	require.False(t, *fb.TemplateEnabled, "our template, not Filebeat's")
	require.NotNil(t, fb.ILMEnabled)
	require.False(t, *fb.ILMEnabled, "a custom index needs ILM off")
	var procs []string
	for _, p := range fb.Processors {
		for k := range p {
			procs = append(procs, k)
		}
	}
	require.Contains(t, procs, "add_docker_metadata")
}
