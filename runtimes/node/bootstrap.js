'use strict';
// Node.js worker bootstrap of the lambda-microservice runtime host.
//
// Protocol (runtimes/README.md): frames of a 4-byte big-endian length and a JSON document,
// requests on fd 3, responses on fd 4. The worker announces itself with a hello frame, is
// bound to ONE script by an init frame, then answers invoke frames until the host kills it.
// After every invocation it writes the host's sentinel to stdout and stderr so the host can
// split the captured output per execution.

const fs = require('fs');
const net = require('net');
const path = require('path');
const vm = require('vm');
const Module = require('module');

const BOOTSTRAP = __filename;
const WRAPPER_PARAMS = ['exports', 'require', 'module', '__filename', '__dirname'];

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

class Context {
  constructor(executionId, init, deadlineMs) {
    this.execution_id = executionId;
    this.function = init.function || '';
    this.version = init.version || 0;
    this.deadline_ms = deadlineMs;
    this.memory_mb = init.memory_mb || 0;
  }
  get executionId() { return this.execution_id; }
  get functionName() { return this.function; }
  get functionVersion() { return this.version; }
  get deadlineMs() { return this.deadline_ms; }
  get memoryLimitInMB() { return this.memory_mb; }
  getRemainingTimeInMillis() { return Math.max(0, Math.floor(this.deadline_ms - Date.now())); }
}

function cleanStack(stack) {
  if (typeof stack !== 'string') return '';
  return stack.split('\n')
    .filter((l) => !l.includes(BOOTSTRAP) && !l.includes('(node:internal/') && !l.includes(' node:internal/'))
    .join('\n');
}

function errorDoc(err, fallbackType) {
  if (err instanceof Error || (err && typeof err === 'object' && 'stack' in err)) {
    let type = err.name && err.name !== 'Error' ? err.name : (err.constructor && err.constructor.name) || 'Error';
    return { type: String(type), message: String(err.message ?? ''), stack: cleanStack(err.stack) };
  }
  let message;
  try { message = typeof err === 'string' ? err : JSON.stringify(err); } catch (_) { message = String(err); }
  return { type: fallbackType || 'Error', message: String(message), stack: '' };
}

let init = null;
let handler = null;
let sentinel = null;
let current = null; // the invocation in flight: { done }

const stdout = process.stdout;
const stderr = process.stderr;

// endOutput writes the sentinel after everything the invocation printed, then calls then.
// Writes to a pipe that were queued (a full pipe) complete asynchronously: the sentinel then
// goes through the same stream so it lands after them.
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

function finish(inv, text) {
  if (inv.done) return;
  inv.done = true;
  if (current === inv) current = null;
  endOutput(() => writeFrame(text));
}

function failed(err, fallbackType) {
  return JSON.stringify({ type: 'result', status: 'failed', error: errorDoc(err, fallbackType) });
}

function succeeded(value) {
  try {
    const json = JSON.stringify(value === undefined ? null : value);
    return '{"type":"result","status":"succeeded","result":' + (json === undefined ? 'null' : json) + '}';
  } catch (e) {
    return failed(e);
  }
}

// The reply waits one turn of the event loop so a rejection the handler left unhandled
// fails this invocation rather than a later one.
function finishSoon(inv, text) {
  setImmediate(() => finish(inv, text));
}

process.on('unhandledRejection', (reason) => {
  if (current) finish(current, failed(reason, 'UnhandledRejection'));
  else console.error('Unhandled promise rejection:', reason);
});
process.on('uncaughtException', (err) => {
  if (current) finish(current, failed(err, 'UncaughtException'));
  else console.error('Uncaught exception:', err);
});

function load(msg) {
  Object.assign(process.env, msg.env || {});
  // The version's installed dependencies (the registry entry's runtime_env): NODE_PATH is
  // read when node starts, before the script was known; read it again now.
  if (process.env.NODE_PATH) Module._initPaths();
  sentinel = Buffer.from(msg.sentinel, 'utf8');
  const source = msg.source;
  let text = fs.readFileSync(source, 'utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.startsWith('#!')) text = '//' + text.slice(2);
  let fn;
  try {
    fn = vm.compileFunction(text, WRAPPER_PARAMS, { filename: source });
  } catch (e) {
    const stack = String(e && e.stack || e);
    const cut = stack.indexOf('\n    at ');
    return { error: { type: 'CompileError', message: cut >= 0 ? stack.slice(0, cut) : stack, stack: '' }, compile: true };
  }
  const mod = new Module(source, null);
  mod.filename = source;
  mod.paths = Module._nodeModulePaths(path.dirname(source));
  try {
    fn.call(mod.exports, mod.exports, Module.createRequire(source), mod, source, path.dirname(source));
  } catch (e) {
    return { error: errorDoc(e), compile: false };
  }
  mod.loaded = true;
  let h = mod.exports;
  if (typeof h !== 'function') h = h && h.handler;
  if (typeof h !== 'function') {
    return { error: { type: 'HandlerNotFound', message: 'the script exports no handler: use exports.handler = async (event, context) => ...', stack: '' }, compile: false };
  }
  handler = h;
  return null;
}

function onFrame(msg) {
  if (msg.type === 'invoke') {
    const inv = { done: false };
    current = inv;
    let ret;
    try {
      ret = handler(msg.event, new Context(msg.execution_id, init, msg.deadline_ms));
    } catch (e) {
      finishSoon(inv, failed(e));
      return;
    }
    if (ret && typeof ret.then === 'function') {
      ret.then((v) => finishSoon(inv, succeeded(v)), (e) => finishSoon(inv, failed(e, 'Rejection')));
    } else {
      finishSoon(inv, succeeded(ret));
    }
  } else if (msg.type === 'init' && init === null) {
    init = msg;
    const bad = load(msg);
    if (bad) {
      endOutput(() => {
        writeFrame(JSON.stringify({ type: 'init_error', compile: bad.compile, error: bad.error }));
        process.exit(0);
      });
      return;
    }
    writeFrame('{"type":"ready"}');
  } else {
    console.error('bootstrap: unexpected frame', msg.type);
    process.exit(70);
  }
}

// Frames arrive on fd 3; chunks are joined until a whole frame is there.
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
