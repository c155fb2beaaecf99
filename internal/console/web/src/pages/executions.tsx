import { useRef, useState } from "preact/hooks";
import { enc, Execution, finished, get, request, temporalLink } from "../api";
import { fmtMs, fmtTime, JsonBlock, Notice, Problem, StatusBadge, usePoll } from "../components/common";
import { href, navigate } from "../router";
import { ExecutionResult } from "./functions";

const statuses = ["queued", "running", "succeeded", "failed", "timeout", "canceled"];

interface Page {
  executions: Execution[];
  next_cursor?: string;
}

export function ExecutionList(p: { function: string; status: string }) {
  const [fnInput, setFnInput] = useState(p.function);
  const [live, setLive] = useState(true);
  const [head, setHead] = useState<Execution[]>();
  const [more, setMore] = useState<Execution[]>([]);
  const [cursor, setCursor] = useState<string>();
  const [error, setError] = useState<unknown>();
  const [updated, setUpdated] = useState<Date>();
  const first = useRef(true);
  const query = (c?: string) => {
    const q = new URLSearchParams({ limit: "50" });
    if (p.function) q.set("function", p.function);
    if (p.status) q.set("status", p.status);
    if (c) q.set("cursor", c);
    return `/v1/executions?${q}`;
  };
  // The newest page is polled every 2 s; older pages, once loaded, stay as they are.
  usePoll(
    async () => {
      try {
        const page = await get<Page>(query());
        setHead(page.executions ?? []);
        if (first.current) {
          setCursor(page.next_cursor);
          first.current = false;
        }
        setError(undefined);
        setUpdated(new Date());
      } catch (e) {
        setError(e);
        if ((e as any).status === 400) return false;
      }
      return live;
    },
    2000,
    [p.function, p.status, live],
  );
  const setFilter = (k: "function" | "status", v: string) => {
    first.current = true;
    setMore([]);
    setHead(undefined);
    navigate("/executions", { function: k === "function" ? v : p.function, status: k === "status" ? v : p.status }, true);
  };
  const loadMore = async () => {
    if (!cursor) return;
    try {
      const page = await get<Page>(query(cursor));
      setMore((m) => [...m, ...(page.executions ?? [])]);
      setCursor(page.next_cursor);
    } catch (e) {
      setError(e);
    }
  };
  const seen = new Set<string>();
  const rows = [...(head ?? []), ...more].filter((e) => !seen.has(e.id) && seen.add(e.id));
  return (
    <section aria-labelledby="executions-title">
      <div class="page-head">
        <h1 id="executions-title">Executions</h1>
        <span class="spacer" />
        <label class="inline">
          <input type="checkbox" data-testid="executions-live" checked={live} onChange={(e) => setLive((e.target as HTMLInputElement).checked)} /> Live
        </label>
        {updated && (
          <span class="muted" aria-live="off">
            updated {updated.toLocaleTimeString(undefined, { hour12: false })}
          </span>
        )}
      </div>
      <form
        class="toolbar"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter("function", fnInput.trim());
        }}
      >
        <label for="executions-function">Function</label>
        <input
          id="executions-function"
          data-testid="executions-function"
          type="search"
          placeholder="any"
          value={fnInput}
          onInput={(e) => setFnInput((e.target as HTMLInputElement).value)}
          onChange={(e) => setFilter("function", (e.target as HTMLInputElement).value.trim())}
        />
        <label for="executions-status">Status</label>
        <select id="executions-status" data-testid="executions-status" value={p.status} onChange={(e) => setFilter("status", (e.target as HTMLSelectElement).value)}>
          <option value="">any</option>
          {statuses.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </form>
      <Problem error={error} />
      {!head && !error && <p aria-busy="true">Loading…</p>}
      {head && (
        <table class="list" data-testid="execution-list">
          <thead>
            <tr>
              <th scope="col">Created</th>
              <th scope="col">Execution</th>
              <th scope="col">Function</th>
              <th scope="col">Mode</th>
              <th scope="col">Status</th>
              <th scope="col" class="num">
                Duration
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => (
              <tr key={e.id} data-testid={`execution-row-${e.id}`}>
                <td>{fmtTime(e.created_at)}</td>
                <td>
                  <a href={href(`/executions/${enc(e.id)}`)}>
                    <code>{e.id}</code>
                  </a>
                </td>
                <td>
                  <a href={href(`/functions/${enc(e.function)}`)}>{e.function}</a> v{e.version}
                </td>
                <td>{e.mode}</td>
                <td>
                  <StatusBadge status={e.status} testid="execution-row-status" />
                  {e.cached && <span class="tag">cached</span>}
                </td>
                <td class="num">{fmtMs(e.duration_ms)}</td>
              </tr>
            ))}
            {rows.length === 0 && (
              <tr>
                <td colSpan={6} class="muted">
                  No executions{p.function || p.status ? " match these filters" : " yet"}.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
      {cursor && (
        <div class="actions">
          <button type="button" class="secondary" data-testid="executions-more" onClick={loadMore}>
            Load older
          </button>
        </div>
      )}
    </section>
  );
}

export function ExecutionPage({ id }: { id: string }) {
  const [e, setE] = useState<Execution>();
  const [error, setError] = useState<unknown>();
  const [msg, setMsg] = useState("");
  // Long-poll while it is not finished: the api answers the moment its final row commits.
  usePoll(
    async () => {
      try {
        const wait = e && !finished(e.status) ? "?wait=30s" : "";
        const x = await get<Execution>(`/v1/executions/${enc(id)}${wait}`);
        setE(x);
        setError(undefined);
        return !finished(x.status);
      } catch (err) {
        setError(err);
        return (err as any).status >= 500 || (err as any).status === 0;
      }
    },
    500,
    [id],
  );
  const cancel = async () => {
    try {
      await request("DELETE", `/v1/executions/${enc(id)}`);
      setMsg("Cancel requested.");
    } catch (err) {
      setError(err);
    }
  };
  const link = e?.mode === "async" ? temporalLink(`exec-${id}`) : "";
  return (
    <section aria-labelledby="execution-title">
      <div class="page-head">
        <h1 id="execution-title">
          Execution <code data-testid="execution-id">{id}</code>
        </h1>
        <span class="spacer" />
        {link && (
          <a href={link} target="_blank" rel="noopener noreferrer" data-testid="execution-temporal-link">
            Workflow exec-{id} in Temporal ↗
          </a>
        )}
        {e && !finished(e.status) && (
          <button type="button" class="danger secondary" data-testid="execution-cancel" onClick={cancel}>
            Cancel
          </button>
        )}
      </div>
      {msg && <Notice>{msg}</Notice>}
      <Problem error={error} />
      {e && (
        <>
          <dl class="facts" data-testid="execution-facts">
            <dt>Function</dt>
            <dd>
              <a href={href(`/functions/${enc(e.function)}`)}>{e.function}</a> v{e.version} ({e.language})
            </dd>
            <dt>Created</dt>
            <dd>{fmtTime(e.created_at)}</dd>
            <dt>Finished</dt>
            <dd>{fmtTime(e.finished_at) || "—"}</dd>
            <dt>Attempts</dt>
            <dd>{e.attempts ?? "—"}</dd>
          </dl>
          <ExecutionResult e={e} testid="execution-result" link={false} />
          <details data-testid="execution-envelope">
            <summary>Envelope (JSON)</summary>
            <JsonBlock value={e} testid="execution-envelope-json" label="execution envelope" />
          </details>
        </>
      )}
    </section>
  );
}
