import { useState } from "preact/hooks";
import { get } from "../api";
import { signIn, takeNotice } from "../auth";
import { Notice, Problem } from "../components/common";
import { navigate, parse } from "../router";

export function SignIn() {
  const [key, setKey] = useState("");
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [notice] = useState(takeNotice);
  const submit = async (e: Event) => {
    e.preventDefault();
    const k = key.trim();
    if (!k) {
      setError(new Error("Enter an API key."));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      // Any authenticated read proves the key; the list is what the next page shows.
      await get("/v1/functions", { key: k });
      const next = parse(location.hash).query.get("next");
      signIn(k);
      navigate(next && next.startsWith("/") && !next.startsWith("/signin") ? next : "/functions", undefined, true);
    } catch (err) {
      const ae = err as any;
      setError(ae.status === 401 ? Object.assign(ae, { title: "The API key was refused" }) : err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="signin" aria-labelledby="signin-title">
      <h1 id="signin-title">λ lambda console</h1>
      <p class="muted">Sign in with an API key. It is kept in this tab only (session storage) and sent as a bearer token.</p>
      {notice && <Notice testid="signin-notice">{notice}</Notice>}
      <form onSubmit={submit} data-testid="signin-form" id="signin-form">
        <label for="signin-key">API key</label>
        <input
          id="signin-key"
          data-testid="signin-key"
          type="password"
          autocomplete="off"
          spellcheck={false}
          placeholder="lmk_…"
          value={key}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
          autofocus
          required
        />
        <button type="submit" id="signin-submit" data-testid="signin-submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
      <Problem error={error} testid="signin-error" />
    </section>
  );
}
