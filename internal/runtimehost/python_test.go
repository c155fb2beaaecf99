package runtimehost_test

import "testing"

var pythonCases = langCases{
	registry: bundledRegistry,
	title:    "python",
	add: `def handler(event, context):
    return {"sum": event["a"] + event["b"]}
`,
	output: `import os, sys
def handler(event, context):
    print("out-" + event["tag"])
    print("err-" + event["tag"], file=sys.stderr)
    os.system("echo native-" + event["tag"])
    return event["tag"]
`,
	raise: `class Boom(Exception):
    pass

def helper():
    raise Boom("kaboom")

def handler(event, context):
    helper()
`,
	raiseType: "Boom",
	sleep: `import time
def handler(event, context):
    time.sleep(event["ms"] / 1000)
    return "slept"
`,
	exit: `import os
def handler(event, context):
    if event["exit"]:
        os._exit(3)
    return "alive"
`,
	bigPrint: `import sys
def handler(event, context):
    sys.stdout.write("x" * event["n"])
    return event["n"]
`,
	syntax: `def handler(event, context):
    return {"a": 1
print("never")
`,
	comment:  "#",
	syntaxAt: "line ",
	async: `import asyncio
async def handler(event, context):
    await asyncio.sleep(0.01)
    return "async"
`,
	envProbe: `import os
def handler(event, context):
    return {"secret": os.environ.get("LAMBDA_TEST_SECRET"), "db": os.environ.get("DATABASE_URL"),
            "lambda": sorted(k for k in os.environ if k.startswith("LAMBDA")),
            "mine": os.environ.get("MY_VAR")}
`,
	isoA: `import builtins, os, tempfile
calls = 0
def handler(event, context):
    global calls
    calls += 1
    builtins.LEAKED = "from-a"
    with open(os.path.join(tempfile.gettempdir(), "leak.txt"), "w") as f:
        f.write("a")
    return calls
`,
	isoB: `import builtins, os, tempfile
def handler(event, context):
    return {"global": getattr(builtins, "LEAKED", None),
            "file": os.path.exists(os.path.join(tempfile.gettempdir(), "leak.txt"))}
`,
}

func TestPython(t *testing.T) {
	t.Parallel()
	runLanguageSuite(t, pythonCases)
}
