// The notebook (DESIGN.md §11): ordered cells run in one session whose interpreter keeps
// its state between cells; Shift+Enter runs a cell and moves on, Ctrl/⌘+Enter stays.
import { useEffect, useRef, useState } from "preact/hooks";
import { enc, ExecError, FunctionMeta, request } from "../api";
import { ErrorBlock, fmtMs, JsonBlock, Notice, Problem, StatusBadge, Stream } from "../components/common";
import { Editor } from "../components/editor";
import { href } from "../router";

interface CellResult {
  index?: number;
  status?: string;
  result?: unknown;
  stdout?: string;
  stderr?: string;
  error?: ExecError | null;
  duration_ms?: number;
  replayed?: boolean;
}

interface Cell {
  key: number;
  source: string;
  include: boolean;
  out?: CellResult;
  problem?: { title: string; detail: string; status: number };
  count?: number;
  running?: boolean;
}

interface Saved {
  language: string;
  session: string;
  cells: Cell[];
  count: number;
}

const storeKey = "lambda.console.notebook";
const sessionLanguages: [string, string][] = [
  ["python", "Python"],
  ["node", "Node.js"],
];
const starter: Record<string, string[]> = {
  python: ["x = 21", 'print("x is", x)', "x * 2"],
  node: ["let x = 21", 'console.log("x is", x)', "x * 2"],
};

let nextKey = 1;
const newCell = (source = ""): Cell => ({ key: nextKey++, source, include: true });

function load(): Saved {
  try {
    const s = JSON.parse(sessionStorage.getItem(storeKey) ?? "") as Saved;
    if (s && Array.isArray(s.cells) && s.cells.length) {
      s.cells = s.cells.map((c) => ({ ...c, key: nextKey++, running: false }));
      return s;
    }
  } catch {
    /* a fresh notebook */
  }
  return { language: "python", session: "", cells: starter.python.map((s) => newCell(s)), count: 0 };
}

const problemOf = (e: any) => ({ title: e?.title ?? "Error", detail: e?.detail ?? String(e?.message ?? e), status: e?.status ?? 0 });

export function Notebook() {
  const [nb, setNb] = useState<Saved>(load);
  const [note, setNote] = useState("");
  const [promoteName, setPromoteName] = useState("");
  const [promoted, setPromoted] = useState<FunctionMeta>();
  const [error, setError] = useState<unknown>();
  const state = useRef(nb);
  state.current = nb;
  useEffect(() => {
    try {
      sessionStorage.setItem(storeKey, JSON.stringify({ ...nb, cells: nb.cells.map(({ running, ...c }) => c) }));
    } catch {
      /* not kept across reloads */
    }
  }, [nb]);

  const update = (f: (s: Saved) => Saved) => {
    state.current = f(state.current);
    setNb(state.current);
  };
  const setCell = (key: number, patch: Partial<Cell>) =>
    update((s) => ({ ...s, cells: s.cells.map((c) => (c.key === key ? { ...c, ...patch } : c)) }));

  const startSession = async (): Promise<string> => {
    const r = await request<{ id: string }>("POST", "/v1/sessions", { body: { language: state.current.language } });
    update((s) => ({ ...s, session: r.data.id }));
    return r.data.id;
  };

  const runCell = async (key: number): Promise<boolean> => {
    const cell = state.current.cells.find((c) => c.key === key);
    if (!cell || cell.running) return false;
    setCell(key, { running: true, problem: undefined });
    setError(undefined);
    try {
      let id = state.current.session || (await startSession());
      const post = () => request<CellResult>("POST", `/v1/sessions/${enc(id)}/cells`, { body: { source: cell.source }, accept: [500, 504] });
      let r;
      try {
        r = await post();
      } catch (e) {
        if ((e as any).status !== 404 && (e as any).status !== 410) throw e;
        setNote("The session had ended (idle expiry); a new one was started, so earlier cells' state is gone: Run all rebuilds it.");
        id = await startSession();
        r = await post();
      }
      const count = state.current.count + 1;
      update((s) => ({ ...s, count }));
      setCell(key, { running: false, out: r.data ?? {}, count });
      if (r.data?.replayed) setNote("The session's interpreter had stopped; its state was rebuilt by replaying the earlier successful cells.");
      return !r.data?.error && (r.data?.status ?? "succeeded") === "succeeded";
    } catch (e) {
      setCell(key, { running: false, out: undefined, problem: problemOf(e) });
      return false;
    }
  };

  const focusCell = (i: number) => {
    requestAnimationFrame(() => (document.querySelector(`[data-testid="cell-editor-${i}"]`) as any)?.cmView?.focus());
  };

  const runAndAdvance = async (key: number) => {
    const i = state.current.cells.findIndex((c) => c.key === key);
    if (i === state.current.cells.length - 1) update((s) => ({ ...s, cells: [...s.cells, newCell()] }));
    focusCell(i + 1);
    await runCell(key);
  };

  const runAll = async () => {
    for (const c of state.current.cells) {
      if (!c.source.trim()) continue;
      if (!(await runCell(c.key))) break;
    }
  };

  const restart = async (language = state.current.language) => {
    const old = state.current.session;
    update((s) => ({ ...s, language, session: "", count: 0, cells: s.cells.map((c) => ({ ...c, out: undefined, problem: undefined, count: undefined })) }));
    setNote(old ? "The session was restarted: its state is gone." : "");
    if (old) {
      try {
        await request("DELETE", `/v1/sessions/${enc(old)}`);
      } catch {
        /* it may have expired already */
      }
    }
  };

  const changeLanguage = (l: string) => {
    const s = state.current;
    const untouched = s.cells.every((c, i) => c.source === (starter[s.language][i] ?? ""));
    restart(l);
    if (untouched) update((x) => ({ ...x, cells: starter[l].map((src) => newCell(src)) }));
  };

  const move = (i: number, d: number) =>
    update((s) => {
      const cells = [...s.cells];
      const j = i + d;
      if (j < 0 || j >= cells.length) return s;
      [cells[i], cells[j]] = [cells[j], cells[i]];
      return { ...s, cells };
    });

  const promote = async () => {
    setError(undefined);
    setPromoted(undefined);
    try {
      const s = state.current;
      if (!s.session) throw new Error("Run the cells first: a function is made from a session's cells.");
      if (!promoteName.trim()) throw new Error("Name the function.");
      const chosen = s.cells.filter((c) => c.include && c.source.trim());
      const body: { name: string; cells?: number[] } = { name: promoteName.trim() };
      if (chosen.length !== s.cells.filter((c) => c.source.trim()).length) {
        const missing = chosen.find((c) => c.out?.index === undefined);
        if (missing) throw new Error(`Cell ${s.cells.indexOf(missing) + 1} has not run in this session; run it before saving it into a function.`);
        body.cells = chosen.map((c) => c.out!.index!);
      }
      const r = await request<FunctionMeta>("POST", `/v1/sessions/${enc(s.session)}/promote`, { body });
      setPromoted(r.data);
    } catch (e) {
      setError(e);
    }
  };

  const busy = nb.cells.some((c) => c.running);
  return (
    <section aria-labelledby="notebook-title">
      <div class="page-head">
        <h1 id="notebook-title">Notebook</h1>
        <label for="notebook-language">Language</label>
        <select id="notebook-language" data-testid="notebook-language" value={nb.language} onChange={(e) => changeLanguage((e.target as HTMLSelectElement).value)} disabled={busy}>
          {sessionLanguages.map(([v, t]) => (
            <option key={v} value={v}>
              {t}
            </option>
          ))}
        </select>
        <span class="muted" data-testid="notebook-session">
          {nb.session ? `session ${nb.session}` : "no session yet (the first run starts one)"}
        </span>
        <span class="spacer" />
        <button type="button" data-testid="notebook-run-all" onClick={runAll} disabled={busy}>
          Run all
        </button>
        <button type="button" class="secondary" data-testid="notebook-restart" onClick={() => restart()} disabled={busy}>
          Restart session
        </button>
      </div>
      <p class="muted">Shift+Enter runs a cell and moves to the next; Ctrl/⌘+Enter runs it and stays. State is kept across cells in one session.</p>
      {note && <Notice testid="notebook-notice">{note}</Notice>}
      <ol class="cells" aria-label="cells">
        {nb.cells.map((c, i) => (
          <li key={c.key} class={`cell${c.running ? " running" : ""}`} data-testid={`cell-${i}`} aria-busy={c.running}>
            <div class="cell-gutter" aria-hidden="true">
              [{c.running ? "*" : c.count ?? " "}]
            </div>
            <div class="cell-body">
              <Editor
                value={c.source}
                onChange={(v) => setCell(c.key, { source: v })}
                language={nb.language}
                label={`cell ${i + 1} source`}
                testid={`cell-editor-${i}`}
                minHeight="28px"
                maxHeight="50vh"
                onRun={() => runAndAdvance(c.key)}
                onRunStay={() => runCell(c.key)}
              />
              <div class="cell-tools" role="group" aria-label={`cell ${i + 1} actions`}>
                <button type="button" class="small" data-testid={`cell-run-${i}`} onClick={() => runCell(c.key)} disabled={c.running} aria-label={`run cell ${i + 1}`}>
                  ▶ Run
                </button>
                <button type="button" class="small secondary" onClick={() => move(i, -1)} disabled={i === 0} aria-label={`move cell ${i + 1} up`}>
                  ↑
                </button>
                <button type="button" class="small secondary" onClick={() => move(i, 1)} disabled={i === nb.cells.length - 1} aria-label={`move cell ${i + 1} down`}>
                  ↓
                </button>
                <button
                  type="button"
                  class="small secondary"
                  data-testid={`cell-delete-${i}`}
                  onClick={() => update((s) => ({ ...s, cells: s.cells.length > 1 ? s.cells.filter((x) => x.key !== c.key) : [newCell()] }))}
                  aria-label={`delete cell ${i + 1}`}
                >
                  ✕
                </button>
                <label class="inline small">
                  <input type="checkbox" data-testid={`cell-include-${i}`} checked={c.include} onChange={(e) => setCell(c.key, { include: (e.target as HTMLInputElement).checked })} /> in
                  function
                </label>
              </div>
              <CellOutput c={c} i={i} />
            </div>
          </li>
        ))}
      </ol>
      <div class="actions">
        <button type="button" class="secondary" data-testid="notebook-add-cell" onClick={() => (update((s) => ({ ...s, cells: [...s.cells, newCell()] })), focusCell(nb.cells.length))}>
          + Add cell
        </button>
      </div>
      <h2>Save as function</h2>
      <p class="muted">Turns the checked cells (run in this session) into a registered function.</p>
      <div class="toolbar">
        <label for="notebook-promote-name">Function name</label>
        <input id="notebook-promote-name" data-testid="notebook-promote-name" value={promoteName} onInput={(e) => setPromoteName((e.target as HTMLInputElement).value)} />
        <button type="button" data-testid="notebook-promote" onClick={promote} disabled={busy}>
          Save as function
        </button>
      </div>
      <Problem error={error} testid="notebook-error" />
      {promoted && (
        <Notice testid="notebook-promote-result">
          Saved as <a href={href(`/functions/${enc(promoted.name)}`, { tab: "invoke" })}>{promoted.name}</a>
          {promoted.version ? ` v${promoted.version}` : ""}.
        </Notice>
      )}
    </section>
  );
}

function CellOutput({ c, i }: { c: Cell; i: number }) {
  if (c.problem) {
    return (
      <div class="cell-output" data-testid={`cell-output-${i}`}>
        <div class="problem" role="alert" data-testid={`cell-error-${i}`}>
          <strong>{c.problem.title}</strong>
          {c.problem.detail && <span class="problem-detail">{c.problem.detail}</span>}
          {c.problem.status > 0 && <span class="problem-meta">HTTP {c.problem.status}</span>}
        </div>
      </div>
    );
  }
  const o = c.out;
  if (!o) return null;
  const status = o.status ?? (o.error ? "failed" : "succeeded");
  return (
    <div class="cell-output" data-testid={`cell-output-${i}`} aria-live="polite">
      <div class="result-head">
        <StatusBadge status={status} testid={`cell-status-${i}`} />
        {o.duration_ms !== undefined && <span>{fmtMs(o.duration_ms)}</span>}
        {o.replayed && <span class="tag">replayed</span>}
      </div>
      <Stream text={o.stdout} testid={`cell-stdout-${i}`} label="stdout" kind="stdout" />
      <Stream text={o.stderr} testid={`cell-stderr-${i}`} label="stderr" kind="stderr" />
      {o.error ? <ErrorBlock error={o.error} testid={`cell-error-${i}`} /> : o.result !== undefined && o.result !== null && <JsonBlock value={o.result} testid={`cell-result-${i}`} label={`cell ${i + 1} result`} />}
    </div>
  );
}
