// CodeMirror 6 editors: source per language, JSON events, and the two-version diff.
import { basicSetup } from "codemirror";
import { indentWithTab } from "@codemirror/commands";
import { Compartment, EditorState, Extension, Prec } from "@codemirror/state";
import { EditorView, keymap } from "@codemirror/view";
import { useEffect, useRef } from "preact/hooks";

/** The CSP nonce index.html carries: CodeMirror labels its <style> elements with it. */
const nonce = document.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content ?? "";

/**
 * The language's highlighting and indentation, loaded on first use: the grammars are most
 * of the bundle's weight and each page needs one or two of them.
 */
export async function languageSupport(lang: string): Promise<Extension> {
  switch (lang.toLowerCase()) {
    case "python":
    case "python3":
    case "py":
      return (await import("@codemirror/lang-python")).python();
    case "node":
    case "nodejs":
    case "javascript":
    case "js":
      return (await import("@codemirror/lang-javascript")).javascript();
    case "typescript":
    case "ts":
      return (await import("@codemirror/lang-javascript")).javascript({ typescript: true });
    case "rust":
    case "rs":
      return (await import("@codemirror/lang-rust")).rust();
    case "json":
      return (await import("@codemirror/lang-json")).json();
  }
  return [];
}

const theme = EditorView.theme({
  "&": { fontSize: "13px", border: "1px solid var(--border)", borderRadius: "4px", background: "#fff" },
  "&.cm-focused": { outline: "2px solid var(--focus)", outlineOffset: "0" },
  ".cm-scroller": { fontFamily: "var(--mono)", lineHeight: "1.45" },
  ".cm-gutters": { background: "#f6f8fa", borderRight: "1px solid var(--border)" },
});

function common(label: string): Extension[] {
  return [
    basicSetup,
    keymap.of([indentWithTab]),
    theme,
    EditorView.cspNonce.of(nonce),
    EditorView.contentAttributes.of({ "aria-label": label }),
  ];
}

export interface EditorProps {
  value: string;
  onChange?: (v: string) => void;
  language: string;
  label: string;
  testid: string;
  id?: string;
  readOnly?: boolean;
  minHeight?: string;
  maxHeight?: string;
  /** Shift+Enter and Mod+Enter. */
  onRun?: () => void;
  /** Mod+Enter only, when it should differ from Shift+Enter (the notebook: run, stay). */
  onRunStay?: () => void;
  onSave?: () => void;
  autofocus?: boolean;
}

/**
 * A CodeMirror editor. Its wrapper (data-testid) exposes the EditorView as `cmView` so
 * browser tests can set a document without typing through auto-indent and auto-close.
 */
export function Editor(p: EditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView>();
  const props = useRef(p);
  props.current = p;
  const langConf = useRef(new Compartment());
  const roConf = useRef(new Compartment());

  useEffect(() => {
    const run = (f?: () => void) => () => {
      if (!f) return false;
      f();
      return true;
    };
    const v = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: p.value,
        extensions: [
          Prec.highest(
            keymap.of([
              { key: "Shift-Enter", run: () => run(props.current.onRun)() },
              { key: "Mod-Enter", run: () => run(props.current.onRunStay ?? props.current.onRun)() },
              { key: "Mod-s", run: () => run(props.current.onSave)(), preventDefault: true },
            ]),
          ),
          common(p.label),
          langConf.current.of([]),
          roConf.current.of([EditorState.readOnly.of(!!p.readOnly), EditorView.editable.of(!p.readOnly)]),
          EditorView.theme({
            ".cm-content, .cm-gutter": { minHeight: p.minHeight ?? "120px" },
            ".cm-scroller": { maxHeight: p.maxHeight ?? "60vh", overflow: "auto" },
          }),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) props.current.onChange?.(u.state.doc.toString());
          }),
        ],
      }),
    });
    view.current = v;
    (host.current as any).cmView = v;
    if (p.autofocus) v.focus();
    return () => v.destroy();
  }, []);

  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== p.value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: p.value } });
    }
  }, [p.value]);

  useEffect(() => {
    let live = true;
    languageSupport(p.language).then((ext) => {
      if (live) view.current?.dispatch({ effects: langConf.current.reconfigure(ext) });
    });
    return () => {
      live = false;
    };
  }, [p.language]);

  useEffect(() => {
    view.current?.dispatch({
      effects: roConf.current.reconfigure([EditorState.readOnly.of(!!p.readOnly), EditorView.editable.of(!p.readOnly)]),
    });
  }, [p.readOnly]);

  return <div class="editor" ref={host} id={p.id} data-testid={p.testid} />;
}

export function DiffView(p: { a: string; b: string; language: string; testid: string; labelA: string; labelB: string }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    let m: { destroy(): void } | undefined;
    let live = true;
    Promise.all([import("@codemirror/merge"), languageSupport(p.language)]).then(([{ MergeView }, lang]) => {
      if (!live) return;
      const ext = (label: string) => [common(label), lang, EditorState.readOnly.of(true), EditorView.editable.of(false)];
      m = new MergeView({
        parent: host.current!,
        a: { doc: p.a, extensions: ext(p.labelA) },
        b: { doc: p.b, extensions: ext(p.labelB) },
        gutter: true,
        collapseUnchanged: { margin: 3, minSize: 6 },
      });
    });
    return () => {
      live = false;
      m?.destroy();
    };
  }, [p.a, p.b, p.language]);
  return <div class="diff" ref={host} data-testid={p.testid} />;
}
