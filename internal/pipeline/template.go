package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"cel.dev/cel-go/cel"
)

// Template is a compiled JSON template: a string that is exactly "${<expr>}" becomes the
// expression's value, every other value is literal, recursively (object keys are always
// literal). It renders compact JSON with sorted keys. Immutable, safe for concurrent use.
type Template struct {
	lit   []byte // the whole rendering when the template has no expression
	root  *tnode
	exprs []*Expr
}

type tnode struct {
	lit   []byte   // a literal subtree, already encoded
	expr  *Expr    // or an expression
	keys  [][]byte // or an object: encoded keys ("k":), sorted, with their values in elems
	elems []*tnode // or an array's elements
	obj   bool
}

// exprOf returns the expression of a template string "${...}".
func exprOf(s string) (string, bool) {
	if len(s) >= 3 && strings.HasPrefix(s, "${") && strings.HasSuffix(s, "}") {
		return s[2 : len(s)-1], true
	}
	return "", false
}

// compileTemplate compiles raw (valid JSON). Problems are reported as errors for the user,
// one per bad expression.
func compileTemplate(env *cel.Env, raw json.RawMessage) (*Template, []error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, []error{fmt.Errorf("not valid JSON: %v", err)}
	}
	t := &Template{}
	var errs []error
	t.root = t.node(env, v, &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	if t.root.lit != nil {
		t.lit = t.root.lit
	}
	return t, nil
}

func (t *Template) node(env *cel.Env, v any, errs *[]error) *tnode {
	switch x := v.(type) {
	case string:
		src, ok := exprOf(x)
		if !ok {
			return &tnode{lit: appendString(nil, x)}
		}
		if strings.Contains(src, "${") {
			*errs = append(*errs, fmt.Errorf("%q: a template string is either exactly \"${expression}\" or literal text; "+
				"to join values write one expression, e.g. \"${a + ' ' + b}\"", x))
			return &tnode{lit: []byte("null")}
		}
		e, err := compileExpr(env, src, anyValue)
		if err != nil {
			*errs = append(*errs, err)
			return &tnode{lit: []byte("null")}
		}
		t.exprs = append(t.exprs, e)
		return &tnode{expr: e}
	case []any:
		n := &tnode{elems: make([]*tnode, len(x))}
		literal := true
		for i, el := range x {
			n.elems[i] = t.node(env, el, errs)
			literal = literal && n.elems[i].lit != nil
		}
		if literal {
			return &tnode{lit: mustCanonical(x)}
		}
		return n
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		n := &tnode{obj: true, keys: make([][]byte, len(keys)), elems: make([]*tnode, len(keys))}
		literal := true
		for i, k := range keys {
			n.keys[i] = append(appendString(nil, k), ':')
			n.elems[i] = t.node(env, x[k], errs)
			literal = literal && n.elems[i].lit != nil
		}
		if literal {
			return &tnode{lit: mustCanonical(x)}
		}
		return n
	}
	return &tnode{lit: mustCanonical(v)}
}

// mustCanonical encodes a decoded (UseNumber) JSON value; it cannot fail.
func mustCanonical(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("pipeline: encode a decoded JSON value: %v", err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Literal reports whether the template has no expression (its rendering is constant).
func (t *Template) Literal() bool { return t.lit != nil }

// Exprs are the template's expressions in document order (object keys sorted).
func (t *Template) Exprs() []*Expr { return t.exprs }

// StepRefs is the union of its expressions' StepRefs.
func (t *Template) StepRefs() (ids []string, all bool) {
	return unionRefs(t.exprs)
}

// UsesInput reports whether an expression of the template reads the run's input.
func (t *Template) UsesInput() bool {
	for _, e := range t.exprs {
		if e.usesInput {
			return true
		}
	}
	return false
}

func unionRefs(exprs []*Expr) ([]string, bool) {
	seen := map[string]bool{}
	var ids []string
	all := false
	for _, e := range exprs {
		if e == nil {
			continue
		}
		all = all || e.allSteps
		for _, id := range e.refs {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	return ids, all
}

// Render appends the template's JSON to buf. An expression that fails gives an
// *ExprError (its Where is for the caller to set), or ctx's error when ctx was canceled.
func (t *Template) Render(ctx context.Context, vars *Vars, buf []byte) ([]byte, error) {
	if t.lit != nil {
		return append(buf, t.lit...), nil
	}
	return t.root.render(ctx, vars, buf)
}

func (n *tnode) render(ctx context.Context, vars *Vars, buf []byte) ([]byte, error) {
	var err error
	switch {
	case n.lit != nil:
		return append(buf, n.lit...), nil
	case n.expr != nil:
		return n.expr.EvalJSON(ctx, vars, buf)
	case n.obj:
		buf = append(buf, '{')
		for i, el := range n.elems {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, n.keys[i]...)
			if buf, err = el.render(ctx, vars, buf); err != nil {
				return buf, err
			}
		}
		return append(buf, '}'), nil
	default:
		buf = append(buf, '[')
		for i, el := range n.elems {
			if i > 0 {
				buf = append(buf, ',')
			}
			if buf, err = el.render(ctx, vars, buf); err != nil {
				return buf, err
			}
		}
		return append(buf, ']'), nil
	}
}
