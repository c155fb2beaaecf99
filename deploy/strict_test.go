package deploy

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// strictUnmarshal decodes YAML (or JSON) into v the way the Kubernetes API server reads a
// manifest: duplicate keys, unknown fields and keys that differ from a field only in case
// are all errors (encoding/json alone would accept readOnlyRootFileSystem for
// readOnlyRootFilesystem).
func strictUnmarshal(raw []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(js, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	if len(strictErrs) > 0 {
		return fmt.Errorf("strict decoding: %w", errors.Join(strictErrs...))
	}
	return nil
}

func TestStrictUnmarshalIsCaseSensitive(t *testing.T) {
	t.Parallel()
	type target struct {
		ReadOnlyRootFilesystem bool `json:"readOnlyRootFilesystem"`
	}
	var v target
	require.NoError(t, strictUnmarshal([]byte("readOnlyRootFilesystem: true\n"), &v))
	require.True(t, v.ReadOnlyRootFilesystem)
	require.Error(t, strictUnmarshal([]byte("readOnlyRootFileSystem: true\n"), &v), "case-only typo")
	require.Error(t, strictUnmarshal([]byte("readOnlyRootFilesystem: true\nreadOnlyRootFilesystem: false\n"), &v), "duplicate key")
	require.Error(t, strictUnmarshal([]byte("readOnly: true\n"), &v), "unknown field")
}
