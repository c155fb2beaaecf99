package pipeline

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// problemsOf returns the problems of a *ValidationError (failing the test for any other
// error).
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	var ve *ValidationError
	require.True(t, errors.As(err, &ve), "want *ValidationError, got %v", err)
	return ve.Problems
}

// requireProblem asserts one problem names step and field and contains msg.
func requireProblem(t *testing.T, err error, step, field, msg string) {
	t.Helper()
	require.Error(t, err)
	for _, p := range problemsOf(t, err) {
		if p.Step == step && p.Field == field && strings.Contains(p.Message, msg) {
			return
		}
	}
	require.Failf(t, "problem not found", "want step=%q field=%q msg~%q in %v", step, field, msg, err)
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	src := `{
	  "name": "orders", "description": "d", "timeout_ms": 60000,
	  "output": {"total": "${steps.sum.output}"},
	  "steps": [
	    {"id": "load", "function": "loader", "version": 2, "input": {"q": "${input.q}"}, "timeout_ms": 500,
	     "retry": {"max_attempts": 3, "initial_interval_ms": 0, "backoff": 1.5}, "catch": "sum", "if": "true"},
	    {"id": "each", "map": {"items": "steps.load.output", "max_concurrency": 4,
	       "step": {"function": "price", "input": {"i": "${item}", "n": "${index}"}}}},
	    {"id": "fan", "parallel": {"b": [{"id": "b1", "sleep_ms": 10}], "a": [{"id": "a1", "function": "x"}]}},
	    {"id": "approve", "wait_for": {"signal": "approve-1", "timeout_ms": 1000, "on_timeout": {"ok": false}}},
	    {"id": "sum", "function": "summer"}
	  ]}`
	d, err := Parse([]byte(src))
	require.NoError(t, err)
	require.Equal(t, "orders", d.Name)
	require.Len(t, d.Steps, 5)
	s := d.Steps[0]
	require.Equal(t, KindFunction, s.Kind())
	require.Equal(t, 2, s.Version)
	require.Equal(t, 3, *s.Retry.MaxAttempts)
	require.Equal(t, 0, *s.Retry.InitialIntervalMS)
	require.Equal(t, 1.5, *s.Retry.Backoff)
	require.Equal(t, KindMap, d.Steps[1].Kind())
	require.Equal(t, "price", d.Steps[1].Map.Step.Function)
	require.Equal(t, KindParallel, d.Steps[2].Kind())
	require.Equal(t, []string{"a", "b"}, d.Steps[2].Branches())
	require.Equal(t, KindWait, d.Steps[3].Kind())
	require.JSONEq(t, `{"ok":false}`, string(d.Steps[3].WaitFor.OnTimeout))
	require.True(t, d.HasWaits())
}

func TestParseProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src           string
		step, field, substr string
	}{
		{"not json", `{"steps": [`, "", "", "not valid JSON"},
		{"not an object", `[1]`, "", "", "must be a JSON object"},
		{"steps missing", `{"name":"x"}`, "", "steps", "steps is required"},
		{"steps not array", `{"steps": {}}`, "", "steps", "steps must be an array"},
		{"branch not array", `{"steps": [{"id":"p","parallel":{"x":{}}}]}`, "p", "parallel.x", "parallel.x must be an array"},
		{"unknown top field", `{"steps": [], "stepz": 1}`, "", "stepz", `unknown field "stepz"`},
		{"unknown step field", `{"steps": [{"id":"a","function":"f","inptu":{}}]}`, "a", "inptu", `unknown field "inptu"`},
		{"unknown step field no id", `{"steps": [{"function":"f","x":1}]}`, "steps[0]", "x", `unknown field "x"`},
		{"no kind", `{"steps": [{"id":"a"}]}`, "a", "", "exactly one of function, map, parallel, sleep_ms or wait_for"},
		{"two kinds", `{"steps": [{"id":"a","function":"f","sleep_ms":5}]}`, "a", "sleep_ms", `both "function" and "sleep_ms"`},
		{"retry on map", `{"steps": [{"id":"a","map":{"items":"[]","step":{"function":"f"}},"retry":{}}]}`, "a", "retry", "only allowed on a function step"},
		{"catch on sleep", `{"steps": [{"id":"a","sleep_ms":5,"catch":"b"}]}`, "a", "catch", "only allowed on function, map and parallel"},
		{"catch on wait", `{"steps": [{"id":"a","wait_for":{"signal":"s","timeout_ms":5},"catch":"b"}]}`, "a", "catch", "only allowed on function, map and parallel"},
		{"version string", `{"steps": [{"id":"a","function":"f","version":"2"}]}`, "a", "version", "must be an integer"},
		{"version zero", `{"steps": [{"id":"a","function":"f","version":0}]}`, "a", "version", "positive"},
		{"timeout fraction", `{"steps": [{"id":"a","function":"f","timeout_ms":1.5}]}`, "a", "timeout_ms", "must be an integer"},
		{"timeout zero", `{"steps": [{"id":"a","function":"f","timeout_ms":0}]}`, "a", "timeout_ms", "positive"},
		{"sleep zero", `{"steps": [{"id":"a","sleep_ms":0}]}`, "a", "sleep_ms", "positive"},
		{"function empty", `{"steps": [{"id":"a","function":""}]}`, "a", "function", "must name a registered function"},
		{"function number", `{"steps": [{"id":"a","function":3}]}`, "a", "function", "must be a string"},
		{"retry unknown", `{"steps": [{"id":"a","function":"f","retry":{"tries":3}}]}`, "a", "retry.tries", `unknown field "tries"`},
		{"retry backoff string", `{"steps": [{"id":"a","function":"f","retry":{"backoff":"x"}}]}`, "a", "retry.backoff", "must be a number"},
		{"map unknown", `{"steps": [{"id":"a","map":{"items":"[]","step":{"function":"f"},"limit":3}}]}`, "a", "map.limit", `unknown field "limit"`},
		{"map items missing", `{"steps": [{"id":"a","map":{"step":{"function":"f"}}}]}`, "a", "map.items", "required"},
		{"map step missing", `{"steps": [{"id":"a","map":{"items":"[]"}}]}`, "a", "map.step", "required"},
		{"map step id", `{"steps": [{"id":"a","map":{"items":"[]","step":{"id":"x","function":"f"}}}]}`, "a", "map.step.id", "map.step has no id"},
		{"map step sleep", `{"steps": [{"id":"a","map":{"items":"[]","step":{"sleep_ms":3}}}]}`, "a", "map.step.sleep_ms", "must be a function step"},
		{"map concurrency zero", `{"steps": [{"id":"a","map":{"items":"[]","max_concurrency":0,"step":{"function":"f"}}}]}`, "a", "map.max_concurrency", "positive"},
		{"parallel empty", `{"steps": [{"id":"a","parallel":{}}]}`, "a", "parallel", "at least one branch"},
		{"if empty", `{"steps": [{"id":"a","function":"f","if":""}]}`, "a", "if", "must be a CEL expression"},
		{"catch empty", `{"steps": [{"id":"a","function":"f","catch":""}]}`, "a", "catch", "must name a later step"},
		{"parallel not object", `{"steps": [{"id":"a","parallel":[]}]}`, "a", "parallel", "must be a JSON object"},
		{"branch step unknown", `{"steps": [{"id":"a","parallel":{"x":[{"id":"b","function":"f","foo":1}]}}]}`, "b", "foo", `unknown field "foo"`},
		{"branch step no id", `{"steps": [{"id":"a","parallel":{"x":[{"function":"f","foo":1}]}}]}`, "a.parallel.x[0]", "foo", `unknown field "foo"`},
		{"wait unknown", `{"steps": [{"id":"a","wait_for":{"signal":"s","timeout_ms":5,"default":1}}]}`, "a", "wait_for.default", `unknown field "default"`},
		{"wait timeout missing", `{"steps": [{"id":"a","wait_for":{"signal":"s"}}]}`, "a", "wait_for.timeout_ms", "required"},
		{"wait signal missing", `{"steps": [{"id":"a","wait_for":{"timeout_ms":5}}]}`, "a", "wait_for.signal", "required"},
		{"run timeout zero", `{"steps": [], "timeout_ms": 0}`, "", "timeout_ms", "positive"},
		{"name number", `{"steps": [], "name": 1}`, "", "name", "must be a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.src))
			requireProblem(t, err, tc.step, tc.field, tc.substr)
		})
	}
}

func TestParseMessagesNameTheStep(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`{"steps": [{"id":"b","function":"f","inptu":1}]}`))
	require.EqualError(t, err, `invalid pipeline: step "b": unknown field "inptu"`)
}

func TestCanonicalAndSHA256(t *testing.T) {
	t.Parallel()
	a := `{"name":"p1","steps":[{"id":"a","function":"f","input":{"x":"${input.x}","b":[1,2.50,{"z":1,"y":"<&>"}]},"retry":{"max_attempts":2,"initial_interval_ms":0}}],"output":{"k":"${steps.a.output}"},"timeout_ms":1000}`
	b := `{
		"timeout_ms": 1000,
		"output": { "k" : "${steps.a.output}" },
		"steps": [ { "retry": {"initial_interval_ms": 0, "max_attempts": 2},
		             "input": {"b": [1, 2.50, {"y": "<&>", "z": 1}], "x": "${input.x}"},
		             "function": "f", "id": "a" } ],
		"name": "p2"
	}`
	da, err := Parse([]byte(a))
	require.NoError(t, err)
	db, err := Parse([]byte(b))
	require.NoError(t, err)
	ha, err := da.SHA256()
	require.NoError(t, err)
	hb, err := db.SHA256()
	require.NoError(t, err)
	require.Equal(t, ha, hb, "key order, whitespace and the name do not change the sha256")
	require.Len(t, ha, 64)

	ca, err := da.Canonical()
	require.NoError(t, err)
	require.Equal(t,
		`{"name":"p1","output":{"k":"${steps.a.output}"},"steps":[{"function":"f","id":"a","input":{"b":[1,2.50,{"y":"<&>","z":1}],"x":"${input.x}"},"retry":{"initial_interval_ms":0,"max_attempts":2}}],"timeout_ms":1000}`,
		string(ca), "sorted, compact, numbers as written, no HTML escaping, no defaults filled in")

	// What the user wrote round-trips: parsing the canonical form gives it back.
	dc, err := Parse(ca)
	require.NoError(t, err)
	cc, err := dc.Canonical()
	require.NoError(t, err)
	require.Equal(t, string(ca), string(cc))

	// A real change changes the hash; so does the description.
	db.Steps[0].Function = "g"
	hc, err := db.SHA256()
	require.NoError(t, err)
	require.NotEqual(t, ha, hc)
	da.Description = "now described"
	hd, err := da.SHA256()
	require.NoError(t, err)
	require.NotEqual(t, ha, hd)
}

func TestCanonicalKeepsExplicitValues(t *testing.T) {
	t.Parallel()
	// input null (a literal null input) differs from no input (the default input).
	withNull, err := Parse([]byte(`{"steps":[{"id":"a","function":"f","input":null}]}`))
	require.NoError(t, err)
	without, err := Parse([]byte(`{"steps":[{"id":"a","function":"f"}]}`))
	require.NoError(t, err)
	c1, _ := withNull.Canonical()
	c2, _ := without.Canonical()
	require.Equal(t, `{"steps":[{"function":"f","id":"a","input":null}]}`, string(c1))
	require.Equal(t, `{"steps":[{"function":"f","id":"a"}]}`, string(c2))
}

func TestHasWaits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want bool
	}{
		{`{"steps":[{"id":"a","function":"f"}]}`, false},
		{`{"steps":[{"id":"a","sleep_ms":5}]}`, true},
		{`{"steps":[{"id":"a","wait_for":{"signal":"s","timeout_ms":5}}]}`, true},
		{`{"steps":[{"id":"p","parallel":{"x":[{"id":"a","function":"f"}],"y":[{"id":"b","parallel":{"z":[{"id":"c","sleep_ms":1}]}}]}}]}`, true},
		{`{"steps":[{"id":"m","map":{"items":"[1]","step":{"function":"f"}}}]}`, false},
	}
	for _, tc := range tests {
		d, err := Parse([]byte(tc.src))
		require.NoError(t, err)
		require.Equal(t, tc.want, d.HasWaits(), tc.src)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"steps":[{"id":"a","function":"f","input":{"x":"${input.x}"}}]}`))
	f.Add([]byte(`{"steps":[{"id":"p","parallel":{"x":[{"id":"a","sleep_ms":1}]}}],"output":null}`))
	f.Add([]byte(`{"steps":[{"id":"m","map":{"items":"input","step":{"function":"f","retry":{"backoff":2}}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			return
		}
		c, err := d.Canonical()
		require.NoError(t, err)
		require.True(t, json.Valid(c))
		d2, err := Parse(c)
		require.NoError(t, err, "the canonical form parses")
		c2, err := d2.Canonical()
		require.NoError(t, err)
		require.Equal(t, string(c), string(c2))
		_, _ = Compile(d)
	})
}
