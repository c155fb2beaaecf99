package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// Expression bounds.
const (
	MaxExprBytes = 4096 // one expression's source
	// CostLimit bounds one evaluation (CEL's cost units, about one per operation and per
	// element a comprehension visits): a map over 100,000 elements fits, a runaway nested
	// comprehension stops with an ExpressionError.
	CostLimit = 1_000_000
	// interruptEvery is how many comprehension iterations pass between checks of the
	// evaluation's context.
	interruptEvery = 128
)

// The two CEL environments: every expression sees input and steps; a map's item step also
// sees item and index.
var (
	envOnce          sync.Once
	baseEnv, itemEnv *cel.Env
	envErr           error
)

func envs() (*cel.Env, *cel.Env, error) {
	envOnce.Do(func() {
		opts := []cel.EnvOption{
			cel.Variable("input", cel.DynType),
			cel.Variable("steps", cel.MapType(cel.StringType, cel.DynType)),
			cel.CrossTypeNumericComparisons(true),
			cel.OptionalTypes(),
			cel.ParserExpressionSizeLimit(MaxExprBytes),
			ext.Strings(), ext.Math(), ext.Lists(), ext.Sets(), ext.Encoders(),
		}
		baseEnv, envErr = cel.NewEnv(opts...)
		if envErr != nil {
			return
		}
		itemEnv, envErr = baseEnv.Extend(cel.Variable("item", cel.DynType), cel.Variable("index", cel.IntType))
	})
	return baseEnv, itemEnv, envErr
}

// compileMu serialises CEL compilation. cel-go v0.33.3's checker fills its symbol catalog
// lazily (checker.Env.Catalog, under a sync.Once) when it reports an undeclared reference,
// while another Compile on the same environment copies that field without the Once
// (cloneWithDecls, entering a comprehension's scope): a data race the race detector
// reports when two definitions are validated at once. Compiling happens at registration
// and once per version in a process (the sync path caches *Compiled), so serialising it
// costs nothing that matters; evaluation is not affected.
var compileMu sync.Mutex

// Expr is a compiled CEL expression. It is immutable and safe for concurrent use.
type Expr struct {
	src       string
	prog      cel.Program
	refs      []string // step ids named statically (steps.x, steps["x"]), sorted
	allSteps  bool     // steps is used some other way: any step's output may be read
	usesInput bool
	// loops: the expression has a comprehension, the only construct whose running time is
	// not bounded by the expression's size and one pass over its operands; only then is
	// the context checked while it runs (that costs a derived context per evaluation).
	loops bool
}

// Source is the expression as written (without "${" "}").
func (e *Expr) Source() string { return e.src }

// StepRefs is what the expression may read of steps: the ids it names, or all=true when
// it uses steps dynamically (steps[name], a comprehension over steps...). A runner that
// loads outputs from a database loads only these.
func (e *Expr) StepRefs() (ids []string, all bool) { return e.refs, e.allSteps }

// UsesInput reports whether the expression reads the run's input.
func (e *Expr) UsesInput() bool { return e.usesInput }

// exprKind says what an expression must produce, checked statically where the type is
// known (a dyn expression is checked when it runs).
type exprKind int

const (
	anyValue exprKind = iota
	boolValue
	listValue
)

// compileExpr compiles src in env; the error is a message for the user.
func compileExpr(env *cel.Env, src string, kind exprKind) (*Expr, error) {
	if len(src) > MaxExprBytes {
		return nil, fmt.Errorf("expression is %d bytes long; the limit is %d", len(src), MaxExprBytes)
	}
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("expression is empty")
	}
	compileMu.Lock()
	defer compileMu.Unlock()
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		msgs := make([]string, 0, len(iss.Errors()))
		for _, e := range iss.Errors() {
			msgs = append(msgs, fmt.Sprintf("%s (column %d)", e.Message, e.Location.Column()+1))
		}
		return nil, fmt.Errorf("%q does not compile: %s", src, strings.Join(msgs, "; "))
	}
	out := ast.OutputType()
	switch {
	case kind == boolValue && !out.IsExactType(cel.BoolType) && !out.IsExactType(cel.DynType):
		return nil, fmt.Errorf("%q must give a bool, not %s", src, out)
	case kind == listValue && out.Kind() != types.ListKind && !out.IsExactType(cel.DynType):
		return nil, fmt.Errorf("%q must give a list, not %s", src, out)
	}
	prog, err := env.Program(ast,
		cel.EvalOptions(cel.OptOptimize),
		cel.CostLimit(CostLimit),
		cel.InterruptCheckFrequency(interruptEvery))
	if err != nil {
		return nil, fmt.Errorf("%q: %v", src, err)
	}
	e := &Expr{src: src, prog: prog}
	r := refWalker{steps: map[string]bool{}}
	r.walk(ast.NativeRep().Expr(), nil)
	e.allSteps, e.usesInput, e.loops = r.all, r.input, r.loops
	for id := range r.steps {
		e.refs = append(e.refs, id)
	}
	sort.Strings(e.refs)
	return e, nil
}

// refWalker finds what an expression reads, from its checked AST.
type refWalker struct {
	steps map[string]bool
	all   bool
	input bool
	loops bool
}

func shadowed(scope []string, name string) bool {
	for _, s := range scope {
		if s == name {
			return true
		}
	}
	return false
}

func (r *refWalker) isSteps(e celast.Expr, scope []string) bool {
	return e.Kind() == celast.IdentKind && e.AsIdent() == "steps" && !shadowed(scope, "steps")
}

func (r *refWalker) walk(e celast.Expr, scope []string) {
	switch e.Kind() {
	case celast.IdentKind:
		if shadowed(scope, e.AsIdent()) {
			return
		}
		switch e.AsIdent() {
		case "steps":
			r.all = true
		case "input":
			r.input = true
		}
	case celast.SelectKind:
		s := e.AsSelect()
		if r.isSteps(s.Operand(), scope) {
			r.steps[s.FieldName()] = true
			return
		}
		r.walk(s.Operand(), scope)
	case celast.CallKind:
		c := e.AsCall()
		args := c.Args()
		switch c.FunctionName() {
		case "_[_]", "_[?_]", "_?._":
			if len(args) == 2 && r.isSteps(args[0], scope) && args[1].Kind() == celast.LiteralKind {
				if s, ok := args[1].AsLiteral().(types.String); ok {
					r.steps[string(s)] = true
					return
				}
			}
		}
		if c.IsMemberFunction() {
			r.walk(c.Target(), scope)
		}
		for _, a := range args {
			r.walk(a, scope)
		}
	case celast.ComprehensionKind:
		r.loops = true
		c := e.AsComprehension()
		r.walk(c.IterRange(), scope)
		r.walk(c.AccuInit(), scope)
		inner := append(append([]string(nil), scope...), c.IterVar(), c.AccuVar())
		if c.HasIterVar2() {
			inner = append(inner, c.IterVar2())
		}
		r.walk(c.LoopCondition(), inner)
		r.walk(c.LoopStep(), inner)
		r.walk(c.Result(), inner)
	case celast.ListKind:
		for _, el := range e.AsList().Elements() {
			r.walk(el, scope)
		}
	case celast.MapKind:
		for _, en := range e.AsMap().Entries() {
			me := en.AsMapEntry()
			r.walk(me.Key(), scope)
			r.walk(me.Value(), scope)
		}
	case celast.StructKind:
		for _, f := range e.AsStruct().Fields() {
			r.walk(f.AsStructField().Value(), scope)
		}
	}
}

// Vars are the variables of one evaluation. Values are JSON values as DecodeJSON returns
// them (nil, bool, int64, float64, string, []any, map[string]any). Steps maps a step id
// to StepVar(...); a step the map lacks is an evaluation error when read. *Vars is a CEL
// activation: evaluating allocates no variable map.
type Vars struct {
	Input any
	Steps map[string]any
	Item  any
	Index int64
}

// ResolveName implements interpreter.Activation.
func (v *Vars) ResolveName(name string) (any, bool) {
	switch name {
	case "input":
		return v.Input, true
	case "steps":
		return v.Steps, true
	case "item":
		return v.Item, true
	case "index":
		return v.Index, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (v *Vars) Parent() interpreter.Activation { return nil }

// StepVar is the value of steps.<id>: {"output": output, "status": status, "error":
// {"type","message"} or null}.
func StepVar(status StepStatus, output any, err *Error) map[string]any {
	var e any
	if err != nil {
		e = map[string]any{"type": err.Type, "message": err.Message}
	}
	return map[string]any{"output": output, "status": string(status), "error": e}
}

// ExprError is an expression that failed when evaluated; the step fails with type
// ExpressionError and this message.
type ExprError struct {
	Where   string // "if", "map.items", "input", "output"...
	Expr    string
	Message string
}

func (e *ExprError) Error() string {
	if e.Where == "" {
		return fmt.Sprintf("%q: %s", e.Expr, e.Message)
	}
	return fmt.Sprintf("%s: %q: %s", e.Where, e.Expr, e.Message)
}

// StepError is the error a step fails with.
func (e *ExprError) StepError() *Error {
	return &Error{Type: ErrTypeExpression, Message: e.Error()}
}

// Eval evaluates the expression. The error is an *ExprError, or ctx's error when ctx
// was canceled during a long evaluation.
func (e *Expr) Eval(ctx context.Context, vars *Vars) (ref.Val, error) {
	var (
		out ref.Val
		err error
	)
	if e.loops {
		out, _, err = e.prog.ContextEval(ctx, vars)
	} else {
		out, _, err = e.prog.Eval(vars)
	}
	if err != nil {
		if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, interpreter.InterruptError{})) {
			return nil, ctx.Err()
		}
		msg := err.Error()
		var c interpreter.EvalCancelledError
		if errors.As(err, &c) && c.Cause == interpreter.CostLimitExceeded {
			msg = fmt.Sprintf("exceeded the cost limit (%d)", CostLimit)
		}
		return nil, &ExprError{Expr: e.src, Message: msg}
	}
	return out, nil
}

// EvalBool evaluates an expression that must give a bool.
func (e *Expr) EvalBool(ctx context.Context, vars *Vars) (bool, error) {
	v, err := e.Eval(ctx, vars)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, &ExprError{Expr: e.src, Message: fmt.Sprintf("must give a bool, gave %s", typeName(v))}
	}
	return bool(b), nil
}

// EvalList evaluates an expression that must give a list, and returns its elements as
// JSON values.
func (e *Expr) EvalList(ctx context.Context, vars *Vars) ([]any, error) {
	v, err := e.Eval(ctx, vars)
	if err != nil {
		return nil, err
	}
	if _, ok := v.(interface{ Size() ref.Val }); !ok || v.Type() != types.ListType {
		return nil, &ExprError{Expr: e.src, Message: fmt.Sprintf("must give a list, gave %s", typeName(v))}
	}
	native, err := ToJSONValue(v)
	if err != nil {
		return nil, &ExprError{Expr: e.src, Message: err.Error()}
	}
	list, _ := native.([]any)
	if list == nil {
		list = []any{}
	}
	return list, nil
}

// EvalJSON evaluates the expression and appends its value as JSON to buf.
func (e *Expr) EvalJSON(ctx context.Context, vars *Vars, buf []byte) ([]byte, error) {
	v, err := e.Eval(ctx, vars)
	if err != nil {
		return buf, err
	}
	out, err := appendVal(buf, v)
	if err != nil {
		return buf, &ExprError{Expr: e.src, Message: err.Error()}
	}
	return out, nil
}

func typeName(v ref.Val) string {
	if v == nil {
		return "nothing"
	}
	if v.Type() == types.NullType {
		return "null"
	}
	return v.Type().TypeName()
}
