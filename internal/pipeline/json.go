package pipeline

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// DecodeJSON decodes a JSON document into the values expressions see: nil, bool, string,
// []any, map[string]any, and numbers as int64 when their value is integral and fits
// (3, 3.0, 1e3) — CEL ints, so users write input.n * 2 — else float64 (CEL doubles).
func DecodeJSON(data []byte) (any, error) {
	d := jsonDecoder{data: data}
	d.skipSpace()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return nil, d.errorf("unexpected data after the JSON value")
	}
	return v, nil
}

// maxJSONDepth bounds nesting so a hostile document cannot exhaust the stack.
const maxJSONDepth = 10000

type jsonDecoder struct {
	data []byte
	pos  int
}

func (d *jsonDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", d.pos, fmt.Sprintf(format, args...))
}

func (d *jsonDecoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *jsonDecoder) literal(word string, v any) (any, error) {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		return nil, d.errorf("unexpected character")
	}
	d.pos += len(word)
	return v, nil
}

func (d *jsonDecoder) value(depth int) (any, error) {
	if d.pos >= len(d.data) {
		return nil, d.errorf("unexpected end")
	}
	if depth > maxJSONDepth {
		return nil, d.errorf("nested too deeply")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		d.pos++
		m := map[string]any{}
		d.skipSpace()
		if d.pos < len(d.data) && d.data[d.pos] == '}' {
			d.pos++
			return m, nil
		}
		for {
			d.skipSpace()
			if d.pos >= len(d.data) || d.data[d.pos] != '"' {
				return nil, d.errorf("expected a string key")
			}
			k, err := d.str()
			if err != nil {
				return nil, err
			}
			d.skipSpace()
			if d.pos >= len(d.data) || d.data[d.pos] != ':' {
				return nil, d.errorf("expected ':'")
			}
			d.pos++
			d.skipSpace()
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m[k] = v
			d.skipSpace()
			if d.pos >= len(d.data) {
				return nil, d.errorf("unexpected end")
			}
			if d.data[d.pos] == ',' {
				d.pos++
				continue
			}
			if d.data[d.pos] == '}' {
				d.pos++
				return m, nil
			}
			return nil, d.errorf("expected ',' or '}'")
		}
	case c == '[':
		d.pos++
		l := []any{}
		d.skipSpace()
		if d.pos < len(d.data) && d.data[d.pos] == ']' {
			d.pos++
			return l, nil
		}
		for {
			d.skipSpace()
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			d.skipSpace()
			if d.pos >= len(d.data) {
				return nil, d.errorf("unexpected end")
			}
			if d.data[d.pos] == ',' {
				d.pos++
				continue
			}
			if d.data[d.pos] == ']' {
				d.pos++
				return l, nil
			}
			return nil, d.errorf("expected ',' or ']'")
		}
	case c == '"':
		return d.str()
	case c == 't':
		return d.literal("true", true)
	case c == 'f':
		return d.literal("false", false)
	case c == 'n':
		return d.literal("null", nil)
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return nil, d.errorf("unexpected character %q", d.data[d.pos])
}

func (d *jsonDecoder) number() (any, error) {
	start := d.pos
	integer := true
	if d.data[d.pos] == '-' {
		d.pos++
	}
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	if d.pos < len(d.data) && d.data[d.pos] == '0' {
		d.pos++
	} else if digits() == 0 {
		return nil, d.errorf("invalid number")
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		integer = false
		d.pos++
		if digits() == 0 {
			return nil, d.errorf("invalid number")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		integer = false
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return nil, d.errorf("invalid number")
		}
	}
	return numberValue(string(d.data[start:d.pos]), integer), nil
}

// numberValue is the CEL-friendly value of a JSON number literal.
func numberValue(s string, integer bool) any {
	if integer {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return math.NaN()
	}
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return int64(f)
	}
	return f
}

func (d *jsonDecoder) str() (string, error) {
	d.pos++ // opening quote
	start := d.pos
	ascii := true
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		if c == '"' {
			seg := d.data[start:d.pos]
			d.pos++
			if !ascii && !utf8.Valid(seg) {
				return validUTF8(seg), nil
			}
			return string(seg), nil
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
		if c == '\\' {
			return d.strSlow(start)
		}
		if c < 0x20 {
			return "", d.errorf("control character in string")
		}
		d.pos++
	}
	return "", d.errorf("unterminated string")
}

func (d *jsonDecoder) strSlow(start int) (string, error) {
	buf := append([]byte(nil), d.data[start:d.pos]...)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			if !utf8.Valid(buf) {
				return validUTF8(buf), nil
			}
			return string(buf), nil
		case c < 0x20:
			return "", d.errorf("control character in string")
		case c != '\\':
			buf = append(buf, c)
			d.pos++
			continue
		}
		d.pos++
		if d.pos >= len(d.data) {
			break
		}
		e := d.data[d.pos]
		d.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", d.errorf("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r = d.lowSurrogate(r)
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", d.errorf("invalid escape")
		}
	}
	return "", d.errorf("unterminated string")
}

// validUTF8 replaces each byte of invalid UTF-8 with U+FFFD, as encoding/json does.
func validUTF8(b []byte) string {
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			out = append(out, "\uFFFD"...)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return string(out)
}

// lowSurrogate completes a UTF-16 surrogate pair begun by hi, or gives U+FFFD (as
// encoding/json does) when the next escape does not complete it.
func (d *jsonDecoder) lowSurrogate(hi rune) rune {
	if len(d.data)-d.pos >= 6 && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
		save := d.pos
		d.pos += 2
		if lo, ok := d.hex4(); ok {
			if r := utf16.DecodeRune(hi, lo); r != utf8.RuneError {
				return r
			}
		}
		d.pos = save
	}
	return utf8.RuneError
}

func (d *jsonDecoder) hex4() (rune, bool) {
	if len(d.data)-d.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.data[d.pos : d.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	d.pos += 4
	return r, true
}

// AppendJSON appends v — a JSON value as DecodeJSON returns it, a json.RawMessage, or a
// CEL value — as compact JSON with sorted object keys.
func AppendJSON(buf []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...), nil
	case bool:
		return strconv.AppendBool(buf, x), nil
	case int64:
		return strconv.AppendInt(buf, x, 10), nil
	case int:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(buf, x, 10), nil
	case float64:
		return appendFloat(buf, x)
	case string:
		return appendString(buf, x), nil
	case []any:
		buf = append(buf, '[')
		for i, el := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = AppendJSON(buf, el); err != nil {
				return buf, err
			}
		}
		return append(buf, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, k)
			buf = append(buf, ':')
			var err error
			if buf, err = AppendJSON(buf, x[k]); err != nil {
				return buf, err
			}
		}
		return append(buf, '}'), nil
	case json.RawMessage:
		if len(x) == 0 {
			return append(buf, "null"...), nil
		}
		return append(buf, x...), nil
	case ref.Val:
		return appendVal(buf, x)
	}
	return buf, fmt.Errorf("cannot encode %T as JSON", v)
}

// appendVal appends a CEL value as JSON: ints stay integers; bytes become base64,
// timestamps RFC 3339 strings, durations strings such as "1.5s"; an optional is its value
// or null.
func appendVal(buf []byte, v ref.Val) ([]byte, error) {
	switch x := v.(type) {
	case types.Null:
		return append(buf, "null"...), nil
	case types.Bool:
		return strconv.AppendBool(buf, bool(x)), nil
	case types.Int:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case types.Uint:
		return strconv.AppendUint(buf, uint64(x), 10), nil
	case types.Double:
		return appendFloat(buf, float64(x))
	case types.String:
		return appendString(buf, string(x)), nil
	case types.Bytes:
		return appendString(buf, base64.StdEncoding.EncodeToString(x)), nil
	case types.Timestamp:
		return appendString(buf, x.Time.UTC().Format(time.RFC3339Nano)), nil
	case types.Duration:
		return appendString(buf, strconv.FormatFloat(x.Duration.Seconds(), 'f', -1, 64)+"s"), nil
	case *types.Optional:
		if !x.HasValue() {
			return append(buf, "null"...), nil
		}
		return appendVal(buf, x.GetValue())
	case *types.Err:
		return buf, x
	case *types.Unknown:
		return buf, errors.New("the value is unknown")
	}
	switch native := v.Value().(type) {
	case map[string]any, []any:
		return AppendJSON(buf, native)
	}
	if l, ok := v.(traits.Lister); ok && v.Type() == types.ListType {
		n, _ := l.Size().(types.Int)
		buf = append(buf, '[')
		for i := types.Int(0); i < n; i++ {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = appendVal(buf, l.Get(i)); err != nil {
				return buf, err
			}
		}
		return append(buf, ']'), nil
	}
	if m, ok := v.(traits.Mapper); ok && v.Type() == types.MapType {
		type entry struct {
			k string
			v ref.Val
		}
		var entries []entry
		for it := m.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			ks, ok := k.(types.String)
			if !ok {
				return buf, fmt.Errorf("a map key must be a string to become JSON, not %s", typeName(k))
			}
			entries = append(entries, entry{string(ks), m.Get(k)})
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].k < entries[j].k })
		buf = append(buf, '{')
		for i, e := range entries {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, e.k)
			buf = append(buf, ':')
			var err error
			if buf, err = appendVal(buf, e.v); err != nil {
				return buf, err
			}
		}
		return append(buf, '}'), nil
	}
	if t, ok := v.(ref.Type); ok {
		return appendString(buf, t.TypeName()), nil
	}
	return buf, fmt.Errorf("a %s cannot become JSON", typeName(v))
}

// ToJSONValue converts a CEL value to a JSON value as DecodeJSON returns it.
func ToJSONValue(v ref.Val) (any, error) {
	switch x := v.(type) {
	case types.Null:
		return nil, nil
	case types.Bool:
		return bool(x), nil
	case types.Int:
		return int64(x), nil
	case types.Uint:
		return uint64(x), nil
	case types.Double:
		return float64(x), nil
	case types.String:
		return string(x), nil
	}
	switch native := v.Value().(type) {
	case map[string]any, []any:
		return native, nil
	}
	if l, ok := v.(traits.Lister); ok && v.Type() == types.ListType {
		n, _ := l.Size().(types.Int)
		out := make([]any, n)
		for i := types.Int(0); i < n; i++ {
			el, err := ToJSONValue(l.Get(i))
			if err != nil {
				return nil, err
			}
			out[i] = el
		}
		return out, nil
	}
	// Anything else: through its JSON form.
	b, err := appendVal(nil, v)
	if err != nil {
		return nil, err
	}
	return DecodeJSON(b)
}

// appendFloat formats like encoding/json; NaN and infinities have no JSON form.
func appendFloat(buf []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return buf, fmt.Errorf("%v has no JSON form", f)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	buf = strconv.AppendFloat(buf, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(buf)
		if n >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
			buf[n-2] = buf[n-1]
			buf = buf[:n-1]
		}
	}
	return buf, nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping what JSON requires plus U+2028/2029,
// without HTML escaping; invalid UTF-8 becomes U+FFFD.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
