package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/deps"
)

func registerDeps(name, language, source string, dependencies any) string {
	b, _ := json.Marshal(map[string]any{"name": name, "language": language, "source": source, "dependencies": dependencies})
	return string(b)
}

func TestFunctionDependencies(t *testing.T) {
	f := newFixture(t)
	src := addSource

	// Registered with its dependencies: resolved into a lock that is part of the version.
	r := f.do(t, "POST", "/v1/functions", registerDeps("withdeps", "python", src, map[string]string{"greet": "1.0", "extra": "2"}))
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	require.Equal(t, map[string]any{"greet": "1.0", "extra": "2"}, r.body["dependencies"])
	lock, _ := r.body["lock"].(map[string]any)
	require.NotNil(t, lock, r.raw)
	require.EqualValues(t, 2, lock["packages"])
	lockHash, _ := lock["hash"].(string)
	require.Len(t, lockHash, 64)
	require.NotContains(t, r.raw, "files", "the lock's files are not shown")
	sha1, _ := r.body["sha256"].(string)

	// The build was asked for with the lock, by the hash covering source and lock.
	var built []string
	f.runner.locks.Range(func(k, v any) bool {
		if v == lockHash {
			built = append(built, k.(string))
		}
		return true
	})
	require.Len(t, built, 1)
	require.NotEqual(t, sha256hex(src), built[0], "the same source with a lock is another build")
	require.Equal(t, deps.BuildHash(src, &deps.Lock{Title: "python", Hash: lockHash}), built[0])

	// GET shows them, on the function and the version.
	g := f.do(t, "GET", "/v1/functions/withdeps", "")
	require.Equal(t, r.body["dependencies"], g.body["dependencies"])
	require.Equal(t, r.body["lock"], g.body["lock"])
	g = f.do(t, "GET", "/v1/functions/withdeps/versions/1", "")
	require.Equal(t, r.body["lock"], g.body["lock"])

	// Invocations carry the lock.
	inv := f.do(t, "POST", "/v1/functions/withdeps/invoke", `{"a":1,"b":2}`, "Language-Title", "python")
	require.Equal(t, http.StatusOK, inv.status, inv.raw)

	// An update without "dependencies" keeps them (and the lock): same source, no new version.
	u := f.do(t, "PUT", "/v1/functions/withdeps", `{"source":`+quoteJSON(src)+`}`)
	require.Equal(t, http.StatusOK, u.status, u.raw)
	require.EqualValues(t, 1, u.body["version"])
	require.Equal(t, r.body["lock"], u.body["lock"])

	// The same source with other dependencies is a new version with another sha256.
	u = f.do(t, "PUT", "/v1/functions/withdeps", registerDeps("withdeps", "", src, map[string]string{"greet": "1.1"}))
	require.Equal(t, http.StatusCreated, u.status, u.raw)
	require.EqualValues(t, 2, u.body["version"])
	require.NotEqual(t, sha1, u.body["sha256"])
	require.NotEqual(t, r.body["lock"], u.body["lock"])

	// An empty set drops them.
	u = f.do(t, "PUT", "/v1/functions/withdeps", registerDeps("withdeps", "", src, map[string]string{}))
	require.Equal(t, http.StatusCreated, u.status, u.raw)
	require.Nil(t, u.body["dependencies"])
	require.Nil(t, u.body["lock"])
	_, rebuilt := f.runner.builds.Load(sha256hex(src))
	require.True(t, rebuilt, "built by the source's own hash again")
}

func TestFunctionDependenciesRefused(t *testing.T) {
	f := newFixture(t)
	calls := f.runner.calls.Load()
	for _, c := range []struct {
		name     string
		body     string
		status   int
		contains string
	}{
		{"unknown package", registerDeps("bad1", "python", addSource, map[string]string{"missing": "1.0"}), 422,
			"No matching distribution found for missing"},
		{"invalid name", registerDeps("bad2", "python", addSource, map[string]string{"../etc": "1"}), 400, "not a valid python package name"},
		{"url as version", registerDeps("bad3", "python", addSource, map[string]string{"x": "https://evil.example/x.whl"}), 400, "not a valid version spec"},
		{"too many", registerDeps("bad4", "python", addSource, map[string]string{"a": "1", "b": "1", "c": "1", "d": "1"}), 422, "at most 3"},
		{"language without installer", registerDeps("bad5", "node", "exports.handler = () => 1;", map[string]string{"x": "1"}), 400,
			"node functions take no \"dependencies\""},
		{"not an object", registerDeps("bad6", "python", addSource, []string{"x"}), 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.do(t, "POST", "/v1/functions", c.body)
			require.Equal(t, c.status, r.status, r.raw)
			require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
			require.Contains(t, r.body["detail"], c.contains)
		})
	}
	require.Equal(t, 0, f.count(t, "functions"), "nothing stored")
	require.Equal(t, calls, f.runner.calls.Load(), "nothing built")
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func sha256hex(s string) string { return deps.BuildHash(s, nil) }
