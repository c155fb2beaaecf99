package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
)

// echoCaller is a trivial function: its output is its input.
func echoCaller(_ context.Context, c FunctionCall) (Outcome, error) {
	return Outcome{Status: CallSucceeded, Output: c.Input}, nil
}

func benchRun(b *testing.B, src, input string) {
	p := mustCompile(b, src)
	in := json.RawMessage(input)
	ctx := context.Background()
	steps := len(p.Steps())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := NewMemRunner(p, MemOptions{RunID: "0190d5f2-7c1e-7abc-8def-0123456789ab", Input: in, Caller: echoCaller})
		if res := m.Run(ctx); res.Status != RunSucceeded {
			b.Fatalf("%+v", res)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(steps), "ns/step")
}

// BenchmarkMemRun3Steps is the sync path's interpreter overhead: three function steps
// with default inputs over a trivial caller.
func BenchmarkMemRun3Steps(b *testing.B) {
	benchRun(b, `{"steps":[{"id":"a","function":"py"},{"id":"b","function":"node"},{"id":"c","function":"rust"}]}`, `{"n":1,"s":"hello"}`)
}

// BenchmarkMemRun3StepsTemplates adds an input template, an if and an output template.
func BenchmarkMemRun3StepsTemplates(b *testing.B) {
	benchRun(b, `{"output":{"r":"${steps.c.output}","n":"${input.n}"},"steps":[
	  {"id":"a","function":"py","input":{"n":"${input.n * 2}","s":"${input.s}"}},
	  {"id":"b","function":"node","if":"steps.a.output.n > 1"},
	  {"id":"c","function":"rust","input":{"prev":"${steps.b.output}","k":"lit"}}]}`, `{"n":1,"s":"hello"}`)
}

// BenchmarkMemRun40Steps is a long chain.
func BenchmarkMemRun40Steps(b *testing.B) {
	steps := ""
	for i := range 40 {
		if i > 0 {
			steps += ","
		}
		steps += fmt.Sprintf(`{"id":"s%d","function":"f"}`, i)
	}
	benchRun(b, `{"steps":[`+steps+`]}`, `{"n":1}`)
}

// BenchmarkMemRunMap100 is a map over 100 items, 10 at a time.
func BenchmarkMemRunMap100(b *testing.B) {
	benchRun(b, `{"steps":[{"id":"m","map":{"items":"input","max_concurrency":10,"step":{"function":"f"}}}]}`,
		`[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99]`)
}

func BenchmarkExprEval(b *testing.B) {
	base, _, err := envs()
	if err != nil {
		b.Fatal(err)
	}
	e, err := compileExpr(base, `steps.a.output.count > 3 && input.n * 2 == 4`, boolValue)
	if err != nil {
		b.Fatal(err)
	}
	vars := &Vars{Input: mustDecode(b, `{"n":2}`), Steps: map[string]any{"a": StepVar(StepSucceeded, mustDecode(b, `{"count":4}`), nil)}}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, err := e.EvalBool(ctx, vars); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
}

func BenchmarkTemplateRender(b *testing.B) {
	base, _, err := envs()
	if err != nil {
		b.Fatal(err)
	}
	t, errs := compileTemplate(base, json.RawMessage(`{"user":{"id":"${input.id}","name":"${input.name}"},"items":"${steps.a.output}","fixed":[1,2,3]}`))
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	vars := &Vars{Input: mustDecode(b, `{"id":7,"name":"ada"}`), Steps: map[string]any{"a": StepVar(StepSucceeded, mustDecode(b, `[{"x":1},{"x":2}]`), nil)}}
	ctx := context.Background()
	b.ReportAllocs()
	var buf []byte
	for i := 0; i < b.N; i++ {
		if buf, err = t.Render(ctx, vars, buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	data := []byte(`{"id":7,"name":"ada","tags":["a","b"],"score":3.5,"nested":{"ok":true,"n":null}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if _, err := DecodeJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	d, err := Parse([]byte(`{"output":{"r":"${steps.c.output}"},"steps":[
	  {"id":"a","function":"py","input":{"n":"${input.n * 2}"}},
	  {"id":"b","function":"node","if":"steps.a.output.n > 1"},
	  {"id":"c","function":"rust"}]}`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Compile(d); err != nil {
			b.Fatal(err)
		}
	}
}
