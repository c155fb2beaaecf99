// Bundles src/ into ../dist: hashed JS and CSS under assets/ (with .gz siblings that the
// Go handler serves to browsers that accept gzip), index.html and the icon.
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "dist");

for (const name of readdirSync(dist)) {
  if (name !== ".gitkeep") rmSync(join(dist, name), { recursive: true, force: true });
}

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ["src/main.tsx"],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022", "chrome111", "firefox115", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  outdir: join(dist, "assets"),
  entryNames: "[name]-[hash]",
  chunkNames: "chunk-[hash]",
  splitting: true,
  assetNames: "[name]-[hash]",
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
});

const outputs = Object.keys(result.metafile.outputs).map((p) => join(here, p));
const entry = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint);
const js = entry && join(here, entry[0]);
const css = entry?.[1].cssBundle && join(here, entry[1].cssBundle);
if (!js || !css) throw new Error("esbuild produced no JS or CSS bundle");

let raw = 0, gz = 0;
for (const p of outputs) {
  const body = readFileSync(p);
  const z = gzipSync(body, { level: 9 });
  writeFileSync(p + ".gz", z);
  raw += body.length;
  gz += z.length;
}

const icon = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#1f4e79"/><path d="M9 25 15.5 12 13 7h4l9 18h-4l-4.5-9L13 25z" fill="#fff"/></svg>\n`;
const iconName = `icon-${createHash("sha256").update(icon).digest("hex").slice(0, 8).toUpperCase()}.svg`;
writeFileSync(join(dist, "assets", iconName), icon);

// The nonce mark is replaced by the Go handler with each response's CSP nonce: CodeMirror
// reads it from this meta element to label the <style> elements it mounts.
const index = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csp-nonce" content="__CSP_NONCE__">
<title>lambda console</title>
<link rel="icon" href="assets/${iconName}" type="image/svg+xml">
<link rel="stylesheet" href="assets/${basename(css)}">
<script type="module" src="assets/${basename(js)}"></script>
</head>
<body>
<noscript>The lambda console needs JavaScript.</noscript>
<div id="app"></div>
</body>
</html>
`;
writeFileSync(join(dist, "index.html"), index);
const kib = (n) => (n / 1024).toFixed(1) + " KiB";
// What the first page load fetches: the entry, its static imports (transitively) and the CSS.
const statics = new Set([entry[0]]);
for (const p of statics) {
  for (const i of result.metafile.outputs[p].imports) if (i.kind === "import-statement") statics.add(i.path);
}
const firstFiles = [...statics, entry[1].cssBundle].map((p) => join(here, p));
const first = firstFiles.reduce((n, p) => n + readFileSync(p).length, 0);
const firstGz = firstFiles.reduce((n, p) => n + readFileSync(p + ".gz").length, 0);
console.log(
  `console: ${outputs.length} files, ${kib(raw)} (gzip ${kib(gz)}); loaded first (entry, its static imports, CSS): ${kib(first)} (gzip ${kib(firstGz)}) -> ${dist}`,
);
