'use strict';
// Node.js session bootstrap of the lambda-microservice runtime host (a notebook kernel).
//
// Same frames as bootstrap.js (runtimes/README.md): a hello frame, one init frame (sentinel,
// env), then one "cell" frame at a time, each answered by a result frame after the sentinel
// was written to stdout and stderr. Every cell runs as a script in one vm context that lives
// as long as the process, so top-level declarations persist across cells; the completion
// value of the cell (its trailing expression) is the result. A cell using top-level await
// is rewritten the way Node's own REPL does it (declarations hoisted into the context, the
// trailing expression returned) and awaited.

const fs = require('fs');
const net = require('net');
const path = require('path');
const vm = require('vm');
const util = require('util');
const Module = require('module');

let processTopLevelAwait = null;
try {
  // The REPL's transform; present when node runs with --expose-internals.
  ({ processTopLevelAwait } = require('internal/repl/await'));
} catch (_) {
  processTopLevelAwait = null;
}

const BOOTSTRAP = __filename;

function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

function writeFrame(text) {
  const n = Buffer.byteLength(text, 'utf8');
  const buf = Buffer.allocUnsafe(4 + n);
  buf.writeUInt32BE(n, 0);
  buf.write(text, 4, 'utf8');
  writeAll(4, buf);
}

function cleanStack(stack) {
  if (typeof stack !== 'string') return '';
  return stack.split('\n')
    .filter((l) => !l.includes(BOOTSTRAP) && !l.includes('(node:') && !l.includes(' node:'))
    .join('\n');
}

function errorDoc(err, fallbackType) {
  if (err && typeof err === 'object' && 'stack' in err) {
    const type = err.name && err.name !== 'Error' ? err.name : (err.constructor && err.constructor.name) || 'Error';
    return { type: String(type), message: String(err.message ?? ''), stack: cleanStack(err.stack) };
  }
  let message;
  try { message = typeof err === 'string' ? err : JSON.stringify(err); } catch (_) { message = String(err); }
  return { type: fallbackType || 'Error', message: String(message), stack: '' };
}

function succeeded(value) {
  let json;
  try {
    json = value === undefined ? 'null' : JSON.stringify(value);
  } catch (_) {
    json = undefined;
  }
  if (json === undefined) json = JSON.stringify(util.inspect(value)); // a function, a cycle, a BigInt
  return '{"type":"result","status":"succeeded","result":' + json + '}';
}

function failed(err, fallbackType) {
  return JSON.stringify({ type: 'result', status: 'failed', error: errorDoc(err, fallbackType) });
}

let sentinel = null;
let context = null;
let count = 0;
let current = null; // the cell in flight: { done }

const stdout = process.stdout;
const stderr = process.stderr;

function endOutput(then) {
  if (stdout.writableLength === 0 && stderr.writableLength === 0) {
    writeAll(1, sentinel);
    writeAll(2, sentinel);
    then();
    return;
  }
  let pending = 2;
  const done = () => { if (--pending === 0) then(); };
  stdout.write(sentinel, done);
  stderr.write(sentinel, done);
}

function finish(c, text) {
  if (c.done) return;
  c.done = true;
  if (current === c) current = null;
  setImmediate(() => endOutput(() => writeFrame(text)));
}

process.on('unhandledRejection', (reason) => {
  if (current) finish(current, failed(reason, 'UnhandledRejection'));
  else console.error('Unhandled promise rejection:', reason);
});
process.on('uncaughtException', (err) => {
  if (current) finish(current, failed(err, 'UncaughtException'));
  else console.error('Uncaught exception:', err);
});

function newContext() {
  const dir = process.cwd();
  const mod = new Module(path.join(dir, '[session]'), null);
  mod.filename = path.join(dir, '[session]');
  mod.paths = Module._nodeModulePaths(dir);
  const sandbox = {
    console, process, Buffer, URL, URLSearchParams, TextEncoder, TextDecoder, AbortController,
    setTimeout, clearTimeout, setInterval, clearInterval, setImmediate, clearImmediate,
    queueMicrotask, structuredClone, fetch: globalThis.fetch,
    require: Module.createRequire(mod.filename), module: mod, exports: mod.exports,
  };
  return vm.createContext(sandbox, { name: 'session' });
}

function runCell(source) {
  count += 1;
  const filename = `cell${count}`;
  const c = { done: false };
  current = c;
  let value;
  try {
    let script;
    try {
      script = new vm.Script(source, { filename });
    } catch (e) {
      const wrapped = e instanceof SyntaxError && processTopLevelAwait ? processTopLevelAwait(source) : null;
      if (wrapped === null) throw e;
      script = new vm.Script(wrapped, { filename });
      const p = script.runInContext(context, { displayErrors: true });
      Promise.resolve(p).then(
        (r) => finish(c, succeeded(r && typeof r === 'object' && 'value' in r ? r.value : undefined)),
        (err) => finish(c, failed(err, 'Rejection')));
      return;
    }
    value = script.runInContext(context, { displayErrors: true });
  } catch (e) {
    finish(c, failed(e));
    return;
  }
  finish(c, succeeded(value));
}

function onFrame(msg) {
  if (msg.type === 'cell' && context !== null) {
    runCell(String(msg.source ?? ''));
  } else if (msg.type === 'init' && context === null) {
    Object.assign(process.env, msg.env || {});
    sentinel = Buffer.from(msg.sentinel, 'utf8');
    context = newContext();
    writeFrame('{"type":"ready"}');
  } else {
    console.error('session: unexpected frame', msg.type);
    process.exit(70);
  }
}

let pending = Buffer.alloc(0);
const input = new net.Socket({ fd: 3, readable: true, writable: false });
input.on('data', (chunk) => {
  pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
  while (pending.length >= 4) {
    const n = pending.readUInt32BE(0);
    if (pending.length < 4 + n) break;
    const body = pending.toString('utf8', 4, 4 + n);
    pending = pending.subarray(4 + n);
    onFrame(JSON.parse(body));
  }
});
input.on('end', () => process.exit(0));
input.on('error', () => process.exit(0));

writeFrame(JSON.stringify({ type: 'hello', pid: process.pid }));
