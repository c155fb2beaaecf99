package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
)

// Definition is a pipeline as the user wrote it (DESIGN.md §9). It is parsed strictly
// (Parse), checked (Validate), hashed (SHA256) and compiled (Compile); nothing here fills
// in defaults, so the canonical form round-trips what the user wrote.
type Definition struct {
	Name        string          `json:"name,omitempty"`
	Description string          `json:"description,omitempty"`
	Steps       []Step          `json:"steps"`
	Output      json.RawMessage `json:"output,omitempty"`     // template; nil = the last step's output
	TimeoutMS   int             `json:"timeout_ms,omitempty"` // whole run; 0 = none
}

// Step is one step: ID, optional If and Catch, and exactly one kind — a function call
// (the FunctionSpec fields), Map, Parallel, SleepMS or WaitFor.
type Step struct {
	ID    string `json:"id,omitempty"`
	If    string `json:"if,omitempty"`    // CEL; false → skipped
	Catch string `json:"catch,omitempty"` // on failure continue at this later step id
	FunctionSpec
	Map      *MapStep          `json:"map,omitempty"`
	Parallel map[string][]Step `json:"parallel,omitempty"`
	SleepMS  int               `json:"sleep_ms,omitempty"`
	WaitFor  *WaitFor          `json:"wait_for,omitempty"`
}

// FunctionSpec is a call of a registered function: the fields of a function step, and the
// whole of a map's item step.
type FunctionSpec struct {
	Function  string          `json:"function,omitempty"`
	Version   int             `json:"version,omitempty"`    // 0 = latest at run start
	Input     json.RawMessage `json:"input,omitempty"`      // template; nil = the default input
	TimeoutMS int             `json:"timeout_ms,omitempty"` // per attempt; 0 = the function's own
	Retry     *Retry          `json:"retry,omitempty"`
}

// Retry is a step's retry policy. Nil fields take the defaults (DefaultMaxAttempts,
// DefaultInitialIntervalMS, DefaultBackoff); pointers keep an explicit 0 apart from an
// omitted field, so both validate and round-trip as written.
type Retry struct {
	MaxAttempts       *int     `json:"max_attempts,omitempty"`
	InitialIntervalMS *int     `json:"initial_interval_ms,omitempty"`
	Backoff           *float64 `json:"backoff,omitempty"`
}

// Retry defaults for a step that has a retry object; a step without one is attempted once.
const (
	DefaultMaxAttempts       = 3
	DefaultInitialIntervalMS = 1000
	DefaultBackoff           = 2.0
	// MaxRetryIntervalMS caps one backoff delay (initial × backoff^n grows fast).
	MaxRetryIntervalMS = 3_600_000
)

// MapStep runs Step once per element of the list Items evaluates to.
type MapStep struct {
	Items          string       `json:"items"`
	MaxConcurrency int          `json:"max_concurrency,omitempty"` // 0 = DefaultMaxConcurrency
	Step           FunctionSpec `json:"step"`
}

// DefaultMaxConcurrency is a map's concurrency when max_concurrency is omitted.
const DefaultMaxConcurrency = 10

// WaitFor waits for a signal; OnTimeout (a literal, not a template) is the output when
// none arrives in time, and without it a timeout fails the step.
type WaitFor struct {
	Signal    string          `json:"signal"`
	TimeoutMS int             `json:"timeout_ms"`
	OnTimeout json.RawMessage `json:"on_timeout,omitempty"`
}

// StepKind names what a step does.
type StepKind string

// Step kinds.
const (
	KindFunction StepKind = "function"
	KindMap      StepKind = "map"
	KindParallel StepKind = "parallel"
	KindSleep    StepKind = "sleep"
	KindWait     StepKind = "wait_for"
)

// Kind is the step's kind, or "" when it has none or more than one.
func (s *Step) Kind() StepKind {
	var k StepKind
	n := 0
	if s.Function != "" {
		k, n = KindFunction, n+1
	}
	if s.Map != nil {
		k, n = KindMap, n+1
	}
	if s.Parallel != nil {
		k, n = KindParallel, n+1
	}
	if s.SleepMS != 0 {
		k, n = KindSleep, n+1
	}
	if s.WaitFor != nil {
		k, n = KindWait, n+1
	}
	if n != 1 {
		return ""
	}
	return k
}

// Branches returns a parallel step's branch names in sorted order, the order in which
// they are launched and reported.
func (s *Step) Branches() []string {
	names := make([]string, 0, len(s.Parallel))
	for name := range s.Parallel {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// HasWaits reports whether any step, parallel branches included, sleeps or waits for a
// signal: such a pipeline never runs sync.
func (d *Definition) HasWaits() bool {
	found := false
	walkSteps(d.Steps, func(s *Step) {
		if s.SleepMS != 0 || s.WaitFor != nil {
			found = true
		}
	})
	return found
}

// walkSteps calls fn for every step depth-first in definition order, branches sorted.
func walkSteps(steps []Step, fn func(*Step)) {
	for i := range steps {
		s := &steps[i]
		fn(s)
		for _, b := range s.Branches() {
			walkSteps(s.Parallel[b], fn)
		}
	}
}

// Canonical is the definition as compact JSON with sorted keys and no HTML escaping,
// templates included: key order and whitespace in what the user sent do not change it.
func (d *Definition) Canonical() ([]byte, error) {
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode definition: %w", err)
	}
	return canonicalJSON(raw)
}

// SHA256 is the hex SHA-256 of the canonical definition without its name: the version's
// identity, so registering the same definition again (under any name) gives the same hash.
func (d *Definition) SHA256() (string, error) {
	c := *d
	c.Name = ""
	b, err := c.Canonical()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// canonicalJSON re-encodes valid JSON compactly with object keys sorted, numbers as written.
func canonicalJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Parse decodes a definition strictly: unknown fields, a step with no kind or two, fields
// that do not belong to the step's kind and values of the wrong JSON type are problems
// naming the step. Every problem found is reported in one *ValidationError. Parse does not
// check what Validate checks (ids, expressions, functions, bounds).
func Parse(data []byte) (*Definition, error) {
	p := &problems{}
	if !json.Valid(data) {
		p.add("", "", "the definition is not valid JSON")
		return nil, p.err()
	}
	top, ok := decodeObject(p, "", "", data, "the definition")
	if !ok {
		return nil, p.err()
	}
	d := &Definition{}
	for _, k := range sortedKeys(top) {
		v := top[k]
		switch k {
		case "name":
			decodeString(p, "", "name", v, &d.Name)
		case "description":
			decodeString(p, "", "description", v, &d.Description)
		case "output":
			d.Output = v
		case "timeout_ms":
			decodePositive(p, "", "timeout_ms", v, &d.TimeoutMS)
		case "steps":
			d.Steps = parseSteps(p, v, "", "steps", "steps")
		default:
			p.add("", k, "unknown field %q", k)
		}
	}
	if _, ok := top["steps"]; !ok {
		p.add("", "steps", "steps is required")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return d, nil
}

// parseSteps parses a list of steps; loc and field name the list in problems, path
// prefixes the locations of its steps that have no id.
func parseSteps(p *problems, raw json.RawMessage, loc, field, path string) []Step {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		p.add(loc, field, "%s must be an array of steps", field)
		return nil
	}
	steps := make([]Step, len(items))
	for i, item := range items {
		parseStep(p, item, fmt.Sprintf("%s[%d]", path, i), &steps[i])
	}
	return steps
}

var (
	kindFields     = []string{"function", "map", "parallel", "sleep_ms", "wait_for"}
	functionFields = map[string]bool{"function": true, "version": true, "input": true, "timeout_ms": true, "retry": true}
)

func parseStep(p *problems, raw json.RawMessage, path string, s *Step) {
	obj, ok := decodeObject(p, path, "", raw, "step")
	if !ok {
		return
	}
	if v, ok := obj["id"]; ok {
		decodeString(p, path, "id", v, &s.ID)
	}
	loc := path
	if s.ID != "" {
		loc = s.ID
	}
	var kinds []string
	for _, k := range kindFields {
		if _, ok := obj[k]; ok {
			kinds = append(kinds, k)
		}
	}
	switch len(kinds) {
	case 0:
		p.add(loc, "", "a step needs exactly one of function, map, parallel, sleep_ms or wait_for")
	case 1:
	default:
		p.add(loc, kinds[1], "a step has exactly one kind; it has both %q and %q", kinds[0], kinds[1])
	}
	kind := ""
	if len(kinds) == 1 {
		kind = kinds[0]
	}
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		switch {
		case k == "id":
		case k == "if":
			if decodeString(p, loc, "if", v, &s.If) && s.If == "" {
				p.add(loc, "if", "if must be a CEL expression (omit it to always run the step)")
			}
		case k == "catch":
			if kind == "sleep_ms" || kind == "wait_for" {
				p.add(loc, "catch", "catch is only allowed on function, map and parallel steps")
			}
			if decodeString(p, loc, "catch", v, &s.Catch) && s.Catch == "" {
				p.add(loc, "catch", "catch must name a later step (omit it to fail the run)")
			}
		case functionFields[k]:
			if kind != "" && kind != "function" {
				p.add(loc, k, "%q is only allowed on a function step, not on a %s step", k, kindName(kind))
				continue
			}
			parseFunctionField(p, loc, "", k, v, &s.FunctionSpec)
		case k == "map":
			s.Map = parseMap(p, loc, v)
		case k == "parallel":
			s.Parallel = parseParallel(p, loc, v)
		case k == "sleep_ms":
			decodePositive(p, loc, "sleep_ms", v, &s.SleepMS)
		case k == "wait_for":
			s.WaitFor = parseWaitFor(p, loc, v)
		default:
			p.add(loc, k, "unknown field %q", k)
		}
	}
	if kind == "function" && s.Function == "" && !p.has(loc, "function") {
		p.add(loc, "function", "function must name a registered function")
	}
}

func kindName(field string) string {
	switch field {
	case "sleep_ms":
		return "sleep"
	case "wait_for":
		return "wait_for"
	}
	return field
}

func parseFunctionField(p *problems, loc, prefix, k string, v json.RawMessage, f *FunctionSpec) {
	field := prefix + k
	switch k {
	case "function":
		decodeString(p, loc, field, v, &f.Function)
	case "version":
		decodePositive(p, loc, field, v, &f.Version)
	case "input":
		f.Input = v
	case "timeout_ms":
		decodePositive(p, loc, field, v, &f.TimeoutMS)
	case "retry":
		f.Retry = parseRetry(p, loc, field, v)
	}
}

func parseRetry(p *problems, loc, field string, raw json.RawMessage) *Retry {
	obj, ok := decodeObject(p, loc, field, raw, field)
	if !ok {
		return nil
	}
	r := &Retry{}
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		switch k {
		case "max_attempts":
			var n int
			if decodeInt(p, loc, field+"."+k, v, &n) {
				r.MaxAttempts = &n
			}
		case "initial_interval_ms":
			var n int
			if decodeInt(p, loc, field+"."+k, v, &n) {
				r.InitialIntervalMS = &n
			}
		case "backoff":
			var f float64
			if err := json.Unmarshal(v, &f); err != nil {
				p.add(loc, field+"."+k, "%s.%s must be a number", field, k)
			} else {
				r.Backoff = &f
			}
		default:
			p.add(loc, field+"."+k, "unknown field %q in %s", k, field)
		}
	}
	return r
}

func parseMap(p *problems, loc string, raw json.RawMessage) *MapStep {
	obj, ok := decodeObject(p, loc, "map", raw, "map")
	if !ok {
		return &MapStep{}
	}
	m := &MapStep{}
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		switch k {
		case "items":
			decodeString(p, loc, "map.items", v, &m.Items)
		case "max_concurrency":
			decodePositive(p, loc, "map.max_concurrency", v, &m.MaxConcurrency)
		case "step":
			inner, ok := decodeObject(p, loc, "map.step", v, "map.step")
			if !ok {
				continue
			}
			for _, ik := range sortedKeys(inner) {
				switch {
				case functionFields[ik]:
					parseFunctionField(p, loc, "map.step.", ik, inner[ik], &m.Step)
				case ik == "id" || ik == "if" || ik == "catch":
					p.add(loc, "map.step."+ik, "map.step has no %s: it is the function call made for each item", ik)
				case ik == "map" || ik == "parallel" || ik == "sleep_ms" || ik == "wait_for":
					p.add(loc, "map.step."+ik, "map.step must be a function step, not %s", kindName(ik))
				default:
					p.add(loc, "map.step."+ik, "unknown field %q in map.step", ik)
				}
			}
			if m.Step.Function == "" && !p.has(loc, "map.step.function") {
				p.add(loc, "map.step.function", "map.step.function must name a registered function")
			}
		default:
			p.add(loc, "map."+k, "unknown field %q in map", k)
		}
	}
	if _, ok := obj["items"]; !ok {
		p.add(loc, "map.items", "map.items is required (a CEL expression giving a list)")
	}
	if _, ok := obj["step"]; !ok {
		p.add(loc, "map.step", "map.step is required")
	}
	return m
}

func parseParallel(p *problems, loc string, raw json.RawMessage) map[string][]Step {
	obj, ok := decodeObject(p, loc, "parallel", raw, "parallel")
	if !ok {
		return map[string][]Step{}
	}
	if len(obj) == 0 {
		p.add(loc, "parallel", "parallel needs at least one branch")
	}
	branches := make(map[string][]Step, len(obj))
	for _, name := range sortedKeys(obj) {
		steps := parseSteps(p, obj[name], loc, "parallel."+name, loc+".parallel."+name)
		if steps == nil {
			steps = []Step{}
		}
		branches[name] = steps
	}
	return branches
}

func parseWaitFor(p *problems, loc string, raw json.RawMessage) *WaitFor {
	obj, ok := decodeObject(p, loc, "wait_for", raw, "wait_for")
	if !ok {
		return &WaitFor{}
	}
	w := &WaitFor{}
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		switch k {
		case "signal":
			decodeString(p, loc, "wait_for.signal", v, &w.Signal)
		case "timeout_ms":
			decodePositive(p, loc, "wait_for.timeout_ms", v, &w.TimeoutMS)
		case "on_timeout":
			w.OnTimeout = v
		default:
			p.add(loc, "wait_for."+k, "unknown field %q in wait_for", k)
		}
	}
	if _, ok := obj["signal"]; !ok {
		p.add(loc, "wait_for.signal", "wait_for.signal is required")
	}
	if _, ok := obj["timeout_ms"]; !ok {
		p.add(loc, "wait_for.timeout_ms", "wait_for.timeout_ms is required")
	}
	return w
}

func decodeObject(p *problems, loc, field string, raw json.RawMessage, what string) (map[string]json.RawMessage, bool) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		p.add(loc, field, "%s must be a JSON object", what)
		return nil, false
	}
	return obj, true
}

func decodeString(p *problems, loc, field string, raw json.RawMessage, dst *string) bool {
	if err := json.Unmarshal(raw, dst); err != nil || bytes.Equal(raw, []byte("null")) {
		p.add(loc, field, "%s must be a string", field)
		return false
	}
	return true
}

func decodeInt(p *problems, loc, field string, raw json.RawMessage, dst *int) bool {
	if err := json.Unmarshal(raw, dst); err != nil || bytes.Equal(raw, []byte("null")) {
		p.add(loc, field, "%s must be an integer", field)
		return false
	}
	return true
}

// decodePositive decodes an optional integer whose zero means "not set": an explicit 0 or
// negative value is a problem here, because it would read as omitted afterwards.
func decodePositive(p *problems, loc, field string, raw json.RawMessage, dst *int) {
	if !decodeInt(p, loc, field, raw, dst) {
		return
	}
	if *dst <= 0 {
		p.add(loc, field, "%s must be a positive integer (omit it for the default)", field)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
