// Per-function time series over the last hour with uPlot (about 50 KB, canvas, no
// dependencies): calls per second, p50/p99 latency and error rate.
import type uPlot from "uplot";
import { useEffect, useRef, useState } from "preact/hooks";
import { enc, get } from "../api";
import { Problem, usePoll } from "./common";

export interface StatsPoint {
  t: number;
  calls: number;
  errors: number;
  p50_ms: number | null;
  p99_ms: number | null;
}

export interface Stats {
  function?: string;
  window_s?: number;
  step_s?: number;
  source?: string;
  series: StatsPoint[];
}

function Chart(p: { title: string; testid: string; data: uPlot.AlignedData; series: uPlot.Series[]; unit: string; summary: string }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot>();
  const data = useRef(p.data);
  data.current = p.data;
  useEffect(() => {
    const el = host.current!;
    const width = () => Math.max(280, el.clientWidth);
    let live = true;
    let ro: ResizeObserver | undefined;
    import("uplot").then(({ default: UPlot }) => {
      if (!live) return;
      const u = new UPlot(
        {
          width: width(),
          height: 180,
          series: [{}, ...p.series],
          axes: [{}, { size: 56, values: (_u, vals) => vals.map((v) => (v == null ? "" : `${+v.toFixed(3)}${p.unit}`)) }],
          scales: { x: { time: true } },
          legend: { live: true },
          cursor: { drag: { x: false, y: false } },
        },
        data.current,
        el,
      );
      plot.current = u;
      ro = new ResizeObserver(() => u.setSize({ width: width(), height: 180 }));
      ro.observe(el);
    });
    return () => {
      live = false;
      ro?.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
  }, []);
  useEffect(() => plot.current?.setData(p.data), [p.data]);
  return (
    <figure class="chart" data-testid={p.testid}>
      <figcaption>{p.title}</figcaption>
      <div ref={host} role="img" aria-label={`${p.title}: ${p.summary}`} />
    </figure>
  );
}

const last = (xs: (number | null)[]) => {
  for (let i = xs.length - 1; i >= 0; i--) if (xs[i] != null) return xs[i]!;
  return null;
};

export function FunctionCharts({ name }: { name: string }) {
  const [stats, setStats] = useState<Stats>();
  const [error, setError] = useState<unknown>();
  usePoll(
    async () => {
      try {
        setStats(await get<Stats>(`/v1/stats/functions/${enc(name)}?window=1h&step=60s`));
        setError(undefined);
      } catch (e) {
        setError(e);
        if ((e as any).status === 404) return false;
      }
    },
    30_000,
    [name],
  );
  if (error) return <Problem error={error} testid="stats-error" />;
  if (!stats) return <p aria-busy="true">Loading metrics…</p>;
  const s = stats.series ?? [];
  const step = stats.step_s || (s.length > 1 ? s[1].t - s[0].t : 60);
  const t = s.map((x) => x.t);
  const cps = s.map((x) => x.calls / step);
  const p50 = s.map((x) => x.p50_ms);
  const p99 = s.map((x) => x.p99_ms);
  const rate = s.map((x) => (x.calls > 0 ? (100 * x.errors) / x.calls : null));
  const total = s.reduce((a, x) => a + x.calls, 0);
  const errs = s.reduce((a, x) => a + x.errors, 0);
  const fix = (v: number | null, d = 2) => (v == null ? "no data" : v.toFixed(d));
  return (
    <div class="charts" data-testid="stats">
      <p class="muted">
        Last hour, {step} s steps{stats.source ? ` (from ${stats.source})` : ""}: {total} calls, {errs} errors.
      </p>
      <Chart
        title="Calls per second"
        testid="chart-calls"
        unit=""
        summary={`latest ${fix(last(cps))}`}
        data={[t, cps]}
        series={[{ label: "calls/s", stroke: "#1f6feb", fill: "rgba(31,111,235,.12)", width: 2 }]}
      />
      <Chart
        title="Latency (ms)"
        testid="chart-latency"
        unit=""
        summary={`latest p50 ${fix(last(p50))} ms, p99 ${fix(last(p99))} ms`}
        data={[t, p50, p99]}
        series={[
          { label: "p50 ms", stroke: "#2da44e", width: 2, spanGaps: false },
          { label: "p99 ms", stroke: "#bf8700", width: 2, spanGaps: false },
        ]}
      />
      <Chart
        title="Error rate (%)"
        testid="chart-errors"
        unit="%"
        summary={`latest ${fix(last(rate), 1)} %`}
        data={[t, rate]}
        series={[{ label: "errors %", stroke: "#cf222e", fill: "rgba(207,34,46,.1)", width: 2 }]}
      />
    </div>
  );
}
