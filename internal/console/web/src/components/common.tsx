import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, ExecError } from "../api";

/** A failed call as people read it: the problem's title and detail, its status and request id. */
export function Problem({ error, testid = "error" }: { error: unknown; testid?: string }) {
  if (!error) return null;
  const e = error as any;
  const isApi = e instanceof ApiError;
  return (
    <div class="problem" role="alert" data-testid={testid}>
      <strong>{isApi ? e.title : "Error"}</strong>
      {(isApi ? e.detail : String(e.message ?? e)) && <span class="problem-detail">{isApi ? e.detail : String(e.message ?? e)}</span>}
      {isApi && (e.status > 0 || e.requestId) && (
        <span class="problem-meta">
          {e.status > 0 && `HTTP ${e.status}`}
          {e.requestId && ` · request ${e.requestId}`}
        </span>
      )}
    </div>
  );
}

export function Notice({ children, testid = "notice" }: { children: ComponentChildren; testid?: string }) {
  return (
    <div class="notice" role="status" data-testid={testid}>
      {children}
    </div>
  );
}

export function StatusBadge({ status, testid = "status" }: { status: string; testid?: string }) {
  return (
    <span class={`badge st-${status || "pending"}`} data-testid={testid} data-status={status}>
      {status || "pending"}
    </span>
  );
}

export function json(v: unknown): string {
  if (v === undefined) return "";
  return JSON.stringify(v, null, 2);
}

export function JsonBlock({ value, testid, label }: { value: unknown; testid: string; label: string }) {
  return (
    <pre class="json" data-testid={testid} aria-label={label} tabIndex={0}>
      {json(value)}
    </pre>
  );
}

export function Stream({ text, testid, label, kind }: { text?: string; testid: string; label: string; kind: string }) {
  if (!text) return null;
  return (
    <section class={`stream ${kind}`}>
      <h4>{label}</h4>
      <pre data-testid={testid} tabIndex={0} aria-label={label}>
        {text}
      </pre>
    </section>
  );
}

export function ErrorBlock({ error, testid }: { error?: ExecError | null; testid: string }) {
  if (!error) return null;
  return (
    <section class="stream stderr" data-testid={testid}>
      <h4>
        {error.type || "Error"}: {error.message}
      </h4>
      {error.stack && (
        <pre tabIndex={0} aria-label="traceback">
          {error.stack}
        </pre>
      )}
    </section>
  );
}

export function fmtTime(s?: string | null): string {
  if (!s) return "";
  const d = new Date(s);
  if (isNaN(d.getTime())) return s;
  return d.toLocaleString(undefined, { hour12: false });
}

export function fmtMs(ms?: number): string {
  if (ms === undefined || ms === null) return "";
  if (ms < 10) return ms.toFixed(2) + " ms";
  if (ms < 1000) return ms.toFixed(1) + " ms";
  return (ms / 1000).toFixed(2) + " s";
}

/** Tabs with the WAI-ARIA roles; the selected one is kept in the route by the caller. */
export function Tabs<T extends string>(p: {
  tabs: [T, string][];
  selected: T;
  onSelect: (t: T) => void;
  label: string;
  idPrefix: string;
}) {
  return (
    <div role="tablist" aria-label={p.label} class="tabs">
      {p.tabs.map(([t, title]) => (
        <button
          type="button"
          role="tab"
          id={`${p.idPrefix}-tab-${t}`}
          data-testid={`${p.idPrefix}-tab-${t}`}
          aria-selected={p.selected === t}
          aria-controls={`${p.idPrefix}-panel`}
          tabIndex={p.selected === t ? 0 : -1}
          class={p.selected === t ? "tab selected" : "tab"}
          onClick={() => p.onSelect(t)}
          onKeyDown={(e) => {
            const i = p.tabs.findIndex(([x]) => x === t);
            const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
            if (d) {
              const next = p.tabs[(i + d + p.tabs.length) % p.tabs.length][0];
              p.onSelect(next);
              document.getElementById(`${p.idPrefix}-tab-${next}`)?.focus();
            }
          }}
        >
          {title}
        </button>
      ))}
    </div>
  );
}

/** Calls f now and every ms while the tab is visible; stops on unmount or when f returns false. */
export function usePoll(f: () => Promise<boolean | void>, ms: number, deps: unknown[], enabled = true) {
  const fn = useRef(f);
  fn.current = f;
  useEffect(() => {
    if (!enabled) return;
    let stop = false;
    let timer = 0;
    const tick = async () => {
      if (stop) return;
      if (document.visibilityState !== "hidden") {
        let again: boolean | void = true;
        try {
          again = await fn.current();
        } catch {
          /* the page shows its own error */
        }
        if (again === false || stop) return;
      }
      timer = window.setTimeout(tick, ms);
    };
    tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [...deps, enabled]);
}

export function useAsync<T>(f: () => Promise<T>, deps: unknown[]): { data?: T; error?: unknown; loading: boolean; reload: () => void } {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    f().then(
      (data) => live && setState({ data, loading: false }),
      (error) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  return { ...state, reload: () => setN((x) => x + 1) };
}

export function parseJSON(text: string, what: string): unknown {
  if (text.trim() === "") return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}
