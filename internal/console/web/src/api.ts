// The console's only door to the platform: fetch against this origin's /v1 API with the
// API key as a bearer token. Errors come back as RFC 9457 problem+json and are thrown as
// ApiError so every page shows them the same way.
import { getKey, signOut } from "./auth";

export class ApiError extends Error {
  status: number;
  title: string;
  detail: string;
  type: string;
  requestId: string;
  constructor(status: number, title: string, detail = "", type = "", requestId = "") {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.type = type;
    this.requestId = requestId;
  }
}

export interface Reply<T> {
  status: number;
  headers: Headers;
  data: T;
}

export interface RequestOptions {
  body?: unknown;
  /** A body sent as it is (already JSON text), e.g. an event typed by the user. */
  rawBody?: string;
  headers?: Record<string, string>;
  /** Statuses whose JSON body (not problem+json) is data rather than an error. */
  accept?: number[];
  /** The key to use instead of the signed-in one (the sign-in check). */
  key?: string;
  signal?: AbortSignal;
}

export async function request<T = any>(method: string, path: string, o: RequestOptions = {}): Promise<Reply<T>> {
  const headers: Record<string, string> = { Accept: "application/json, application/problem+json", ...o.headers };
  const key = o.key ?? getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let body: string | undefined;
  if (o.rawBody !== undefined) body = o.rawBody;
  else if (o.body !== undefined) body = JSON.stringify(o.body);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body, signal: o.signal, credentials: "omit", cache: "no-store" });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "The server could not be reached", String((e as Error).message ?? e));
  }
  const type = res.headers.get("Content-Type") ?? "";
  const requestId = res.headers.get("X-Request-Id") ?? "";
  const text = res.status === 204 ? "" : await res.text();
  let data: any = null;
  if (text && type.includes("json")) {
    try {
      data = JSON.parse(text);
    } catch {
      throw new ApiError(res.status, "The server sent malformed JSON", text.slice(0, 200), "", requestId);
    }
  }
  if (type.includes("problem+json") || (!res.ok && !(o.accept ?? []).includes(res.status))) {
    if (res.status === 401 && !o.key) signOut("Your API key was refused (401). Sign in again.");
    const p = data ?? {};
    throw new ApiError(
      res.status,
      p.title || `${res.status} ${res.statusText || "error"}`,
      p.detail || (data ? "" : text.slice(0, 300)),
      p.type || "",
      p.request_id || requestId,
    );
  }
  return { status: res.status, headers: res.headers, data: data as T };
}

export const get = <T = any>(path: string, o?: RequestOptions) => request<T>("GET", path, o).then((r) => r.data);

/** The id at the end of a Location header (/v1/executions/{id}, /v1/runs/{id}). */
export function idFromLocation(h: Headers): string {
  const loc = h.get("Location") ?? "";
  return decodeURIComponent(loc.split("?")[0].split("/").filter(Boolean).pop() ?? "");
}

export const enc = encodeURIComponent;

export interface ExecError {
  type: string;
  message: string;
  stack?: string;
}

export interface Execution {
  id: string;
  function: string;
  version: number;
  language: string;
  mode: string;
  status: string;
  result?: unknown;
  error?: ExecError | null;
  stdout?: string;
  stderr?: string;
  truncated?: boolean;
  duration_ms?: number;
  cached?: boolean;
  attempts?: number;
  created_at?: string;
  finished_at?: string | null;
}

export interface FunctionMeta {
  name: string;
  language: string;
  version: number;
  sha256: string;
  source?: string;
  timeout_ms?: number;
  memory_mb?: number;
  cache_ttl_s?: number;
  env?: Record<string, string> | null;
  created_at?: string;
  function_created_at?: string;
}

export const finished = (status: string) => !["queued", "running", "waiting", "pending", ""].includes(status);

export interface ConsoleConfig {
  temporal_ui_url: string;
  temporal_namespace: string;
  version?: string;
}

let config: ConsoleConfig = { temporal_ui_url: "", temporal_namespace: "default" };
export const getConfig = () => config;

export async function loadConfig(): Promise<void> {
  try {
    const res = await fetch("config.json", { cache: "no-store", credentials: "omit" });
    if (res.ok) config = { ...config, ...(await res.json()) };
  } catch {
    /* the console works without it: no Temporal links */
  }
}

export function temporalLink(workflowId: string): string {
  const c = getConfig();
  if (!c.temporal_ui_url) return "";
  return `${c.temporal_ui_url}/namespaces/${enc(c.temporal_namespace || "default")}/workflows/${enc(workflowId)}`;
}
