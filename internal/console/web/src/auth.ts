// The API key lives in sessionStorage (this tab only, gone when it closes) or, where that
// is unavailable, in memory; it is never put into a URL.
const storageKey = "lambda.console.apiKey";
let memoryKey = "";
let notice = "";
const listeners = new Set<() => void>();

function storage(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

export function getKey(): string {
  return storage()?.getItem(storageKey) ?? memoryKey;
}

export function signIn(key: string) {
  memoryKey = key;
  try {
    storage()?.setItem(storageKey, key);
  } catch {
    /* memory only */
  }
  notice = "";
  listeners.forEach((f) => f());
}

export function signOut(message = "") {
  memoryKey = "";
  storage()?.removeItem(storageKey);
  // The notebook's session belongs to the key's tenant: the next key starts afresh.
  storage()?.removeItem("lambda.console.notebook");
  notice = message;
  listeners.forEach((f) => f());
}

/** A message for the sign-in page (e.g. why the session ended); read once. */
export function takeNotice(): string {
  const n = notice;
  notice = "";
  return n;
}

export function onAuthChange(f: () => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}
