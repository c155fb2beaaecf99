// The lambda console: a single-page app served by the api under /console/.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { getConfig, loadConfig } from "./api";
import { getKey, onAuthChange, signOut } from "./auth";
import { href, navigate, useRoute } from "./router";
import { SignIn } from "./pages/signin";
import { FunctionList, FunctionPage, NewFunction } from "./pages/functions";
import { ExecutionList, ExecutionPage } from "./pages/executions";
import { NewPipeline, PipelineList, PipelinePage, RunPage } from "./pages/pipelines";
import { Notebook } from "./pages/notebook";

const sections: [string, string][] = [
  ["functions", "Functions"],
  ["executions", "Executions"],
  ["pipelines", "Pipelines"],
  ["notebook", "Notebook"],
];

function Page() {
  const { parts, query } = useRoute();
  const [a, b, c] = parts;
  useEffect(() => {
    const what = sections.find(([s]) => s === a)?.[1] ?? (a === "runs" ? "Run" : "");
    document.title = [b && b !== "new" ? b : "", what, "lambda console"].filter(Boolean).join(" · ");
  }, [a, b]);
  switch (a) {
    case "functions":
      if (b === undefined) return <FunctionList />;
      if (b === "new" && c === undefined) return <NewFunction />;
      return <FunctionPage name={b} tab={query.get("tab") ?? "source"} />;
    case "executions":
      if (b === undefined) return <ExecutionList function={query.get("function") ?? ""} status={query.get("status") ?? ""} />;
      return <ExecutionPage id={b} />;
    case "pipelines":
      if (b === undefined) return <PipelineList />;
      if (b === "new" && c === undefined) return <NewPipeline />;
      return <PipelinePage name={b} />;
    case "runs":
      if (b) return <RunPage id={b} />;
      break;
    case "notebook":
      return <Notebook />;
  }
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is no page <code>{location.hash}</code>. <a href="#/functions">Go to the functions</a>.
      </p>
    </section>
  );
}

function App() {
  const [key, setKey] = useState(getKey());
  const { parts } = useRoute();
  useEffect(() => onAuthChange(() => setKey(getKey())), []);
  useEffect(() => {
    if (!key && parts[0] !== "signin") {
      const back = location.hash && location.hash !== "#/" ? location.hash.slice(1) : "";
      navigate("/signin", { next: back || undefined }, true);
    } else if (key && (parts.length === 0 || parts[0] === "signin")) {
      navigate("/functions", undefined, true);
    }
  }, [key, parts[0]]);

  if (!key) {
    return (
      <main id="main" class="signin-main" tabIndex={-1}>
        <SignIn />
      </main>
    );
  }
  const version = getConfig().version;
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById("main")?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="#/functions" data-testid="brand">
          λ lambda console
        </a>
        <nav aria-label="sections">
          {sections.map(([s, title]) => (
            <a key={s} href={href("/" + s)} data-testid={`nav-${s}`} aria-current={parts[0] === s || (s === "pipelines" && parts[0] === "runs") ? "page" : undefined}>
              {title}
            </a>
          ))}
        </nav>
        <span class="spacer" />
        {version && <span class="muted">{version}</span>}
        <button type="button" class="secondary" data-testid="signout" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <Page />
      </main>
    </>
  );
}

loadConfig().finally(() => render(<App />, document.getElementById("app")!));
