package cache

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// Canonical re-encodes a JSON document with sorted object keys and no insignificant
// whitespace; numbers keep their exact text. A document already in that form (the usual
// case: a client that sends compact JSON with sorted keys and no escapes) is returned as
// it is after one scan, without decoding it.
func Canonical(doc json.RawMessage) ([]byte, error) {
	if isCanonical(doc) {
		return doc, nil
	}
	return canonicalize(doc)
}

// canonicalize decodes doc and encodes it again the way encoding/json does: object keys
// sorted, strings escaped by its rules (HTML characters left as they are).
func canonicalize(doc json.RawMessage) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fault.Wrap(fault.Invalid, err, "event is not valid JSON")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// maxCanonicalDepth bounds the scan's nesting; deeper documents take the decoding path.
const maxCanonicalDepth = 64

// isCanonical reports whether doc is exactly one JSON value that canonicalize would return
// unchanged: no whitespace outside strings, object keys strictly increasing (so no
// duplicates), strings of valid UTF-8 without a backslash, a control character, U+2028 or
// U+2029 (every escape takes the decoding path, which normalises it), nothing after the
// value. It errs towards false: false only costs the decode.
func isCanonical(doc []byte) bool {
	end, ok := scanValue(doc, 0, 0)
	return ok && end == len(doc)
}

// scanValue checks the canonical value starting at doc[i] and returns the index after it.
func scanValue(doc []byte, i, depth int) (int, bool) {
	if i >= len(doc) {
		return 0, false
	}
	switch c := doc[i]; {
	case c == '{':
		return scanObject(doc, i+1, depth+1)
	case c == '[':
		return scanArray(doc, i+1, depth+1)
	case c == '"':
		return scanString(doc, i+1)
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(doc, i)
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if end := i + len(lit); end <= len(doc) && string(doc[i:end]) == lit {
			return end, true
		}
	}
	return 0, false
}

func scanObject(doc []byte, i, depth int) (int, bool) {
	if depth > maxCanonicalDepth {
		return 0, false
	}
	if i < len(doc) && doc[i] == '}' {
		return i + 1, true
	}
	var prev []byte
	for first := true; ; first = false {
		if i >= len(doc) || doc[i] != '"' {
			return 0, false
		}
		end, ok := scanString(doc, i+1)
		if !ok {
			return 0, false
		}
		key := doc[i+1 : end-1] // no escapes: the raw bytes are the key
		if !first && bytes.Compare(prev, key) >= 0 {
			return 0, false
		}
		prev = key
		if end >= len(doc) || doc[end] != ':' {
			return 0, false
		}
		if i, ok = scanValue(doc, end+1, depth); !ok {
			return 0, false
		}
		var done bool
		if i, done, ok = closeOrComma(doc, i, '}'); !ok || done {
			return i, ok
		}
	}
}

func scanArray(doc []byte, i, depth int) (int, bool) {
	if depth > maxCanonicalDepth {
		return 0, false
	}
	if i < len(doc) && doc[i] == ']' {
		return i + 1, true
	}
	for {
		var ok, done bool
		if i, ok = scanValue(doc, i, depth); !ok {
			return 0, false
		}
		if i, done, ok = closeOrComma(doc, i, ']'); !ok || done {
			return i, ok
		}
	}
}

// closeOrComma reads what follows a member of an object or array: closer ends it (done),
// a comma leads to the next member.
func closeOrComma(doc []byte, i int, closer byte) (next int, done, ok bool) {
	if i >= len(doc) {
		return 0, false, false
	}
	switch doc[i] {
	case closer:
		return i + 1, true, true
	case ',':
		return i + 1, false, true
	}
	return 0, false, false
}

// scanString checks a string's body from doc[i] (after the opening quote) and returns the
// index after its closing quote.
func scanString(doc []byte, i int) (int, bool) {
	for i < len(doc) {
		c := doc[i]
		switch {
		case c == '"':
			return i + 1, true
		case c == '\\' || c < 0x20:
			return 0, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(doc[i:])
			if r == utf8.RuneError || r == '\u2028' || r == '\u2029' {
				return 0, false
			}
			i += n
		}
	}
	return 0, false
}

// scanNumber checks a number by JSON's grammar; its text is kept as it is.
func scanNumber(doc []byte, i int) (int, bool) {
	if doc[i] == '-' {
		i++
	}
	switch {
	case i < len(doc) && doc[i] == '0':
		i++
	case i < len(doc) && doc[i] >= '1' && doc[i] <= '9':
		i = digits(doc, i)
	default:
		return 0, false
	}
	if i < len(doc) && doc[i] == '.' {
		j := digits(doc, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(doc) && (doc[i] == 'e' || doc[i] == 'E') {
		i++
		if i < len(doc) && (doc[i] == '+' || doc[i] == '-') {
			i++
		}
		j := digits(doc, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func digits(doc []byte, i int) int {
	for i < len(doc) && doc[i] >= '0' && doc[i] <= '9' {
		i++
	}
	return i
}
