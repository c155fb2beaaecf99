"""Python worker bootstrap of the lambda-microservice runtime host.

Protocol (runtimes/README.md): frames of a 4-byte big-endian length and a JSON document,
requests on fd 3, responses on fd 4. The worker announces itself with a hello frame, is
bound to ONE script by an init frame, then answers invoke frames until the host kills it.
After every invocation it writes the host's sentinel to stdout and stderr so the host can
split the captured output per execution.
"""

import io
import json
import os
import sys
import time
import traceback
import types

BOOTSTRAP = os.path.abspath(__file__)
_requests = io.open(3, "rb", buffering=65536, closefd=False)
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_loads = json.loads

try:  # flushes C stdio buffers of native extensions after each invocation
    import ctypes

    _fflush = ctypes.CDLL(None).fflush
    _fflush.argtypes = [ctypes.c_void_p]
except Exception:  # pragma: no cover - ctypes missing or stripped
    _fflush = None


def read_frame():
    hdr = _requests.read(4)
    if len(hdr) < 4:
        os._exit(0)  # the host closed the pipe: nothing more to do
    n = int.from_bytes(hdr, "big")
    body = _requests.read(n)
    if len(body) < n:
        os._exit(0)
    return _loads(body)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_frame(text):
    data = text.encode("utf-8", "surrogateescape")
    write_all(4, len(data).to_bytes(4, "big") + data)


class Context:
    """What a handler learns about its invocation (Lambda-style names)."""

    __slots__ = ("execution_id", "function", "version", "deadline_ms", "memory_mb")

    def __init__(self, execution_id, function, version, deadline_ms, memory_mb):
        self.execution_id = execution_id
        self.function = function
        self.version = version
        self.deadline_ms = deadline_ms
        self.memory_mb = memory_mb

    @property
    def function_name(self):
        return self.function

    @property
    def function_version(self):
        return self.version

    @property
    def memory_limit_in_mb(self):
        return self.memory_mb

    def get_remaining_time_in_millis(self):
        return max(0, int(self.deadline_ms - time.time() * 1000))

    def __repr__(self):
        return "Context(execution_id=%r, function=%r, version=%r)" % (
            self.execution_id, self.function, self.version)


def error_doc(exc, source):
    """{type, message, stack} of exc, the stack starting at the user's code."""
    tb = exc.__traceback__
    first_user = tb
    while first_user is not None and first_user.tb_frame.f_code.co_filename != source:
        first_user = first_user.tb_next
    if first_user is None:  # raised outside the script: drop only the bootstrap's frames
        while tb is not None and tb.tb_frame.f_code.co_filename == BOOTSTRAP:
            tb = tb.tb_next
        first_user = tb
    stack = "".join(traceback.format_exception(type(exc), exc, first_user))
    try:
        message = str(exc)
    except Exception:
        message = repr(exc)
    return {"type": type(exc).__name__, "message": message, "stack": stack}


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


def load(init):
    """Compiles and runs the script; returns its handler or raises."""
    source = init["source"]
    with open(source, "rb") as f:
        text = f.read()
    try:
        code = compile(text, source, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        lines = traceback.format_exception_only(type(exc), exc)
        return None, {"type": "CompileError", "message": "".join(lines).rstrip("\n"),
                      "stack": ""}, True
    module = types.ModuleType("handler")
    module.__file__ = source
    sys.modules["handler"] = module
    sys.argv = [source]
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        return None, error_doc(exc, source), False
    handler = getattr(module, "handler", None)
    if not callable(handler):
        return None, {"type": "HandlerNotFound",
                      "message": "the script defines no callable `handler(event, context)`",
                      "stack": ""}, False
    return handler, None, False


def limit_address_space(memory_mb):
    """Caps the address space at what the interpreter maps now plus twice memory_mb, before
    the script loads: a huge allocation becomes a MemoryError the handler can see instead
    of an OOM kill by the sandbox's memory cgroup (which still enforces memory_mb itself)."""
    if not memory_mb or memory_mb <= 0:
        return
    try:
        import resource

        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        limit = vm + 2 * memory_mb * 1024 * 1024
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except Exception:  # pragma: no cover - no /proc or no resource module: the cgroup remains
        pass


def main():
    write_frame('{"type":"hello","pid":%d}' % os.getpid())
    init = read_frame()
    if init.get("type") != "init":
        sys.stderr.write("bootstrap: expected an init frame\n")
        os._exit(70)
    os.environ.update(init.get("env") or {})
    # The version's installed dependencies (the registry entry's runtime_env): -I ignores
    # PYTHONPATH at start, so its folders go onto sys.path here, ahead as PYTHONPATH would.
    for i, p in enumerate(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p):
        sys.path.insert(i, p)
    limit_address_space(init.get("memory_mb", 0))
    sentinel = init["sentinel"].encode()
    source = init["source"]
    handler, err, compile_error = load(init)
    if err is not None:
        end_output(sentinel)
        write_frame(_dumps({"type": "init_error", "compile": compile_error, "error": err}))
        os._exit(0)
    write_frame('{"type":"ready"}')

    function, version, memory_mb = init.get("function", ""), init.get("version", 0), init.get("memory_mb", 0)
    is_async = bool(getattr(getattr(handler, "__code__", None), "co_flags", 0) & 0x80)
    loop = None
    while True:
        req = read_frame()
        ctx = Context(req.get("execution_id", ""), function, version, req.get("deadline_ms", 0), memory_mb)
        try:
            result = handler(req.get("event"), ctx)
            if is_async or isinstance(result, types.CoroutineType):
                if loop is None:
                    import asyncio

                    loop = asyncio.new_event_loop()
                    asyncio.set_event_loop(loop)
                result = loop.run_until_complete(result)
            out = '{"type":"result","status":"succeeded","result":' + _dumps(result) + "}"
        except Exception as exc:
            out = _dumps({"type": "result", "status": "failed", "error": error_doc(exc, source)})
        end_output(sentinel)
        write_frame(out)


if __name__ == "__main__":
    main()
