package runtimehost_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

var nodeCases = langCases{
	registry: bundledRegistry,
	title:    "node",
	add: `exports.handler = async (event, context) => ({ sum: event.a + event.b });
`,
	output: `const { spawnSync } = require('child_process');
exports.handler = (event) => {
  console.log('out-' + event.tag);
  console.error('err-' + event.tag);
  spawnSync('sh', ['-c', 'echo native-' + event.tag], { stdio: 'inherit' });
  return event.tag;
};
`,
	raise: `class Boom extends Error {
  constructor(message) { super(message); this.name = 'Boom'; }
}
function helper() { throw new Boom('kaboom'); }
exports.handler = async () => helper();
`,
	raiseType: "Boom",
	sleep: `exports.handler = (event) => new Promise((resolve) => setTimeout(() => resolve('slept'), event.ms));
`,
	exit: `exports.handler = (event) => {
  if (event.exit) process.exit(3);
  return 'alive';
};
`,
	bigPrint: `exports.handler = (event) => {
  process.stdout.write('x'.repeat(event.n));
  return event.n;
};
`,
	syntax: `exports.handler = (event) => {
  let x = ;
};
`,
	comment:  "//",
	syntaxAt: "handler.js:2",
	async: `exports.handler = async () => {
  await new Promise((resolve) => setTimeout(resolve, 10));
  return 'async';
};
`,
	envProbe: `module.exports = () => ({
  secret: process.env.LAMBDA_TEST_SECRET ?? null,
  db: process.env.DATABASE_URL ?? null,
  lambda: Object.keys(process.env).filter((k) => k.startsWith('LAMBDA')),
  mine: process.env.MY_VAR,
});
`,
	isoA: `const fs = require('fs'), os = require('os'), path = require('path');
let calls = 0;
exports.handler = () => {
  globalThis.LEAKED = 'from-a';
  fs.writeFileSync(path.join(os.tmpdir(), 'leak.txt'), 'a');
  return ++calls;
};
`,
	isoB: `const fs = require('fs'), os = require('os'), path = require('path');
exports.handler = () => ({ global: globalThis.LEAKED ?? null, file: fs.existsSync(path.join(os.tmpdir(), 'leak.txt')) });
`,
}

func TestNode(t *testing.T) {
	t.Parallel()
	runLanguageSuite(t, nodeCases)
}

// TestNodeFailures covers the ways a promise can fail.
func TestNodeFailures(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bundledRegistry, "node", "", nil)
	tests := []struct {
		name, src, typ, msg string
	}{
		{"rejected promise", `exports.handler = () => Promise.reject(new TypeError('nope'));`, "TypeError", "nope"},
		{"sync throw", `module.exports = function () { throw new RangeError('sync'); };`, "RangeError", "sync"},
		{"thrown string", `exports.handler = async () => { throw 'just a string'; };`, "Rejection", "just a string"},
		{"unhandled rejection", `exports.handler = () => new Promise(() => { setTimeout(() => { Promise.reject(new Error('late')); }, 1); });`, "Error", "late"},
		{"uncaught exception", `exports.handler = () => new Promise(() => { setTimeout(() => { throw new SyntaxError('in a timer'); }, 1); });`, "SyntaxError", "in a timer"},
		{"unserialisable result", `exports.handler = () => ({ n: 10n });`, "TypeError", "BigInt"},
		{"no handler", `exports.other = () => 1;`, "HandlerNotFound", "no handler"},
		{"top-level error", `throw new Error('at load');`, "Error", "at load"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for range 2 {
				r := h.ok(t, "fail", tt.src, map[string]any{}, "failed", nil)
				require.Equal(t, tt.typ, r.Error.Type, "%+v", r.Error)
				require.Contains(t, r.Error.Message, tt.msg)
			}
		})
	}
	t.Run("worker survives a failure", func(t *testing.T) {
		t.Parallel()
		src := `exports.handler = (e) => { if (e.fail) return Promise.reject(new Error('x')); return 'ok'; };`
		h.ok(t, "survive", src, map[string]bool{"fail": true}, "failed", nil)
		r := h.ok(t, "survive", src, map[string]bool{"fail": false}, "succeeded", nil)
		require.False(t, r.Cold)
	})
	t.Run("context", func(t *testing.T) {
		t.Parallel()
		src := `exports.handler = (e, ctx) => ({ id: ctx.execution_id, fn: ctx.functionName, v: ctx.version, left: ctx.getRemainingTimeInMillis() > 0 });`
		code, r := h.call(t, "ctx-fn", src, nil, map[string]any{"execution_id": "e-1", "version": 7})
		require.Equal(t, http.StatusOK, code)
		require.JSONEq(t, `{"id":"e-1","fn":"ctx-fn","v":7,"left":true}`, string(r.Result))
	})
}
