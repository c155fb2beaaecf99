package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// catalog is a Catalog over a map of function name → latest version (versions 1..latest
// exist).
type catalog struct {
	funcs  map[string]int
	limits Limits
	err    error
}

func (c catalog) Function(name string, version int) (FunctionInfo, error) {
	if c.err != nil {
		return FunctionInfo{}, c.err
	}
	latest, ok := c.funcs[name]
	if !ok {
		return FunctionInfo{}, nil
	}
	return FunctionInfo{Exists: true, Language: "python", Latest: latest, Pinned: version > 0 && version <= latest}, nil
}

func (c catalog) Limits() Limits { return c.limits }

var testCatalog = catalog{funcs: map[string]int{"f": 3, "g": 1, "double": 1, "echo": 1}}

func validate(t *testing.T, src string) error {
	t.Helper()
	d, err := Parse([]byte(src))
	require.NoError(t, err, "parse")
	return Validate(d, testCatalog)
}

func TestValidateAcceptsAGoodPipeline(t *testing.T) {
	t.Parallel()
	src := `{"name":"orders","timeout_ms":60000,"output":{"a":"${steps.a.output}","p":"${steps.p.output}","c":"${steps.c1.output}"},
	  "steps":[
	    {"id":"a","function":"f","version":2,"input":{"n":"${input.n * 2}"},"retry":{"max_attempts":10,"initial_interval_ms":3600000,"backoff":10},"timeout_ms":900000,"catch":"z"},
	    {"id":"m","if":"steps.a.status == 'succeeded'","map":{"items":"steps.a.output.list","max_concurrency":1000,"step":{"function":"g","input":{"x":"${item}","i":"${index}","a":"${steps.a.output}"}}}},
	    {"id":"p","parallel":{"left":[{"id":"l1","function":"f","input":"${steps.m.output}"},{"id":"l2","function":"f","input":"${steps.l1.output}"}],
	                          "right":[{"id":"c1","sleep_ms":2592000000}]}},
	    {"id":"w","wait_for":{"signal":"approve_1-x","timeout_ms":2592000000}},
	    {"id":"dyn","function":"f","if":"steps['a'].output != null && steps.exists(k, k == 'a')"},
	    {"id":"z","function":"echo","input":{"err":"${steps.a.error}","any":"${steps.p.status}"}}
	  ]}`
	require.NoError(t, validate(t, src))
}

func TestValidateProblems(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("1 + ", 1100) + "1"
	tests := []struct {
		name, src           string
		step, field, substr string
	}{
		{"name required", `{"steps":[{"id":"a","function":"f"}]}`, "", "name", "name is required"},
		{"name pattern", `{"name":"Bad_Name","steps":[{"id":"a","function":"f"}]}`, "", "name", `name "Bad_Name" must match`},
		{"no steps", `{"name":"p","steps":[]}`, "", "steps", "at least one step"},
		{"id missing", `{"name":"p","steps":[{"function":"f"}]}`, "steps[0]", "id", "id is required"},
		{"id pattern", `{"name":"p","steps":[{"id":"Load","function":"f"}]}`, "Load", "id", `id "Load" must match ^[a-z][a-z0-9_]{0,62}$`},
		{"id too long", `{"name":"p","steps":[{"id":"` + strings.Repeat("a", 64) + `","function":"f"}]}`, strings.Repeat("a", 64), "id", "must match"},
		{"duplicate id", `{"name":"p","steps":[{"id":"a","function":"f"},{"id":"a","function":"f"}]}`, "a", "id", "used by more than one step"},
		{"duplicate id across branches", `{"name":"p","steps":[{"id":"a","function":"f"},{"id":"p","parallel":{"x":[{"id":"a","function":"f"}]}}]}`, "a", "id", "unique in the whole pipeline"},
		{"branch name", `{"name":"p","steps":[{"id":"p","parallel":{"Left":[{"id":"a","function":"f"}]}}]}`, "p", "parallel.Left", `branch name "Left" must match`},
		{"empty branch", `{"name":"p","steps":[{"id":"p","parallel":{"x":[]}}]}`, "p", "parallel.x", `branch "x" needs at least one step`},
		{"too deep", `{"name":"p","steps":[{"id":"p1","parallel":{"x":[{"id":"p2","parallel":{"x":[{"id":"p3","parallel":{"x":[{"id":"p4","parallel":{"x":[{"id":"a","function":"f"}]}}]}}]}}]}}]}`, "p4", "parallel", "nested more than 3 deep"},
		{"unknown function", `{"name":"p","steps":[{"id":"a","function":"f"},{"id":"b","function":"nope"}]}`, "b", "function", `unknown function "nope"`},
		{"unknown map function", `{"name":"p","steps":[{"id":"m","map":{"items":"[1]","step":{"function":"nope"}}}]}`, "m", "map.step.function", `unknown function "nope"`},
		{"missing version", `{"name":"p","steps":[{"id":"a","function":"f","version":4}]}`, "a", "version", `function "f" has no version 4 (its latest is 3)`},
		{"if does not compile", `{"name":"p","steps":[{"id":"a","function":"f","if":"input.x >"}]}`, "a", "if", "does not compile"},
		{"if not bool", `{"name":"p","steps":[{"id":"a","function":"f","if":"1 + 2"}]}`, "a", "if", "must give a bool, not int"},
		{"items not list", `{"name":"p","steps":[{"id":"m","map":{"items":"'abc'","step":{"function":"f"}}}]}`, "m", "map.items", "must give a list, not string"},
		{"items bad", `{"name":"p","steps":[{"id":"m","map":{"items":"input.(","step":{"function":"f"}}}]}`, "m", "map.items", "does not compile"},
		{"input bad", `{"name":"p","steps":[{"id":"a","function":"f","input":{"x":["${input.x +}"]}}]}`, "a", "input", "does not compile"},
		{"template hint", `{"name":"p","steps":[{"id":"a","function":"f","input":"${input.a} ${input.b}"}]}`, "a", "input", `exactly "${expression}" or literal text; to join values write one expression`},
		{"empty expression", `{"name":"p","steps":[{"id":"a","function":"f","input":"${ }"}]}`, "a", "input", "expression is empty"},
		{"output bad", `{"name":"p","output":"${nope}","steps":[{"id":"a","function":"f"}]}`, "", "output", "undeclared reference to 'nope'"},
		{"item outside map", `{"name":"p","steps":[{"id":"a","function":"f","input":"${item}"}]}`, "a", "input", "undeclared reference to 'item'"},
		{"index in map if", `{"name":"p","steps":[{"id":"m","if":"index > 0","map":{"items":"[1]","step":{"function":"f"}}}]}`, "m", "if", "undeclared reference to 'index'"},
		{"unknown step ref", `{"name":"p","steps":[{"id":"a","function":"f","input":"${steps.zz.output}"}]}`, "a", "input", "steps.zz is not a step of this pipeline"},
		{"unknown step ref index", `{"name":"p","steps":[{"id":"a","function":"f","if":"steps['zz'].status == 'failed'"}]}`, "a", "if", "steps.zz is not a step"},
		{"unknown step ref output", `{"name":"p","output":"${steps.zz}","steps":[{"id":"a","function":"f"}]}`, "", "output", "steps.zz is not a step"},
		{"later step ref", `{"name":"p","steps":[{"id":"a","function":"f","input":"${steps.b.output}"},{"id":"b","function":"f"}]}`, "a", "input", "steps.b has not finished when this runs"},
		{"self ref", `{"name":"p","steps":[{"id":"a","function":"f","if":"steps.a.status == 'x'"}]}`, "a", "if", "steps.a has not finished"},
		{"sibling branch ref", `{"name":"p","steps":[{"id":"p","parallel":{"x":[{"id":"a","function":"f"}],"y":[{"id":"b","function":"f","input":"${steps.a.output}"}]}}]}`, "b", "input", "steps.a has not finished"},
		{"parent parallel ref", `{"name":"p","steps":[{"id":"p","parallel":{"x":[{"id":"a","function":"f","input":"${steps.p.output}"}]}}]}`, "a", "input", "steps.p has not finished"},
		{"catch missing", `{"name":"p","steps":[{"id":"a","function":"f","catch":"nope"}]}`, "a", "catch", `catch target "nope" is not a step`},
		{"catch other list", `{"name":"p","steps":[{"id":"p","parallel":{"x":[{"id":"a","function":"f","catch":"z"}]}},{"id":"z","function":"f"}]}`, "a", "catch", "not in the same step list"},
		{"catch itself", `{"name":"p","steps":[{"id":"a","function":"f","catch":"a"}]}`, "a", "catch", "is the step itself"},
		{"catch backwards", `{"name":"p","steps":[{"id":"a","function":"f"},{"id":"b","function":"f","catch":"a"}]}`, "b", "catch", "only jumps forward"},
		{"max attempts low", `{"name":"p","steps":[{"id":"a","function":"f","retry":{"max_attempts":0}}]}`, "a", "retry.max_attempts", "between 1 and 10"},
		{"max attempts high", `{"name":"p","steps":[{"id":"a","function":"f","retry":{"max_attempts":11}}]}`, "a", "retry.max_attempts", "between 1 and 10"},
		{"interval negative", `{"name":"p","steps":[{"id":"a","function":"f","retry":{"initial_interval_ms":-1}}]}`, "a", "retry.initial_interval_ms", "between 0 and 3600000"},
		{"interval high", `{"name":"p","steps":[{"id":"a","function":"f","retry":{"initial_interval_ms":3600001}}]}`, "a", "retry.initial_interval_ms", "between 0 and 3600000"},
		{"backoff low", `{"name":"p","steps":[{"id":"a","function":"f","retry":{"backoff":0.5}}]}`, "a", "retry.backoff", "between 1 and 10"},
		{"backoff high", `{"name":"p","steps":[{"id":"a","function":"f","retry":{"backoff":10.5}}]}`, "a", "retry.backoff", "between 1 and 10"},
		{"map item retry", `{"name":"p","steps":[{"id":"m","map":{"items":"[1]","step":{"function":"f","retry":{"max_attempts":99}}}}]}`, "m", "map.step.retry.max_attempts", "between 1 and 10"},
		{"step timeout", `{"name":"p","steps":[{"id":"a","function":"f","timeout_ms":900001}]}`, "a", "timeout_ms", "above the limit of 900000"},
		{"map item timeout", `{"name":"p","steps":[{"id":"m","map":{"items":"[1]","step":{"function":"f","timeout_ms":900001}}}]}`, "m", "map.step.timeout_ms", "above the limit"},
		{"run timeout", `{"name":"p","timeout_ms":2592000001,"steps":[{"id":"a","function":"f"}]}`, "", "timeout_ms", "above the limit"},
		{"concurrency", `{"name":"p","steps":[{"id":"m","map":{"items":"[1]","max_concurrency":1001,"step":{"function":"f"}}}]}`, "m", "map.max_concurrency", "between 1 and 1000"},
		{"sleep long", `{"name":"p","steps":[{"id":"s","sleep_ms":2592000001}]}`, "s", "sleep_ms", "between 1 and 2592000000"},
		{"wait long", `{"name":"p","steps":[{"id":"w","wait_for":{"signal":"go","timeout_ms":2592000001}}]}`, "w", "wait_for.timeout_ms", "between 1 and 2592000000"},
		{"signal pattern", `{"name":"p","steps":[{"id":"w","wait_for":{"signal":"Go!","timeout_ms":5}}]}`, "w", "wait_for.signal", `"Go!" must match`},
		{"expression long", `{"name":"p","steps":[{"id":"a","function":"f","if":"` + long + ` > 0"}]}`, "a", "if", "the limit is 4096"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			requireProblem(t, validate(t, tc.src), tc.step, tc.field, tc.substr)
		})
	}
}

func TestValidateMessages(t *testing.T) {
	t.Parallel()
	err := validate(t, `{"name":"p","steps":[{"id":"a","function":"f"},{"id":"b","function":"nope"}]}`)
	require.EqualError(t, err, `invalid pipeline: step "b": unknown function "nope"`)
	ps := problemsOf(t, err)
	require.Equal(t, []Problem{{Step: "b", Field: "function", Message: `step "b": unknown function "nope"`}}, ps)

	// Every problem is reported at once.
	err = validate(t, `{"name":"p","output":"${x}","steps":[{"id":"a","function":"nope","if":"1"},{"id":"a","sleep_ms":5}]}`)
	require.Len(t, problemsOf(t, err), 4, "%v", err)
}

func TestValidateLimits(t *testing.T) {
	t.Parallel()
	var steps []string
	for i := range 6 {
		steps = append(steps, fmt.Sprintf(`{"id":"s%d","function":"f"}`, i))
	}
	d, err := Parse([]byte(`{"name":"p","steps":[` + strings.Join(steps, ",") + `]}`))
	require.NoError(t, err)
	cat := testCatalog
	cat.limits = Limits{MaxSteps: 5}
	requireProblem(t, Validate(d, cat), "", "steps", "the pipeline has 6 steps; the limit is 5")
	cat.limits = Limits{MaxDefinitionBytes: 100}
	requireProblem(t, Validate(d, cat), "", "", "the limit is 100")
	cat.limits = Limits{MaxStepTimeoutMS: 10}
	d.Steps[0].TimeoutMS = 11
	requireProblem(t, Validate(d, cat), "s0", "timeout_ms", "above the limit of 10")
}

func TestValidateCatalogError(t *testing.T) {
	t.Parallel()
	d, err := Parse([]byte(`{"name":"p","steps":[{"id":"a","function":"f"}]}`))
	require.NoError(t, err)
	boom := errors.New("db down")
	err = Validate(d, catalog{err: boom})
	require.ErrorIs(t, err, boom)
	var ve *ValidationError
	require.False(t, errors.As(err, &ve), "a catalog failure is not the user's problem")
}

func TestValidateGoConstructed(t *testing.T) {
	t.Parallel()
	one := 1
	d := &Definition{Name: "p", Steps: []Step{
		{ID: "a", FunctionSpec: FunctionSpec{Function: "f", TimeoutMS: -1}},
		{ID: "b", SleepMS: 5, FunctionSpec: FunctionSpec{Retry: &Retry{MaxAttempts: &one}}},
		{ID: "c"},
		{ID: "d", Parallel: map[string][]Step{}},
	}, TimeoutMS: -5}
	err := Validate(d, testCatalog)
	requireProblem(t, err, "a", "timeout_ms", "must be positive")
	requireProblem(t, err, "b", "", "only allowed on a function step")
	requireProblem(t, err, "c", "", "exactly one of")
	requireProblem(t, err, "d", "parallel", "at least one branch")
	requireProblem(t, err, "", "timeout_ms", "must be positive")
}

func TestCompileChecksStructureNotCatalog(t *testing.T) {
	t.Parallel()
	d, err := Parse([]byte(`{"steps":[{"id":"a","function":"unregistered"}]}`))
	require.NoError(t, err)
	_, err = Compile(d)
	require.NoError(t, err, "no name, unknown function: Compile does not care")

	d, err = Parse([]byte(`{"steps":[{"id":"a","function":"f"},{"id":"a","function":"f","catch":"a"}]}`))
	require.NoError(t, err)
	_, err = Compile(d)
	requireProblem(t, err, "a", "id", "used by more than one step")
}

func TestCompiledRefs(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, `{"steps":[
	  {"id":"a","function":"f"},
	  {"id":"b","function":"f","input":{"x":"${steps.a.output.x}","y":"${[1,2].map(steps, steps + 1)}"}},
	  {"id":"c","function":"f","if":"has(steps.b.output) && steps.?a.orValue(null) != null"},
	  {"id":"d","function":"f","input":"${input}"}]}`)
	ids, all := p.Step("b").Input.StepRefs()
	require.Equal(t, []string{"a"}, ids)
	require.False(t, all, "a comprehension variable named steps is not the steps variable")
	ids, all = p.Step("c").If.StepRefs()
	require.Equal(t, []string{"a", "b"}, ids)
	require.False(t, all)
	require.True(t, p.Referenced("a"))
	require.True(t, p.Referenced("b"))
	require.False(t, p.Referenced("c"))
	require.True(t, p.UsesInput())
	ids, all, in := p.Step("b").StepRefs()
	require.Equal(t, []string{"a"}, ids)
	require.False(t, all)
	require.False(t, in)
	_, _, in = p.Step("d").StepRefs()
	require.True(t, in)

	dyn := mustCompile(t, `{"steps":[{"id":"a","function":"f"},{"id":"b","function":"f","if":"steps.all(k, steps[k].status == 'succeeded')"}]}`)
	_, all = dyn.Step("b").If.StepRefs()
	require.True(t, all)
	require.True(t, dyn.Referenced("a"))
	require.False(t, dyn.UsesInput())
}

func mustCompile(t testing.TB, src string) *Compiled {
	t.Helper()
	d, err := Parse([]byte(src))
	require.NoError(t, err)
	p, err := Compile(d)
	require.NoError(t, err)
	return p
}

// TestValidateConcurrently validates definitions at once, as concurrent registrations
// do; with -race it guards compileMu (cel-go's checker races otherwise).
func TestValidateConcurrently(t *testing.T) {
	t.Parallel()
	srcs := []string{
		`{"name":"p","steps":[{"id":"a","function":"f","if":"undeclared_thing > 1"}]}`,
		`{"name":"p","steps":[{"id":"a","function":"f","if":"[1, 2].exists(x, x > input.n)"}]}`,
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			d, err := Parse([]byte(srcs[i%2]))
			require.NoError(t, err)
			err = Validate(d, testCatalog)
			if i%2 == 0 {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
}
