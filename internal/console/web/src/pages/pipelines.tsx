// Pipelines (DESIGN.md §9): definitions, runs, and one run's steps as a live graph.
import { useState } from "preact/hooks";
import { enc, finished, get, idFromLocation, request, temporalLink } from "../api";
import { ErrorBlock, fmtTime, json, JsonBlock, Notice, parseJSON, Problem, StatusBadge, useAsync, usePoll } from "../components/common";
import { Editor } from "../components/editor";
import { describe, RunGraph, StepDef, StepState, statesById } from "../components/graph";
import { href, navigate } from "../router";

export interface Pipeline {
  name: string;
  version: number;
  sha256?: string;
  description?: string;
  steps?: StepDef[];
  output?: unknown;
  timeout_ms?: number;
  created_at?: string;
}

export interface Run {
  id: string;
  pipeline: string;
  version: number;
  mode?: string;
  status: string;
  input?: unknown;
  output?: unknown;
  error?: { type?: string; message?: string; stack?: string } | null;
  steps?: StepState[];
  created_at?: string;
  finished_at?: string | null;
}

const template = {
  name: "my-pipeline",
  description: "",
  steps: [
    { id: "first", function: "add" },
    { id: "approve", wait_for: { signal: "approve", timeout_ms: 3600000 } },
    { id: "second", function: "add", input: { a: "${steps.first.output.sum}", b: 1 } },
  ],
};

export function PipelineList() {
  const { data, error, loading } = useAsync(() => get<{ pipelines: Pipeline[] }>("/v1/pipelines"), []);
  return (
    <section aria-labelledby="pipelines-title">
      <div class="page-head">
        <h1 id="pipelines-title">Pipelines</h1>
        <a class="button" href="#/pipelines/new" data-testid="pipeline-new">
          New pipeline
        </a>
      </div>
      <Problem error={error} />
      {loading && !data && <p aria-busy="true">Loading…</p>}
      {data && (
        <table class="list" data-testid="pipeline-list">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Version</th>
              <th scope="col">Steps</th>
              <th scope="col">Description</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {(data.pipelines ?? []).map((p) => (
              <tr key={p.name} data-testid={`pipeline-row-${p.name}`}>
                <td>
                  <a href={href(`/pipelines/${enc(p.name)}`)}>{p.name}</a>
                </td>
                <td>v{p.version}</td>
                <td>{p.steps ? p.steps.length : ""}</td>
                <td>{p.description}</td>
                <td>{fmtTime(p.created_at)}</td>
              </tr>
            ))}
            {(data.pipelines ?? []).length === 0 && (
              <tr>
                <td colSpan={5} class="muted">
                  No pipelines yet.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function NewPipeline() {
  const [text, setText] = useState(json(template));
  const [error, setError] = useState<unknown>();
  const create = async () => {
    setError(undefined);
    try {
      const body = parseJSON(text, "The definition") as Pipeline;
      await request("POST", "/v1/pipelines", { body });
      navigate(`/pipelines/${enc(body.name)}`);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section aria-labelledby="new-pipeline-title">
      <h1 id="new-pipeline-title">New pipeline</h1>
      <p class="muted">
        A definition as in <code>POST /v1/pipelines</code>: <code>name</code>, <code>steps</code> (function, map, parallel, sleep, wait_for),{" "}
        <code>output</code>.
      </p>
      <Editor value={text} onChange={setText} language="json" label="pipeline definition" testid="pipeline-definition-editor" id="pipeline-definition-editor" minHeight="320px" onSave={create} />
      <div class="actions">
        <button type="button" data-testid="pipeline-create" onClick={create}>
          Create pipeline
        </button>
      </div>
      <Problem error={error} />
    </section>
  );
}

async function loadPipeline(name: string, version?: number): Promise<Pipeline> {
  if (version) return get<Pipeline>(`/v1/pipelines/${enc(name)}/versions/${version}`);
  const p = await get<Pipeline>(`/v1/pipelines/${enc(name)}`);
  if (p.steps) return p;
  return get<Pipeline>(`/v1/pipelines/${enc(name)}/versions/${p.version}`);
}

const definitionOf = (p: Pipeline) => {
  const { name, description, steps, output, timeout_ms } = p;
  return { name, description, steps, output, timeout_ms };
};

export function PipelinePage({ name }: { name: string }) {
  const pl = useAsync(() => loadPipeline(name), [name]);
  const runs = useAsync(() => get<{ runs: Run[] }>(`/v1/runs?pipeline=${enc(name)}&limit=50`), [name]);
  const [editing, setEditing] = useState<string>();
  const [input, setInput] = useState("{}");
  const [error, setError] = useState<unknown>();
  const [msg, setMsg] = useState("");
  const start = async () => {
    setError(undefined);
    try {
      const r = await request<Run>("POST", `/v1/pipelines/${enc(name)}/runs`, {
        rawBody: JSON.stringify(parseJSON(input, "The input")),
        headers: { Prefer: "respond-async" },
        accept: [500],
      });
      const id = r.data?.id || idFromLocation(r.headers);
      navigate(`/runs/${enc(id)}`);
    } catch (e) {
      setError(e);
    }
  };
  const save = async () => {
    setError(undefined);
    setMsg("");
    try {
      const body = parseJSON(editing ?? "", "The definition") as object;
      const r = await request<Pipeline>("PUT", `/v1/pipelines/${enc(name)}`, { body });
      setMsg(r.status === 201 ? `Saved as version ${r.data.version}.` : "Unchanged: the same definition as the latest version.");
      setEditing(undefined);
      pl.reload();
    } catch (e) {
      setError(e);
    }
  };
  const p = pl.data;
  return (
    <section aria-labelledby="pipeline-title">
      <div class="page-head">
        <h1 id="pipeline-title" data-testid="pipeline-title">
          {name}
        </h1>
        {p && (
          <span class="muted">
            v{p.version}
            {p.sha256 ? ` · sha256 ${p.sha256.slice(0, 12)}` : ""}
          </span>
        )}
      </div>
      <Problem error={pl.error} />
      {msg && <Notice>{msg}</Notice>}
      {p && p.steps && <RunGraph steps={p.steps} states={new Map()} runStatus="" plain testid="pipeline-graph" />}
      {p && (
        <div class="two-col">
          <div>
            <h2>Definition</h2>
            {p.description && <p>{p.description}</p>}
            <Editor
              value={editing ?? json(definitionOf(p))}
              onChange={(v) => editing !== undefined && setEditing(v)}
              readOnly={editing === undefined}
              language="json"
              label="pipeline definition"
              testid="pipeline-definition"
              id="pipeline-definition"
              maxHeight="420px"
              onSave={save}
            />
            <div class="actions">
              {editing === undefined ? (
                <button type="button" class="secondary" data-testid="pipeline-edit" onClick={() => setEditing(json(definitionOf(p)))}>
                  Edit
                </button>
              ) : (
                <>
                  <button type="button" data-testid="pipeline-save" onClick={save}>
                    Save new version
                  </button>
                  <button type="button" class="secondary" onClick={() => setEditing(undefined)}>
                    Discard
                  </button>
                </>
              )}
            </div>
          </div>
          <div>
            <h2>Start a run</h2>
            <div class="label" id="pipeline-input-label">Input (JSON)</div>
            <Editor value={input} onChange={setInput} language="json" label="run input JSON" testid="pipeline-input" id="pipeline-input" minHeight="90px" onRun={start} />
            <div class="actions">
              <button type="button" data-testid="pipeline-run" onClick={start}>
                Run
              </button>
              <span class="muted">Runs durably; the run's page follows it live.</span>
            </div>
            <Problem error={error} />
            <h2>Runs</h2>
            <Problem error={runs.error} />
            <table class="list" data-testid="run-list">
              <thead>
                <tr>
                  <th scope="col">Created</th>
                  <th scope="col">Run</th>
                  <th scope="col">Version</th>
                  <th scope="col">Status</th>
                </tr>
              </thead>
              <tbody>
                {(runs.data?.runs ?? []).map((r) => (
                  <tr key={r.id} data-testid={`run-row-${r.id}`}>
                    <td>{fmtTime(r.created_at)}</td>
                    <td>
                      <a href={href(`/runs/${enc(r.id)}`)}>
                        <code>{r.id}</code>
                      </a>
                    </td>
                    <td>v{r.version}</td>
                    <td>
                      <StatusBadge status={r.status} testid="run-row-status" />
                    </td>
                  </tr>
                ))}
                {runs.data && (runs.data.runs ?? []).length === 0 && (
                  <tr>
                    <td colSpan={4} class="muted">
                      No runs yet.
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          </div>
        </div>
      )}
    </section>
  );
}

/** Wait steps of the definition (nested ones too), to offer their signals. */
function waitSteps(steps: StepDef[] = [], out: StepDef[] = []): StepDef[] {
  for (const s of steps) {
    if (s.wait_for) out.push(s);
    if (s.parallel) for (const b of Object.values(s.parallel)) waitSteps(b, out);
  }
  return out;
}

export function RunPage({ id }: { id: string }) {
  const [run, setRun] = useState<Run>();
  const [def, setDef] = useState<Pipeline>();
  const [error, setError] = useState<unknown>();
  const [actionError, setActionError] = useState<unknown>();
  const [msg, setMsg] = useState("");
  const [selected, setSelected] = useState<string>();
  const [signal, setSignal] = useState("");
  const [payload, setPayload] = useState('{"approved": true}');
  // Polled (not long-polled) while it runs: ?wait answers only when the run finishes,
  // and the graph should change as each step does.
  usePoll(
    async () => {
      try {
        const r = await get<Run>(`/v1/runs/${enc(id)}`);
        setRun(r);
        setError(undefined);
        if (!def || def.name !== r.pipeline || def.version !== r.version) {
          try {
            setDef(await loadPipeline(r.pipeline, r.version));
          } catch {
            /* the graph falls back to the run's own steps */
          }
        }
        return !finished(r.status);
      } catch (e) {
        setError(e);
        return (e as any).status >= 500 || (e as any).status === 0;
      }
    },
    1000,
    [id],
  );
  const states = statesById(run?.steps);
  const steps: StepDef[] = def?.steps ?? (run?.steps ?? []).map((s) => ({ id: s.id }));
  const waits = waitSteps(def?.steps).filter((s) => {
    const st = states.get(s.id)?.status;
    return st === "waiting" || st === "running";
  });
  const signalName = signal || waits[0]?.wait_for?.signal || "";
  const act = async (what: string, f: () => Promise<void>) => {
    setActionError(undefined);
    setMsg("");
    try {
      await f();
      setMsg(what);
    } catch (e) {
      setActionError(e);
    }
  };
  const sendSignal = () =>
    act(`Signal "${signalName}" sent.`, async () => {
      if (!signalName) throw new Error("Name the signal to send.");
      await request("POST", `/v1/runs/${enc(id)}/signals/${enc(signalName)}`, { rawBody: JSON.stringify(parseJSON(payload, "The payload")) });
    });
  const cancel = () => act("Cancel requested.", async () => void (await request("DELETE", `/v1/runs/${enc(id)}`)));
  const retry = () =>
    act("Retry started.", async () => {
      const r = await request<Run>("POST", `/v1/runs/${enc(id)}/retry`, { body: selected ? { from_step: selected } : {} });
      const next = r.data?.id || idFromLocation(r.headers);
      if (next) navigate(`/runs/${enc(next)}`);
    });
  const sel = selected ? states.get(selected) : undefined;
  const selDef = selected ? findStep(steps, selected) : undefined;
  const link = temporalLink(`run-${id}`);
  return (
    <section aria-labelledby="run-title">
      <div class="page-head">
        <h1 id="run-title">
          Run <code data-testid="run-id">{id}</code>
        </h1>
        {run && <StatusBadge status={run.status} testid="run-status" />}
        {run && (
          <a href={href(`/pipelines/${enc(run.pipeline)}`)}>
            {run.pipeline} v{run.version}
          </a>
        )}
        <span class="spacer" />
        {link && (
          <a href={link} target="_blank" rel="noopener noreferrer" data-testid="run-temporal-link">
            Workflow run-{id} in Temporal ↗
          </a>
        )}
      </div>
      <Problem error={error} />
      {run && (
        <>
          <div class="actions run-actions" role="group" aria-label="run actions">
            {run.status === "waiting" && (
              <>
                <label for="run-signal-name">Signal</label>
                <input id="run-signal-name" data-testid="run-signal-name" value={signalName} onInput={(e) => setSignal((e.target as HTMLInputElement).value)} />
                <button type="button" data-testid="run-approve" onClick={sendSignal}>
                  {waits.length ? `Approve (${signalName})` : "Send signal"}
                </button>
              </>
            )}
            {!finished(run.status) && (
              <button type="button" class="danger secondary" data-testid="run-cancel" onClick={cancel}>
                Cancel run
              </button>
            )}
            {(run.status === "failed" || run.status === "canceled") && (
              <button type="button" data-testid="run-retry" onClick={retry}>
                {selected ? `Retry from ${selected}` : "Retry from the failed step"}
              </button>
            )}
          </div>
          {run.status === "waiting" && (
            <div class="signal-payload">
              <div class="label" id="run-signal-payload-label">Signal payload (JSON)</div>
              <Editor value={payload} onChange={setPayload} language="json" label="signal payload JSON" testid="run-signal-payload" minHeight="40px" onRun={sendSignal} />
            </div>
          )}
          {msg && <Notice testid="run-notice">{msg}</Notice>}
          <Problem error={actionError} testid="run-error" />
          <RunGraph steps={steps} states={states} runStatus={run.status} selected={selected} onSelect={(s) => setSelected(s === selected ? undefined : s)} />
          <p class="muted legend" aria-hidden="true">
            {["pending", "running", "waiting", "succeeded", "failed", "skipped", "canceled"].map((s) => (
              <span key={s} class={`badge st-${s}`}>{s}</span>
            ))}
          </p>
          {selected && (
            <section class="step-detail" data-testid="run-step-detail" aria-label={`step ${selected}`}>
              <h2>
                Step {selected} {sel && <StatusBadge status={sel.status} testid="run-step-detail-status" />}
              </h2>
              {selDef && <p class="muted">{describe(selDef)}</p>}
              {sel ? (
                <>
                  <dl class="facts">
                    <dt>Attempts</dt>
                    <dd>{sel.attempts ?? "—"}</dd>
                    <dt>Started</dt>
                    <dd>{fmtTime(sel.started_at) || "—"}</dd>
                    <dt>Finished</dt>
                    <dd>{fmtTime(sel.finished_at) || "—"}</dd>
                    {sel.items && (
                      <>
                        <dt>Items</dt>
                        <dd>
                          {sel.items.succeeded} succeeded, {sel.items.failed} failed of {sel.items.total}
                        </dd>
                      </>
                    )}
                    {sel.execution_id && (
                      <>
                        <dt>Execution</dt>
                        <dd>
                          <a href={href(`/executions/${enc(sel.execution_id)}`)} data-testid="run-step-execution">
                            {sel.execution_id}
                          </a>
                        </dd>
                      </>
                    )}
                  </dl>
                  <ErrorBlock error={sel.error as any} testid="run-step-error" />
                  {sel.output !== undefined && sel.output !== null && (
                    <>
                      <h4>Output</h4>
                      <JsonBlock value={sel.output} testid="run-step-output" label="step output" />
                    </>
                  )}
                </>
              ) : (
                <p class="muted">Not started.</p>
              )}
            </section>
          )}
          <div class="two-col">
            <div>
              <h3>Input</h3>
              <JsonBlock value={run.input ?? null} testid="run-input" label="run input" />
            </div>
            <div>
              <h3>Output</h3>
              {finished(run.status) ? <JsonBlock value={run.output ?? null} testid="run-output" label="run output" /> : <p class="muted">Not finished.</p>}
              <ErrorBlock error={run.error as any} testid="run-run-error" />
            </div>
          </div>
          <p class="muted">
            Created {fmtTime(run.created_at)}
            {run.finished_at ? `, finished ${fmtTime(run.finished_at)}` : ""}.
          </p>
        </>
      )}
    </section>
  );
}

function findStep(steps: StepDef[], id: string): StepDef | undefined {
  for (const s of steps) {
    if (s.id === id) return s;
    if (s.parallel)
      for (const b of Object.values(s.parallel)) {
        const f = findStep(b, id);
        if (f) return f;
      }
  }
  return undefined;
}
