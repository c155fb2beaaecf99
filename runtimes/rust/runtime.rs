//! Worker runtime linked into every Rust script by build.sh: the same frame protocol as the
//! other bootstraps (runtimes/README.md). Requests arrive on fd 3 and responses leave on
//! fd 4 as a 4-byte big-endian length and a JSON document; after each invocation the
//! host's sentinel is written to stdout and stderr to delimit the captured output.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::io::FromRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// What a handler learns about its invocation.
#[derive(Debug, Clone)]
pub struct Context {
    pub execution_id: String,
    pub function: String,
    pub version: i64,
    /// Wall-clock deadline, epoch milliseconds.
    pub deadline_ms: i64,
    pub memory_mb: i64,
}

impl Context {
    /// Milliseconds left before the host kills this invocation.
    pub fn remaining_ms(&self) -> i64 {
        (self.deadline_ms - now_ms()).max(0)
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn read_frame(r: &mut impl Read) -> Option<Value> {
    let mut hdr = [0u8; 4];
    r.read_exact(&mut hdr).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(hdr) as usize];
    r.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

fn write_frame(w: &mut File, doc: &Value) {
    write_raw(w, serde_json::to_vec(doc).unwrap_or_else(|_| b"{}".to_vec()));
}

fn write_raw(w: &mut File, body: Vec<u8>) {
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    if w.write_all(&buf).is_err() {
        std::process::exit(0);
    }
}

thread_local! {
    static PANIC: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

fn end_output(sentinel: &[u8]) {
    let mut out = io::stdout().lock();
    let _ = out.flush();
    let _ = out.write_all(sentinel);
    let _ = out.flush();
    let mut err = io::stderr().lock();
    let _ = err.write_all(sentinel);
    let _ = err.flush();
}

/// Serves invocations of `handler` until the host closes the request pipe.
pub fn run(handler: fn(Value, &Context) -> Result<Value, String>) {
    // SAFETY: the runtime host opens fds 3 and 4 for this process and nothing else uses them.
    let mut input = BufReader::with_capacity(64 << 10, unsafe { File::from_raw_fd(3) });
    let mut output = unsafe { File::from_raw_fd(4) };
    write_frame(&mut output, &json!({"type": "hello", "pid": std::process::id()}));

    let init = match read_frame(&mut input) {
        Some(v) if v["type"] == "init" => v,
        _ => std::process::exit(0),
    };
    if let Some(env) = init["env"].as_object() {
        for (k, v) in env {
            if let Some(s) = v.as_str() {
                std::env::set_var(k, s);
            }
        }
    }
    let sentinel = init["sentinel"].as_str().unwrap_or_default().as_bytes().to_vec();
    let function = init["function"].as_str().unwrap_or_default().to_string();
    let version = init["version"].as_i64().unwrap_or(0);
    let memory_mb = init["memory_mb"].as_i64().unwrap_or(0);

    panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = if let Some(s) = payload.downcast_ref::<&str>() {
            s.to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "Box<dyn Any>".to_string()
        };
        let loc = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())).unwrap_or_default();
        eprintln!("panicked at {}:\n{}", loc, msg);
        PANIC.with(|p| *p.borrow_mut() = Some((msg, loc)));
    }));
    write_frame(&mut output, &json!({"type": "ready"}));

    while let Some(mut req) = read_frame(&mut input) {
        let ctx = Context {
            execution_id: req["execution_id"].as_str().unwrap_or_default().to_string(),
            function: function.clone(),
            version,
            deadline_ms: req["deadline_ms"].as_i64().unwrap_or(0),
            memory_mb,
        };
        let event = req["event"].take();
        let doc = match panic::catch_unwind(AssertUnwindSafe(|| handler(event, &ctx))) {
            Ok(Ok(result)) => {
                // The host reads this exact prefix without decoding the frame.
                let mut body = br#"{"type":"result","status":"succeeded","result":"#.to_vec();
                serde_json::to_writer(&mut body, &result).expect("a Value always serialises");
                body.push(b'}');
                end_output(&sentinel);
                write_raw(&mut output, body);
                continue;
            }
            Ok(Err(message)) => json!({"type": "result", "status": "failed",
                "error": {"type": "Error", "message": message, "stack": ""}}),
            Err(_) => {
                let (message, loc) = PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
                json!({"type": "result", "status": "failed",
                    "error": {"type": "Panic", "message": message, "stack": format!("panicked at {}", loc)}})
            }
        };
        end_output(&sentinel);
        write_frame(&mut output, &doc);
    }
}
