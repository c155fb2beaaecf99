import { useEffect, useState } from "preact/hooks";
import { enc, Execution, FunctionMeta, finished, get, idFromLocation, request } from "../api";
import { FunctionCharts } from "../components/charts";
import { ErrorBlock, fmtMs, fmtTime, JsonBlock, Notice, Problem, StatusBadge, Stream, Tabs, useAsync } from "../components/common";
import { DiffView, Editor } from "../components/editor";
import { href, navigate } from "../router";

export const languages: [string, string][] = [
  ["python", "Python"],
  ["node", "Node.js"],
  ["rust", "Rust"],
];

export const templates: Record<string, string> = {
  python: 'def handler(event, context):\n    print("event", event)\n    return {"ok": True, "event": event}\n',
  node: 'exports.handler = async (event, context) => {\n  console.log("event", event);\n  return { ok: true, event };\n};\n',
  rust:
    'use serde_json::{json, Value};\n\nfn handler(event: Value, _ctx: &Context) -> Result<Value, String> {\n    Ok(json!({"ok": true, "event": event}))\n}\n',
};

export function FunctionList() {
  const { data, error, loading } = useAsync(() => get<{ functions: FunctionMeta[] }>("/v1/functions"), []);
  const [q, setQ] = useState("");
  const fs = (data?.functions ?? []).filter(
    (f) => f.name.includes(q.trim().toLowerCase()) || f.language.toLowerCase().includes(q.trim().toLowerCase()),
  );
  return (
    <section aria-labelledby="functions-title">
      <div class="page-head">
        <h1 id="functions-title">Functions</h1>
        <a class="button" href="#/functions/new" data-testid="function-new">
          New function
        </a>
      </div>
      <div class="toolbar">
        <label for="function-search">Search</label>
        <input
          id="function-search"
          data-testid="function-search"
          type="search"
          placeholder="name or language"
          value={q}
          onInput={(e) => setQ((e.target as HTMLInputElement).value)}
        />
      </div>
      <Problem error={error} />
      {loading && !data && <p aria-busy="true">Loading…</p>}
      {data && (
        <table class="list" data-testid="function-list">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Language</th>
              <th scope="col">Version</th>
              <th scope="col">Updated</th>
              <th scope="col">
                <span class="visually-hidden">Links</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {fs.map((f) => (
              <tr key={f.name} data-testid={`function-row-${f.name}`}>
                <td>
                  <a href={href(`/functions/${enc(f.name)}`)}>{f.name}</a>
                </td>
                <td>{f.language}</td>
                <td>v{f.version}</td>
                <td>{fmtTime(f.created_at)}</td>
                <td class="links">
                  <a href={href(`/functions/${enc(f.name)}`, { tab: "invoke" })}>invoke</a>{" "}
                  <a href={href("/executions", { function: f.name })}>executions</a>
                </td>
              </tr>
            ))}
            {fs.length === 0 && (
              <tr>
                <td colSpan={5} class="muted">
                  {data.functions.length === 0 ? "No functions yet: create one." : "No function matches."}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Settings(p: {
  timeout: string;
  memory: string;
  cacheTTL: string;
  set: (k: "timeout" | "memory" | "cacheTTL", v: string) => void;
}) {
  const field = (k: "timeout" | "memory" | "cacheTTL", label: string, v: string, placeholder: string) => (
    <div class="field small">
      <label for={`fn-${k}`}>{label}</label>
      <input
        id={`fn-${k}`}
        data-testid={`fn-${k}`}
        type="number"
        min="0"
        inputMode="numeric"
        placeholder={placeholder}
        value={v}
        onInput={(e) => p.set(k, (e.target as HTMLInputElement).value)}
      />
    </div>
  );
  return (
    <div class="row">
      {field("timeout", "Timeout (ms)", p.timeout, "default")}
      {field("memory", "Memory (MB)", p.memory, "default")}
      {field("cacheTTL", "Result cache TTL (s)", p.cacheTTL, "0")}
    </div>
  );
}

const num = (s: string) => (s.trim() === "" ? undefined : Number(s));

export function NewFunction() {
  const [name, setName] = useState("");
  const [language, setLanguage] = useState("python");
  const [source, setSource] = useState(templates.python);
  const [s, setS] = useState({ timeout: "", memory: "", cacheTTL: "" });
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const changeLanguage = (l: string) => {
    if (source === templates[language]) setSource(templates[l]);
    setLanguage(l);
  };
  const create = async (e?: Event) => {
    e?.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await request("POST", "/v1/functions", {
        body: { name: name.trim(), language, source, timeout_ms: num(s.timeout), memory_mb: num(s.memory), cache_ttl_s: num(s.cacheTTL) },
      });
      navigate(`/functions/${enc(name.trim())}`, { tab: "invoke" });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="new-fn-title">
      <h1 id="new-fn-title">New function</h1>
      <form onSubmit={create} data-testid="function-create-form">
        <div class="row">
          <div class="field">
            <label for="fn-name">Name</label>
            <input
              id="fn-name"
              data-testid="fn-name"
              required
              pattern="[a-z][a-z0-9\-]{0,62}"
              title="lower-case letters, digits and -, starting with a letter"
              value={name}
              onInput={(e) => setName((e.target as HTMLInputElement).value)}
            />
          </div>
          <div class="field">
            <label for="fn-language">Language</label>
            <select id="fn-language" data-testid="fn-language" value={language} onChange={(e) => changeLanguage((e.target as HTMLSelectElement).value)}>
              {languages.map(([v, t]) => (
                <option key={v} value={v}>
                  {t}
                </option>
              ))}
            </select>
          </div>
        </div>
        <Settings {...s} set={(k, v) => setS({ ...s, [k]: v })} />
        <div class="label" id="fn-source-label">Source</div>
        <Editor value={source} onChange={setSource} language={language} label="function source" testid="fn-source" id="fn-source" minHeight="260px" onSave={create} />
        <p class="muted">Ctrl/⌘+S creates the function.</p>
        <div class="actions">
          <button type="submit" data-testid="fn-create" disabled={busy}>
            {busy ? "Building…" : "Create function"}
          </button>
        </div>
      </form>
      <Problem error={error} />
    </section>
  );
}

type Tab = "source" | "invoke" | "versions" | "metrics";

export function FunctionPage({ name, tab }: { name: string; tab: string }) {
  const fn = useAsync(() => get<FunctionMeta>(`/v1/functions/${enc(name)}`), [name]);
  const [confirming, setConfirming] = useState(false);
  const [delError, setDelError] = useState<unknown>();
  const t = (["source", "invoke", "versions", "metrics"].includes(tab) ? tab : "source") as Tab;
  const f = fn.data;
  const del = async () => {
    try {
      await request("DELETE", `/v1/functions/${enc(name)}`);
      navigate("/functions");
    } catch (e) {
      setDelError(e);
    }
  };
  return (
    <section aria-labelledby="fn-title">
      <div class="page-head">
        <h1 id="fn-title" data-testid="fn-title">
          {name}
        </h1>
        {f && (
          <span class="muted" data-testid="fn-meta">
            {f.language} · v{f.version} · sha256 {f.sha256?.slice(0, 12)}
          </span>
        )}
        <span class="spacer" />
        <a href={href("/executions", { function: name })} data-testid="fn-executions">
          Executions
        </a>
        {!confirming ? (
          <button type="button" class="danger secondary" data-testid="fn-delete" onClick={() => setConfirming(true)}>
            Delete…
          </button>
        ) : (
          <span class="confirm" role="group" aria-label="confirm delete">
            Delete {name}? Its executions stay.
            <button type="button" class="danger" data-testid="fn-delete-confirm" onClick={del}>
              Delete function
            </button>
            <button type="button" class="secondary" onClick={() => setConfirming(false)}>
              Keep
            </button>
          </span>
        )}
      </div>
      <Problem error={fn.error ?? delError} />
      {f && (
        <>
          <Tabs
            label="function views"
            idPrefix="fn"
            selected={t}
            onSelect={(x) => navigate(`/functions/${enc(name)}`, { tab: x }, true)}
            tabs={[
              ["source", "Source"],
              ["invoke", "Invoke"],
              ["versions", "Versions"],
              ["metrics", "Metrics"],
            ]}
          />
          <div role="tabpanel" id="fn-panel" aria-labelledby={`fn-tab-${t}`} class="panel">
            {t === "source" && <SourceTab fn={f} onSaved={fn.reload} />}
            {t === "invoke" && <InvokeTab fn={f} />}
            {t === "versions" && <VersionsTab fn={f} />}
            {t === "metrics" && <FunctionCharts name={f.name} />}
          </div>
        </>
      )}
    </section>
  );
}

function SourceTab({ fn, onSaved }: { fn: FunctionMeta; onSaved: () => void }) {
  const ver = useAsync(() => get<FunctionMeta>(`/v1/functions/${enc(fn.name)}/versions/${fn.version}`), [fn.name, fn.version]);
  const [source, setSource] = useState<string>();
  const [s, setS] = useState({ timeout: "", memory: "", cacheTTL: "" });
  const [error, setError] = useState<unknown>();
  const [msg, setMsg] = useState("");
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (ver.data) {
      setSource(ver.data.source ?? "");
      setS({
        timeout: String(ver.data.timeout_ms ?? fn.timeout_ms ?? ""),
        memory: String(ver.data.memory_mb ?? fn.memory_mb ?? ""),
        cacheTTL: String(ver.data.cache_ttl_s ?? fn.cache_ttl_s ?? ""),
      });
    }
  }, [ver.data]);
  const save = async () => {
    setBusy(true);
    setError(undefined);
    setMsg("");
    try {
      const r = await request<FunctionMeta>("PUT", `/v1/functions/${enc(fn.name)}`, {
        body: { source, timeout_ms: num(s.timeout), memory_mb: num(s.memory), cache_ttl_s: num(s.cacheTTL) },
      });
      setMsg(r.status === 201 ? `Saved as version ${r.data.version}.` : "Unchanged: the same source and settings as the latest version.");
      if (r.status === 201) onSaved();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  if (ver.error) return <Problem error={ver.error} />;
  if (source === undefined) return <p aria-busy="true">Loading source…</p>;
  return (
    <div>
      <Settings {...s} set={(k, v) => setS({ ...s, [k]: v })} />
      <div class="label" id="fn-source-label">Source (version {fn.version})</div>
      <Editor value={source} onChange={setSource} language={fn.language} label={`${fn.name} source`} testid="fn-source" id="fn-source" minHeight="300px" onSave={save} />
      <div class="actions">
        <button type="button" data-testid="fn-save" onClick={save} disabled={busy}>
          {busy ? "Building…" : "Save new version"}
        </button>
        <span class="muted">Ctrl/⌘+S saves. A new version is built; the old ones stay callable.</span>
      </div>
      {msg && <Notice testid="fn-save-result">{msg}</Notice>}
      <Problem error={error} />
    </div>
  );
}

/** An execution envelope as a result panel. */
export function ExecutionResult({ e, testid = "invoke-result", link = true }: { e: Execution; testid?: string; link?: boolean }) {
  return (
    <section class="result" data-testid={testid} aria-live="polite">
      <div class="result-head">
        <StatusBadge status={e.status} testid="result-status" />
        {e.duration_ms !== undefined && e.duration_ms !== null && <span data-testid="result-duration">{fmtMs(e.duration_ms)}</span>}
        {e.version !== undefined && <span>v{e.version}</span>}
        {e.mode && <span>{e.mode}</span>}
        {e.cached && <span class="tag">cached</span>}
        {e.attempts !== undefined && e.attempts > 1 && <span>attempt {e.attempts}</span>}
        {e.truncated && <span class="tag">output truncated</span>}
        <span class="spacer" />
        {link && e.id && (
          <a href={href(`/executions/${enc(e.id)}`)} data-testid="result-execution-link">
            execution {e.id}
          </a>
        )}
      </div>
      {finished(e.status) && e.status === "succeeded" && (
        <>
          <h4>Result</h4>
          <JsonBlock value={e.result ?? null} testid="result-value" label="result" />
        </>
      )}
      <ErrorBlock error={e.error} testid="result-error" />
      <Stream text={e.stdout} testid="result-stdout" label="stdout" kind="stdout" />
      <Stream text={e.stderr} testid="result-stderr" label="stderr" kind="stderr" />
    </section>
  );
}

function InvokeTab({ fn }: { fn: FunctionMeta }) {
  const [event, setEvent] = useState("{}");
  const [mode, setMode] = useState<"sync" | "async">("sync");
  const [version, setVersion] = useState("");
  const [idem, setIdem] = useState("");
  const [result, setResult] = useState<Execution>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const versions = useAsync(() => get<{ versions: FunctionMeta[] }>(`/v1/functions/${enc(fn.name)}/versions`), [fn.name, fn.version]);
  const invoke = async () => {
    if (busy) return;
    setError(undefined);
    setResult(undefined);
    try {
      JSON.parse(event.trim() === "" ? "null" : event);
    } catch (e) {
      setError(new Error(`The event is not valid JSON: ${(e as Error).message}`));
      return;
    }
    setBusy(true);
    try {
      const headers: Record<string, string> = { "Language-Title": fn.language };
      if (mode === "async") headers.Prefer = "respond-async";
      if (idem.trim()) headers["Idempotency-Key"] = idem.trim();
      const q = version ? `?version=${enc(version)}` : "";
      const r = await request<Execution>("POST", `/v1/functions/${enc(fn.name)}/invoke${q}`, {
        rawBody: event.trim() === "" ? "null" : event,
        headers,
        accept: [500, 504],
      });
      let e = r.data;
      if (r.status === 202) {
        const id = e?.id || idFromLocation(r.headers);
        e = { ...(e ?? {}), id, status: e?.status ?? "queued" } as Execution;
        setResult(e);
        while (!finished(e.status)) {
          e = (await request<Execution>("GET", `/v1/executions/${enc(id)}?wait=30s`)).data;
          setResult(e);
        }
      }
      setResult(e);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div>
      <div class="row">
        <fieldset class="field">
          <legend>Mode</legend>
          <label class="inline">
            <input type="radio" name="invoke-mode" value="sync" data-testid="invoke-mode-sync" checked={mode === "sync"} onChange={() => setMode("sync")} /> sync
          </label>
          <label class="inline">
            <input type="radio" name="invoke-mode" value="async" data-testid="invoke-mode-async" checked={mode === "async"} onChange={() => setMode("async")} /> async
            (durable)
          </label>
        </fieldset>
        <div class="field">
          <label for="invoke-version">Version</label>
          <select id="invoke-version" data-testid="invoke-version" value={version} onChange={(e) => setVersion((e.target as HTMLSelectElement).value)}>
            <option value="">latest (v{fn.version})</option>
            {(versions.data?.versions ?? []).map((v) => (
              <option key={v.version} value={String(v.version)}>
                v{v.version}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="invoke-idempotency">Idempotency-Key (optional)</label>
          <input id="invoke-idempotency" data-testid="invoke-idempotency" value={idem} onInput={(e) => setIdem((e.target as HTMLInputElement).value)} />
        </div>
      </div>
      <div class="label" id="invoke-event-label">Event (JSON)</div>
      <Editor value={event} onChange={setEvent} language="json" label="event JSON" testid="invoke-event" id="invoke-event" minHeight="90px" onRun={invoke} />
      <div class="actions">
        <button type="button" data-testid="invoke-submit" onClick={invoke} disabled={busy}>
          {busy ? (mode === "async" ? "Waiting…" : "Running…") : "Invoke"}
        </button>
        <span class="muted">Shift+Enter in the event invokes.</span>
      </div>
      <Problem error={error} testid="invoke-error" />
      {result && <ExecutionResult e={result} />}
    </div>
  );
}

function VersionsTab({ fn }: { fn: FunctionMeta }) {
  const list = useAsync(() => get<{ versions: FunctionMeta[] }>(`/v1/functions/${enc(fn.name)}/versions`), [fn.name, fn.version]);
  const vs = [...(list.data?.versions ?? [])].sort((a, b) => b.version - a.version);
  const [a, setA] = useState(0);
  const [b, setB] = useState(0);
  const va = a || (vs.length > 1 ? vs[1].version : vs[0]?.version ?? 0);
  const vb = b || (vs[0]?.version ?? 0);
  const diff = useAsync(async () => {
    if (!va || !vb) return undefined;
    const [x, y] = await Promise.all([
      get<FunctionMeta>(`/v1/functions/${enc(fn.name)}/versions/${va}`),
      get<FunctionMeta>(`/v1/functions/${enc(fn.name)}/versions/${vb}`),
    ]);
    return { a: x.source ?? "", b: y.source ?? "" };
  }, [fn.name, va, vb]);
  const pick = (id: string, label: string, v: number, set: (n: number) => void) => (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} data-testid={id} value={String(v)} onChange={(e) => set(Number((e.target as HTMLSelectElement).value))}>
        {vs.map((x) => (
          <option key={x.version} value={String(x.version)}>
            v{x.version} · {fmtTime(x.created_at)}
          </option>
        ))}
      </select>
    </div>
  );
  return (
    <div>
      <Problem error={list.error} />
      <table class="list" data-testid="version-list">
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">sha256</th>
            <th scope="col">Created</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {vs.map((v) => (
            <tr key={v.version} data-testid={`version-row-${v.version}`}>
              <td>v{v.version}</td>
              <td>
                <code>{v.sha256?.slice(0, 16)}</code>
              </td>
              <td>{fmtTime(v.created_at)}</td>
              <td>
                <button type="button" class="link" onClick={() => setA(v.version)} aria-label={`compare from version ${v.version}`}>
                  from
                </button>{" "}
                <button type="button" class="link" onClick={() => setB(v.version)} aria-label={`compare to version ${v.version}`}>
                  to
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {vs.length > 0 && (
        <>
          <h3>Compare</h3>
          <div class="row">
            {pick("diff-from", "From", va, setA)}
            {pick("diff-to", "To", vb, setB)}
          </div>
          <Problem error={diff.error} />
          {diff.data && (
            <>
              {diff.data.a === diff.data.b && <Notice testid="diff-same">v{va} and v{vb} have the same source.</Notice>}
              <DiffView a={diff.data.a} b={diff.data.b} language={fn.language} testid="version-diff" labelA={`version ${va}`} labelB={`version ${vb}`} />
            </>
          )}
        </>
      )}
    </div>
  );
}
