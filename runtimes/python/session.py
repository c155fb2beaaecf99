"""Python session bootstrap of the lambda-microservice runtime host (a notebook kernel).

Same frames as bootstrap.py (runtimes/README.md): a hello frame, one init frame (sentinel,
env, memory_mb), then one "cell" frame at a time, each answered by a result frame after the
sentinel was written to stdout and stderr. The cells run at module level in one namespace
that lives as long as the process: what a cell defines, the next cells see. When a cell ends
with an expression, that expression is evaluated on its own and its value is the cell's
result (None → null; a value JSON cannot encode → its repr() as a string). Top-level await
works (the compile flag PyCF_ALLOW_TOP_LEVEL_AWAIT, on one event loop per session).
"""

import ast
import io
import json
import linecache
import os
import sys
import traceback
import types

_requests = io.open(3, "rb", buffering=65536, closefd=False)
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_FLAGS = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
_CO_COROUTINE = 0x80

try:  # flushes C stdio buffers of native extensions after each cell
    import ctypes

    _fflush = ctypes.CDLL(None).fflush
    _fflush.argtypes = [ctypes.c_void_p]
except Exception:  # pragma: no cover
    _fflush = None


def read_frame():
    hdr = _requests.read(4)
    if len(hdr) < 4:
        os._exit(0)
    n = int.from_bytes(hdr, "big")
    body = _requests.read(n)
    if len(body) < n:
        os._exit(0)
    return json.loads(body)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_frame(text):
    data = text.encode("utf-8", "surrogateescape")
    write_all(4, len(data).to_bytes(4, "big") + data)


def end_output(sentinel):
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    if _fflush is not None:
        _fflush(None)
    write_all(1, sentinel)
    write_all(2, sentinel)


def error_doc(exc, filename):
    """{type, message, stack}: the traceback from the cell's first frame on."""
    tb = exc.__traceback__
    first = tb
    while first is not None and first.tb_frame.f_code.co_filename != filename:
        first = first.tb_next
    if first is None:
        first = tb
        while first is not None and first.tb_frame.f_code.co_filename == __file__:
            first = first.tb_next
    if isinstance(exc, SyntaxError):
        stack = "".join(traceback.format_exception_only(type(exc), exc))
    else:
        stack = "".join(traceback.format_exception(type(exc), exc, first))
    try:
        message = str(exc)
    except Exception:
        message = repr(exc)
    return {"type": type(exc).__name__, "message": message, "stack": stack}


def encode_result(value):
    if value is None:
        return "null"
    try:
        return _dumps(value)
    except (TypeError, ValueError):
        return _dumps(repr(value))


class Kernel:
    def __init__(self):
        self.module = types.ModuleType("__main__")
        self.module.__dict__["__builtins__"] = __builtins__
        sys.modules["__main__"] = self.module
        self.loop = None
        self.count = 0

    def run_code(self, code):
        ns = self.module.__dict__
        if code.co_flags & _CO_COROUTINE:
            if self.loop is None:
                import asyncio

                self.loop = asyncio.new_event_loop()
                asyncio.set_event_loop(self.loop)
            return self.loop.run_until_complete(eval(code, ns))
        return eval(code, ns)

    def cell(self, source):
        self.count += 1
        filename = "<cell %d>" % self.count
        # Tracebacks show the cell's lines.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            tree = ast.parse(source, filename, "exec")
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            value = None
            if tree.body:
                self.run_code(compile(tree, filename, "exec", flags=_FLAGS, dont_inherit=True))
            if last is not None:
                value = self.run_code(compile(last, filename, "eval", flags=_FLAGS, dont_inherit=True))
            return '{"type":"result","status":"succeeded","result":' + encode_result(value) + "}"
        except BaseException as exc:  # SystemExit and KeyboardInterrupt end the cell, not the kernel
            return _dumps({"type": "result", "status": "failed", "error": error_doc(exc, filename)})


def main():
    write_frame('{"type":"hello","pid":%d}' % os.getpid())
    init = read_frame()
    if init.get("type") != "init":
        sys.stderr.write("session: expected an init frame\n")
        os._exit(70)
    os.environ.update(init.get("env") or {})
    sys.argv = [""]
    sentinel = init["sentinel"].encode()
    kernel = Kernel()
    write_frame('{"type":"ready"}')
    while True:
        req = read_frame()
        if req.get("type") != "cell":
            sys.stderr.write("session: unexpected frame %r\n" % req.get("type"))
            os._exit(70)
        out = kernel.cell(req.get("source", ""))
        end_output(sentinel)
        write_frame(out)


if __name__ == "__main__":
    main()
