package cache

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var canonicalCases = []struct {
	doc       string
	canonical bool // already in canonical form: the scan answers without decoding
}{
	{`{"n":1}`, true},
	{`{"a":"x","b":[1,2.50,-0,1e5,1E-5,0.5e+3],"c":{"d":null,"e":true,"f":false}}`, true},
	{`[]`, true},
	{`{}`, true},
	{`"héllo <&> wörld"`, true},
	{`12`, true},
	{`{"A":1,"a":2,"é":3}`, true},
	{`{"b":1,"a":2}`, false},  // unsorted keys
	{`{"a":1,"a":2}`, false},  // a duplicate key: the last one wins
	{`{"a": 1}`, false},       // whitespace
	{` {"a":1}`, false},       // leading whitespace
	{`{"a":1}` + "\n", false}, // trailing whitespace
	{`{"a":1}{"b":2}`, false}, // a second value: ignored by the decoder
	{`"a\"b"`, false},         // an escape (kept, but normalised by decoding)
	{`"\u00e9"`, false},       // an escape the encoder writes as the character
	{"\"a\u2028b\"", false},   // U+2028, which the encoder escapes
	{"\"a\xffb\"", false},     // invalid UTF-8, replaced by U+FFFD
	{`[1,]`, false},           // invalid
	{`{"a":01}`, false},       // invalid number
	{`{"a":1.}`, false},       // invalid number
	{`{"a":-}`, false},        // invalid number
	{`nul`, false},            // truncated literal
	{`{"a":1`, false},         // truncated
	{strings.Repeat("[", 100) + strings.Repeat("]", 100), false}, // deeper than the scan goes
}

// The scan's answer never changes a key: whenever it says a document is canonical, decoding
// and encoding it gives the same bytes, and Canonical agrees with the decoding path on
// every case.
func TestCanonicalFastPathAgreesWithDecoding(t *testing.T) {
	t.Parallel()
	for _, tc := range canonicalCases {
		require.Equal(t, tc.canonical, isCanonical([]byte(tc.doc)), "isCanonical(%q)", tc.doc)
		slow, slowErr := canonicalize(json.RawMessage(tc.doc))
		got, err := Canonical(json.RawMessage(tc.doc))
		require.Equal(t, slowErr == nil, err == nil, "%q: %v / %v", tc.doc, slowErr, err)
		require.Equal(t, string(slow), string(got), "%q", tc.doc)
		if tc.canonical {
			require.Equal(t, tc.doc, string(slow), "a document the scan accepts is its own canonical form")
		}
	}
}

func FuzzCanonical(f *testing.F) {
	for _, tc := range canonicalCases {
		f.Add([]byte(tc.doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		slow, slowErr := canonicalize(doc)
		if isCanonical(doc) {
			if slowErr != nil || !bytes.Equal(slow, doc) {
				t.Fatalf("scan accepted %q, decoding gives %q (%v)", doc, slow, slowErr)
			}
		}
		got, err := Canonical(doc)
		if (err == nil) != (slowErr == nil) || !bytes.Equal(got, slow) {
			t.Fatalf("Canonical(%q) = %q, %v; decoding gives %q, %v", doc, got, err, slow, slowErr)
		}
	})
}

// BenchmarkKey: a compact, sorted event (the scan) and the same event written otherwise
// (the decoding path).
func BenchmarkKey(b *testing.B) {
	for _, bc := range []struct{ name, doc string }{
		{"canonical", `{"n":1}`},
		{"canonical-larger", `{"items":[{"id":1,"qty":2},{"id":7,"qty":1}],"user":"ana","when":"2026-11-30T05:00:00Z"}`},
		{"reordered", `{"user": "ana", "items": [{"qty": 2, "id": 1}, {"qty": 1, "id": 7}], "when": "2026-11-30T05:00:00Z"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			doc := json.RawMessage(bc.doc)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Key("tenant", "0123456789abcdef", doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
