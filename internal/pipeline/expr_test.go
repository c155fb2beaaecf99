package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecodeJSONNumbers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want any
	}{
		{`3`, int64(3)},
		{`-7`, int64(-7)},
		{`3.0`, int64(3)},
		{`1e3`, int64(1000)},
		{`-0`, int64(0)},
		{`3.5`, 3.5},
		{`1e-7`, 1e-7},
		{`9007199254740993`, int64(9007199254740993)}, // exact beyond float64's 2^53
		{`9223372036854775807`, int64(math.MaxInt64)},
		{`12345678901234567890`, 1.2345678901234567e19},
		{`1e300`, 1e300},
	}
	for _, tc := range tests {
		got, err := DecodeJSON([]byte(tc.in))
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}

func TestDecodeJSONValues(t *testing.T) {
	t.Parallel()
	got, err := DecodeJSON([]byte(` {"a": [true, false, null, "x\"\\\/\b\f\n\r\tÿ\u00e9\ud83d\ude00\ud800"], "b": {}, "c": []} `))
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"a": []any{true, false, nil, "x\"\\/\b\f\n\r\tÿé😀\ufffd"},
		"b": map[string]any{},
		"c": []any{},
	}, got)

	for _, bad := range []string{``, `{`, `[1,]`, `{"a"}`, `{"a":1,}`, `01`, `1.`, `-`, `"abc`, "\"a\x01\"", `"\x"`, `"\u12"`, `tru`, `1 2`, `{1:2}`, `nul`} {
		_, err := DecodeJSON([]byte(bad))
		require.Error(t, err, "%q", bad)
		require.False(t, json.Valid([]byte(bad)), "the test's own case %q", bad)
	}
	_, err = DecodeJSON([]byte(strings.Repeat("[", maxJSONDepth+2) + strings.Repeat("]", maxJSONDepth+2)))
	require.ErrorContains(t, err, "nested too deeply")
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x"]}`, `"\ud83d\ude00"`, `-0.0e+1`, `[[[]]]`, `{"a":{"b":null}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeJSON(data)
		require.Equal(t, json.Valid(data), err == nil, "DecodeJSON and encoding/json agree on %q", data)
		if err != nil {
			return
		}
		out, err := AppendJSON(nil, v)
		if err != nil {
			return // a float that overflowed to ±Inf has no JSON form
		}
		require.True(t, json.Valid(out))
		v2, err := DecodeJSON(out)
		require.NoError(t, err)
		require.Equal(t, v, v2, "decode(encode(v)) == v")
	})
}

// evalExpr compiles src in the map-item environment and evaluates it.
func evalExpr(t *testing.T, src string, vars *Vars) (string, error) {
	t.Helper()
	_, item, err := envs()
	require.NoError(t, err)
	e, err := compileExpr(item, src, anyValue)
	require.NoError(t, err)
	out, err := e.EvalJSON(context.Background(), vars, nil)
	return string(out), err
}

func mustDecode(t testing.TB, s string) any {
	t.Helper()
	v, err := DecodeJSON([]byte(s))
	require.NoError(t, err)
	return v
}

func TestExprValues(t *testing.T) {
	t.Parallel()
	vars := &Vars{
		Input: mustDecode(t, `{"n": 3, "f": 1.5, "whole": 4.0, "s": "hi", "list": [3, 1, 2], "big": 9007199254740993}`),
		Steps: map[string]any{
			"a":    StepVar(StepSucceeded, mustDecode(t, `{"count": 4, "ratio": 3.5, "items": [{"id": 1}, {"id": 2}]}`), nil),
			"bad":  StepVar(StepFailed, nil, &Error{Type: "ValueError", Message: "boom"}),
			"skip": StepVar(StepSkipped, nil, nil),
		},
		Item:  mustDecode(t, `{"sku": "x1"}`),
		Index: 2,
	}
	tests := []struct{ src, want string }{
		{`input.n * 2`, `6`},
		{`input.whole * 2`, `8`},
		{`input.f * 2.0`, `3`},
		{`input.f * 3.0`, `4.5`},
		{`input.big + 1`, `9007199254740994`},
		{`steps.a.output.count > 3`, `true`},
		{`steps.a.output.ratio > 3`, `true`},
		{`steps.a.output.count == 4.0`, `true`},
		{`steps.a.output.items.map(i, i.id * 10)`, `[10,20]`},
		{`steps.bad.status`, `"failed"`},
		{`steps.bad.error`, `{"message":"boom","type":"ValueError"}`},
		{`steps.bad.output`, `null`},
		{`steps.skip.error == null`, `true`},
		{`item.sku + "-" + string(index)`, `"x1-2"`},
		{`{"b": 1, "a": [1, 2.5, "x", null, true, input.s]}`, `{"a":[1,2.5,"x",null,true,"hi"],"b":1}`},
		{`input`, `{"big":9007199254740993,"f":1.5,"list":[3,1,2],"n":3,"s":"hi","whole":4}`},
		{`input.list.sort()`, `[1,2,3]`},
		{`b"hi"`, `"aGk="`},
		{`timestamp("2026-01-02T03:04:05Z")`, `"2026-01-02T03:04:05Z"`},
		{`duration("1.5s")`, `"1.5s"`},
		{`input.?missing`, `null`},
		{`input.?n`, `3`},
		{`"a\u2028<b>"`, `"a\u2028<b>"`},
		{`1u`, `1`},
		{`1e-7`, `1e-7`},
		{`1e21`, `1e+21`},
		{`type(1)`, `"int"`},
	}
	for _, tc := range tests {
		got, err := evalExpr(t, tc.src, vars)
		require.NoError(t, err, tc.src)
		require.Equal(t, tc.want, got, tc.src)
	}
}

func TestExprErrors(t *testing.T) {
	t.Parallel()
	vars := &Vars{Input: mustDecode(t, `{"n": 1.5, "zero": 0, "m": {"a": 1}}`), Steps: map[string]any{}}
	tests := []struct{ src, msg string }{
		{`input.n * 2`, "no such overload"},
		{`input.missing`, "no such key: missing"},
		{`1 / input.zero`, "division by zero"},
		{`0.0 / 0.0`, "has no JSON form"},
		{`{1: "a"}`, "a map key must be a string"},
		{`steps.gone.output`, "no such key: gone"},
	}
	for _, tc := range tests {
		_, err := evalExpr(t, tc.src, vars)
		var xe *ExprError
		require.True(t, errors.As(err, &xe), "%s: %v", tc.src, err)
		require.Contains(t, xe.Message, tc.msg, tc.src)
		require.Equal(t, ErrTypeExpression, xe.StepError().Type)
		require.Equal(t, tc.src, xe.Expr)
	}
}

func TestExprCostLimitAndCancel(t *testing.T) {
	t.Parallel()
	list := make([]any, 3000)
	for i := range list {
		list[i] = int64(i)
	}
	vars := &Vars{Input: list}
	_, err := evalExpr(t, `input.map(x, input.map(y, x * y)).size()`, vars)
	var xe *ExprError
	require.True(t, errors.As(err, &xe), "%v", err)
	require.Contains(t, xe.Message, "exceeded the cost limit")

	base, _, err := envs()
	require.NoError(t, err)
	e, err := compileExpr(base, `input.map(x, x + 1).size()`, anyValue)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = e.Eval(ctx, vars)
	require.ErrorIs(t, err, context.Canceled, "a canceled evaluation is a cancellation, not an expression error")
}

func TestEvalBoolAndList(t *testing.T) {
	t.Parallel()
	base, _, err := envs()
	require.NoError(t, err)
	vars := &Vars{Input: mustDecode(t, `{"n": 2, "l": [1, {"a": 2.5}, "x"]}`)}
	ctx := context.Background()

	e, err := compileExpr(base, `input.n`, boolValue) // dyn: checked when it runs
	require.NoError(t, err)
	_, err = e.EvalBool(ctx, vars)
	require.ErrorContains(t, err, "must give a bool, gave int")

	e, err = compileExpr(base, `input.n > 1`, boolValue)
	require.NoError(t, err)
	b, err := e.EvalBool(ctx, vars)
	require.NoError(t, err)
	require.True(t, b)

	e, err = compileExpr(base, `input.n`, listValue)
	require.NoError(t, err)
	_, err = e.EvalList(ctx, vars)
	require.ErrorContains(t, err, "must give a list, gave int")

	e, err = compileExpr(base, `input.l`, listValue)
	require.NoError(t, err)
	l, err := e.EvalList(ctx, vars)
	require.NoError(t, err)
	require.Equal(t, []any{int64(1), map[string]any{"a": 2.5}, "x"}, l)

	e, err = compileExpr(base, `[1, 2].map(x, {"v": x * 2})`, listValue)
	require.NoError(t, err)
	l, err = e.EvalList(ctx, vars)
	require.NoError(t, err)
	require.Equal(t, []any{map[string]any{"v": int64(2)}, map[string]any{"v": int64(4)}}, l)
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	base, _, err := envs()
	require.NoError(t, err)
	vars := &Vars{
		Input: mustDecode(t, `{"n": 3, "name": "ada"}`),
		Steps: map[string]any{"a": StepVar(StepSucceeded, mustDecode(t, `{"x": [1, 2]}`), nil)},
	}
	tests := []struct {
		tmpl, want string
		literal    bool
	}{
		{`{"z": 1, "a": [true, null, "s", 1.50]}`, `{"a":[true,null,"s",1.50],"z":1}`, true},
		{`"${input.n * 2}"`, `6`, false},
		{`"${input}"`, `{"n":3,"name":"ada"}`, false},
		{`{"b": {"x": "${steps.a.output.x}", "lit": "hello ${input.name}"}, "a": ["${input.name}", 2, "$input", "${"]}`,
			`{"a":["ada",2,"$input","${"],"b":{"lit":"hello ${input.name}","x":[1,2]}}`, false},
		{`"${ {'k': input.n} }"`, `{"k":3}`, false},
		{`"\u003c${input.n}"`, `"<${input.n}"`, true},
	}
	for _, tc := range tests {
		tm, errs := compileTemplate(base, json.RawMessage(tc.tmpl))
		require.Empty(t, errs, tc.tmpl)
		require.Equal(t, tc.literal, tm.Literal(), tc.tmpl)
		out, err := tm.Render(context.Background(), vars, nil)
		require.NoError(t, err, tc.tmpl)
		require.Equal(t, tc.want, string(out), tc.tmpl)
		require.True(t, json.Valid(out))
	}

	tm, errs := compileTemplate(base, json.RawMessage(`{"a": "${steps.a.output.missing}"}`))
	require.Empty(t, errs)
	_, err = tm.Render(context.Background(), vars, nil)
	var xe *ExprError
	require.ErrorAs(t, err, &xe)
	require.Contains(t, xe.Message, "no such key: missing")
}
