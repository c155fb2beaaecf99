// A pipeline run's steps as a left-to-right layered graph in plain SVG. Pipelines are
// sequences whose only fan-outs are `parallel` branches (and `map`, drawn as one node
// with its item counts) plus `catch` edges, so a layer is the step's depth in that tree:
// no general graph-layout library is needed.

export interface StepDef {
  id: string;
  function?: string;
  version?: number;
  map?: { items: string; max_concurrency?: number; step: StepDef };
  parallel?: Record<string, StepDef[]>;
  sleep_ms?: number;
  wait_for?: { signal: string; timeout_ms?: number; on_timeout?: unknown };
  catch?: string;
  if?: string;
}

export interface StepState {
  id: string;
  status: string;
  attempts?: number;
  execution_id?: string;
  output?: unknown;
  error?: { type?: string; message?: string; stack?: string } | null;
  started_at?: string | null;
  finished_at?: string | null;
  items?: { total: number; succeeded: number; failed: number };
  steps?: StepState[];
  branches?: Record<string, StepState[]>;
}

interface GNode {
  key: string;
  label: string;
  sub: string;
  layer: number;
  lane: number;
  step?: StepDef;
  kind: "step" | "start" | "end";
}

interface GEdge {
  from: string;
  to: string;
  kind: "next" | "catch";
}

const W = 160, H = 62, IO = 72, GAP_X = 48, GAP_Y = 18, PAD = 16, CATCH = 30;

export function describe(s: StepDef): string {
  if (s.function) return `${s.function}${s.version ? ` v${s.version}` : ""}`;
  if (s.map) return `map: ${s.map.step?.function ?? "step"}`;
  if (s.parallel) return `parallel ×${Object.keys(s.parallel).length}`;
  if (s.sleep_ms !== undefined) return `sleep ${s.sleep_ms >= 1000 ? s.sleep_ms / 1000 + " s" : s.sleep_ms + " ms"}`;
  if (s.wait_for) return `wait: ${s.wait_for.signal}`;
  return "";
}

/** How many lanes (rows) a sequence needs: parallel branches stack their lanes. */
function lanes(steps: StepDef[]): number {
  let n = 1;
  for (const s of steps) {
    if (s.parallel) n = Math.max(n, Object.values(s.parallel).reduce((a, b) => a + lanes(b), 0));
  }
  return n;
}

/**
 * Layers left to right (a step's depth), lanes top to bottom: a sequence keeps its lane,
 * each parallel branch gets lanes of its own below its fork. A branch's lane is empty
 * after the branch ends, so an edge that skips layers runs along it without crossing a node.
 */
export function layout(steps: StepDef[]) {
  const nodes: GNode[] = [];
  const edges: GEdge[] = [];
  const build = (list: StepDef[], preds: GNode[], lane: number): GNode[] => {
    let cur = preds;
    for (const s of list) {
      const layer = Math.max(...cur.map((p) => p.layer)) + 1;
      const n: GNode = { key: s.id, label: s.id, sub: describe(s), layer, lane, step: s, kind: "step" };
      nodes.push(n);
      for (const p of cur) edges.push({ from: p.key, to: n.key, kind: "next" });
      if (s.catch) edges.push({ from: n.key, to: s.catch, kind: "catch" });
      if (s.parallel) {
        const exits: GNode[] = [];
        let l = lane;
        for (const branch of Object.values(s.parallel)) {
          exits.push(...(branch.length ? build(branch, [n], l) : [n]));
          l += lanes(branch);
        }
        cur = exits;
      } else cur = [n];
    }
    return cur;
  };
  const start: GNode = { key: "__input", label: "input", sub: "", layer: 0, lane: 0, kind: "start" };
  nodes.push(start);
  const exits = build(steps, [start], 0);
  const end: GNode = { key: "__output", label: "output", sub: "", layer: Math.max(...exits.map((e) => e.layer)) + 1, lane: 0, kind: "end" };
  nodes.push(end);
  for (const e of exits) edges.push({ from: e.key, to: end.key, kind: "next" });
  const rows = Math.max(...nodes.map((n) => n.lane)) + 1;
  const xOf = (layer: number) => PAD + (layer === 0 ? 0 : IO + GAP_X + (layer - 1) * (W + GAP_X));
  const pos = new Map<string, { x: number; y: number; w: number }>();
  for (const n of nodes) pos.set(n.key, { x: xOf(n.layer), y: PAD + n.lane * (H + GAP_Y), w: n.kind === "step" ? W : IO });
  const lanesH = PAD * 2 + rows * H + (rows - 1) * GAP_Y;
  const hasCatch = edges.some((e) => e.kind === "catch");
  return { nodes, edges, pos, xOf, lanesH, width: xOf(end.layer) + IO + PAD, height: lanesH + (hasCatch ? CATCH : 0) };
}

/** Every step's state by id, including nested ones (parallel branches) if the run lists them. */
export function statesById(steps: StepState[] | undefined, into = new Map<string, StepState>()) {
  for (const s of steps ?? []) {
    into.set(s.id, s);
    if (s.steps) statesById(s.steps, into);
    if (s.branches) for (const b of Object.values(s.branches)) statesById(b, into);
  }
  return into;
}

export function RunGraph(p: {
  steps: StepDef[];
  states: Map<string, StepState>;
  runStatus: string;
  selected?: string;
  onSelect?: (id: string) => void;
  /** The definition's shape only: no statuses, nothing to select. */
  plain?: boolean;
  testid?: string;
}) {
  const g = layout(p.steps);
  const final = ["succeeded", "failed", "canceled"].includes(p.runStatus);
  const statusOf = (n: GNode) => {
    if (p.plain) return "none";
    if (n.kind === "start") return "succeeded";
    if (n.kind === "end") return final ? p.runStatus : "pending";
    return p.states.get(n.key)?.status ?? "pending";
  };
  const layerOf = new Map(g.nodes.map((n) => [n.key, n.layer]));
  const path = (e: GEdge) => {
    const a = g.pos.get(e.from), b = g.pos.get(e.to);
    if (!a || !b) return "";
    if (e.kind === "catch") {
      // Below every lane, from the bottom of the step to the bottom of its catch target.
      const x1 = a.x + a.w / 2, y1 = a.y + H, x2 = b.x + b.w / 2, y2 = b.y + H, low = g.lanesH + CATCH / 2 - 4;
      return `M${x1},${y1} C${x1},${low} ${x1},${low} ${(x1 + x2) / 2},${low} S${x2},${low} ${x2},${y2 + 4}`;
    }
    const x1 = a.x + a.w, y1 = a.y + H / 2, x2 = b.x - 4, y2 = b.y + H / 2;
    // An edge that skips layers runs along its source's lane to the gap before the target.
    const xs = (layerOf.get(e.to) ?? 0) - (layerOf.get(e.from) ?? 0) > 1 ? g.xOf((layerOf.get(e.to) ?? 1) - 1) + W : x1;
    const mx = (xs + x2) / 2;
    return `${xs > x1 ? `M${x1},${y1} L${xs},${y1}` : `M${x1},${y1}`} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
  };
  return (
    <div class="graph-scroll">
      <svg
        class="graph"
        width={g.width}
        height={g.height}
        viewBox={`0 0 ${g.width} ${g.height}`}
        role="group"
        aria-label={p.plain ? "pipeline steps" : "pipeline run steps"}
        data-testid={p.testid ?? "run-graph"}
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" class="arrowhead" />
          </marker>
        </defs>
        {g.edges.map((e) => (
          <path key={`${e.from}-${e.to}-${e.kind}`} d={path(e)} class={`edge ${e.kind}`} marker-end="url(#arrow)" />
        ))}
        {g.nodes.map((n) => {
          const { x, y, w } = g.pos.get(n.key)!;
          const st = statusOf(n);
          const s = p.states.get(n.key);
          const items = s?.items ? ` ${s.items.succeeded + s.items.failed}/${s.items.total}` : "";
          if (n.kind !== "step") {
            return (
              <g key={n.key} class={`node io st-${st}`} transform={`translate(${x},${y})`} data-testid={`run-node-${n.label}`} data-status={st}>
                <rect width={w} height={H} rx={H / 2} />
                <text x={w / 2} y={H / 2 + 5} text-anchor="middle" class="label">
                  {n.label}
                </text>
              </g>
            );
          }
          if (p.plain) {
            return (
              <g key={n.key} class="node plain" transform={`translate(${x},${y})`} data-testid={`step-${n.key}`}>
                <title>{`${n.key}: ${n.sub}`}</title>
                <rect width={W} height={H} rx={6} />
                <text x={10} y={26} class="label">
                  {n.label.length > 19 ? n.label.slice(0, 18) + "…" : n.label}
                </text>
                <text x={10} y={45} class="sub">
                  {n.sub.length > 21 ? n.sub.slice(0, 20) + "…" : n.sub}
                </text>
              </g>
            );
          }
          return (
            <g
              key={n.key}
              class={`node st-${st}${p.selected === n.key ? " selected" : ""}`}
              transform={`translate(${x},${y})`}
              role="button"
              tabIndex={0}
              aria-label={`step ${n.key} (${n.sub}): ${st}${items}`}
              aria-pressed={p.selected === n.key}
              data-testid={`run-step-${n.key}`}
              data-status={st}
              onClick={() => p.onSelect?.(n.key)}
              onKeyDown={(e) => {
                if (e.key === "Enter" || e.key === " ") {
                  e.preventDefault();
                  p.onSelect?.(n.key);
                }
              }}
            >
              <title>{`${n.key}: ${st}`}</title>
              <rect width={W} height={H} rx={6} />
              <text x={10} y={19} class="label">
                {n.label.length > 19 ? n.label.slice(0, 18) + "…" : n.label}
              </text>
              <text x={10} y={36} class="sub">
                {n.sub.length > 21 ? n.sub.slice(0, 20) + "…" : n.sub}
              </text>
              <text x={10} y={53} class="st">
                {st + items}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
