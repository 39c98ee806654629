/**
 * One self-contained HTML report: the chart library (uPlot, MIT, ~50 KB, inlined with its
 * licence) and the data are in the page, and its Content-Security-Policy forbids every request,
 * so it opens offline and cannot call out.
 *
 * Charts: the latency percentile spectrum (x: percentile on a log scale of 1/(1-p), as
 * HdrHistogram's plotter draws it), latency over time (p50, p99, max per interval), round trips/s
 * over time, errors per interval, for transfer NDJSON throughput over time, and for `perf`'s UDP
 * receivers their jitter and loss over time. Every source
 * (a log, or an agent's tag in it) is a series of its own, drawn in one chart with the others;
 * a run of several agents adds their merged series. Time is seconds from each run's start, so
 * two runs made at different times lie over each other. A table gives each source's
 * parameters and results.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Histogram } from 'hdr-histogram-js';
import { UNITS_PER_MS, percentileMs, type LogUnit } from './histogram.js';
import type { IntervalStats, MergedRun } from './merge.js';
import { summarizeRun, type RunSummary } from './summary.js';
import type { TransferLog } from './transfer-log.js';

export interface HtmlReportInit {
  /** The page's title. Default `socketkit report`. */
  readonly title?: string;
  readonly runs: readonly MergedRun[];
  readonly transfers?: readonly TransferLog[];
  /** UDP receivers over time (`perf`): one series per stream. */
  readonly udp?: readonly UdpSeries[];
  /**
   * What the log's values are, when not round-trip latencies (`perf`: TCP_INFO round-trip times,
   * or UDP transit-time differences): the latency charts' name (`Latency`), and the rate chart's
   * axis (`round trips/s`; null leaves that chart out).
   */
  readonly values?: { readonly name: string; readonly rate: string | null };
  /** The unit of the logs' values. Default µs. */
  readonly unit?: LogUnit;
  /** When the report was made. Default now. */
  readonly generatedAt?: Date;
}

/** A UDP receiver's figures per interval. */
export interface UdpSeries {
  readonly label: string;
  /** Seconds from the test's start, each interval's start. */
  readonly t: readonly number[];
  /** RFC 3550 jitter at each interval's end, ms. */
  readonly jitterMs: readonly number[];
  /** Datagrams lost in each interval, and datagrams that arrived in it (for the share lost). */
  readonly lost: readonly number[];
  readonly packets: readonly number[];
}

/** Points per decade of the spectrum's x axis (1/(1-p)): 20, up to 99.9999 %. */
const SPECTRUM_STEPS_PER_DECADE = 20;
const SPECTRUM_DECADES = 6;

interface SeriesOverTime {
  readonly label: string;
  /** Seconds from the run's start. */
  readonly t: number[];
  /** ms; null for an interval without values (drawn as a gap on the log scale, not as 0). */
  readonly p50: (number | null)[];
  readonly p99: (number | null)[];
  readonly max: (number | null)[];
  readonly rate: number[];
  readonly errors: number[];
}

interface TableRow {
  readonly label: string;
  readonly kind: string;
  readonly cells: readonly string[];
  readonly parameters: string;
}

/** The spectrum of one histogram at the shared x grid: ms, or null past its samples. */
function spectrum(h: Histogram, xs: readonly number[], unit: LogUnit): (number | null)[] {
  return xs.map((x, i) => {
    if (h.totalCount === 0 || x > Math.max(1, h.totalCount)) return null;
    const next = xs[i + 1];
    // The last point a histogram reaches is its max, so every curve ends at its largest value.
    if (next === undefined || next > h.totalCount) return h.maxValue / UNITS_PER_MS[unit];
    return percentileMs(h, 100 * (1 - 1 / x), unit);
  });
}

function overTime(label: string, runStartMs: number, intervals: readonly IntervalStats[], unit: LogUnit): SeriesOverTime {
  const s: SeriesOverTime = { label, t: [], p50: [], p99: [], max: [], rate: [], errors: [] };
  const per = UNITS_PER_MS[unit];
  for (const iv of intervals) {
    const seconds = (iv.endMs - iv.startMs) / 1000;
    s.t.push(Math.round(iv.startMs - runStartMs) / 1000);
    const empty = iv.count === 0;
    s.p50.push(empty ? null : iv.p50 / per);
    s.p99.push(empty ? null : iv.p99 / per);
    s.max.push(empty ? null : iv.max / per);
    s.rate.push(seconds > 0 ? iv.count / seconds : 0);
    s.errors.push(iv.errors.count);
  }
  return s;
}

const ms = (x: number): string => (x < 1 ? x.toFixed(3) : x < 100 ? x.toFixed(1) : x.toFixed(0));
const grouped = (n: number): string => Math.round(n).toLocaleString('en-US');

function params(p: Readonly<Record<string, unknown>>): string {
  return Object.entries(p)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
}

function row(kind: string, s: RunSummary, label: string): TableRow {
  const l = s.latency;
  const codes = Object.entries(s.errorCodes).map(([c, n]) => `${c} ${n}`).join(', ');
  return {
    label,
    kind,
    cells: [s.startTime.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), s.seconds.toFixed(2), grouped(s.roundTrips), grouped(s.roundTripsPerSecond), `${s.errors}${codes ? ` (${codes})` : ''}`, ms(l.p50), ms(l.p90), ms(l.p99), ms(l.p999), ms(l.max)],
    parameters: params(s.parameters),
  };
}

/** The page's data: everything the charts and the table draw. */
export function reportData(init: HtmlReportInit): Record<string, unknown> {
  const xs = Array.from({ length: SPECTRUM_STEPS_PER_DECADE * SPECTRUM_DECADES + 1 }, (_, i) => 10 ** (i / SPECTRUM_STEPS_PER_DECADE));
  const spectra: { label: string; y: (number | null)[] }[] = [];
  const lines: SeriesOverTime[] = [];
  // Latency over time is drawn per run (the merged agents), three lines each: per agent it would be
  // three lines times every agent, more than a chart can show.
  const runLines: SeriesOverTime[] = [];
  const table: TableRow[] = [];
  const unit = init.unit ?? 'us';
  init.runs.forEach((run, r) => {
    const runLabel = init.runs.length > 1 ? `run ${r + 1}: ` : '';
    for (const { source: src, histogram, errors, intervals } of run.perSource) {
      spectra.push({ label: runLabel + src.label, y: spectrum(histogram, xs, unit) });
      lines.push(overTime(runLabel + src.label, run.startMs, intervals, unit));
      table.push(row('log', summarizeRun({ sources: [src], startMs: src.startMs, endMs: src.endMs, histogram, errors }, unit), runLabel + src.label));
    }
    const label = run.sources.length > 1 ? `${runLabel}all ${run.sources.length} merged` : runLabel + run.sources[0]!.label;
    if (run.sources.length > 1) {
      spectra.push({ label, y: spectrum(run.histogram, xs, unit) });
      lines.push(overTime(label, run.startMs, run.intervals, unit));
      table.push(row('merged', summarizeRun(run, unit), label));
    }
    runLines.push(overTime(label, run.startMs, run.intervals, unit));
  });
  const transfers = (init.transfers ?? []).map((t) => ({
    label: t.name,
    t: t.slots.map((s) => Math.round(s.startMs - t.startMs) / 1000),
    mibps: t.slots.map((s) => (s.bytes / ((s.endMs - s.startMs) / 1000)) / 2 ** 20),
    bytes: t.bytes,
    files: t.files,
    failed: t.failed,
    seconds: (t.endMs - t.startMs) / 1000,
    start: new Date(t.startMs).toISOString(),
  }));
  const udp = (init.udp ?? []).map((u) => ({
    label: u.label,
    t: u.t,
    jitterMs: u.jitterMs,
    lostPercent: u.lost.map((l, i) => (l + (u.packets[i] ?? 0) > 0 ? (100 * l) / (l + (u.packets[i] ?? 0)) : null)),
  }));
  return {
    title: init.title ?? 'socketkit report',
    generated: (init.generatedAt ?? new Date()).toISOString(),
    spectrum: { x: xs, series: spectra },
    lines,
    runLines,
    table: { head: ['start', 'seconds', 'round trips', 'per second', 'errors', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms'], rows: table },
    transfers,
    udp,
    values: { name: init.values?.name ?? 'Latency', rate: init.values ? init.values.rate : 'round trips/s' },
    // A log without a value (a perf test that only sends UDP) draws no value charts beside the others.
    valueCharts: lines.some((l) => l.p50.some((v) => v !== null)) || (transfers.length === 0 && udp.length === 0),
  };
}

interface UplotAssets {
  readonly js: string;
  readonly css: string;
  readonly licence: string;
  readonly version: string;
}

let uplotAssets: Promise<UplotAssets> | undefined;

/** uPlot's script, style sheet and licence, from its npm package. */
async function loadUplot(): Promise<UplotAssets> {
  uplotAssets ??= (async () => {
    const require = createRequire(import.meta.url);
    const dist = dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
    const [js, css, licence, pkg] = await Promise.all([
      readFile(join(dist, 'uPlot.iife.min.js'), 'utf8'),
      readFile(join(dist, 'uPlot.min.css'), 'utf8'),
      readFile(join(dist, '..', 'LICENSE'), 'utf8'),
      readFile(join(dist, '..', 'package.json'), 'utf8'),
    ]);
    // A script that held `</script` would end its element early; uPlot's does not, and this keeps it so.
    const version = (JSON.parse(pkg) as { version?: string }).version ?? '';
    return { js: js.replace(/<\/script/gi, '<\\/script'), css, licence, version };
  })();
  return uplotAssets;
}

/** JSON safe inside a `<script>` element (no `</script>`, no `<!--`). */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const PAGE_STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #1d2430; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 18px 0 4px; }
.meta { color: #5a6270; margin-bottom: 8px; }
.charts { max-width: 1200px; }
.u-legend { font-size: 12px; } .u-legend .u-series > * { padding: 1px 3px; }
figure { margin: 0; } figcaption { color: #5a6270; font-size: 12px; }
table { border-collapse: collapse; margin-top: 8px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #dde1e6; padding: 3px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, td.params { text-align: left; } td.params { white-space: normal; color: #5a6270; max-width: 420px; }
`;

/** The page's script: draws every chart from the data element, with uPlot. */
const PAGE_SCRIPT = `
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
  var charts = [];
  window.socketkitCharts = charts;
  document.getElementById('title').textContent = data.title;
  document.title = data.title;
  document.getElementById('generated').textContent = 'made ' + data.generated;
  function width(el) { return Math.max(480, Math.floor(el.clientWidth || 900)); }
  function figure(id, title, caption) {
    var f = document.createElement('figure');
    f.id = id;
    var h = document.createElement('h2'); h.textContent = title; f.appendChild(h);
    var c = document.createElement('figcaption'); c.textContent = caption; f.appendChild(c);
    document.getElementById('charts').appendChild(f);
    return f;
  }
  function chart(id, title, caption, xLabel, yLabel, series, tables, extra) {
    var f = figure(id, title, caption);
    var joined = tables.length === 1 ? tables[0] : uPlot.join(tables);
    var opts = {
      width: width(f), height: 300,
      // Room on the right for the last tick's label (99.9999%).
      padding: [12, 40, 0, 0],
      scales: extra && extra.scales || { x: { time: false } },
      axes: [
        Object.assign({ label: xLabel, stroke: '#1d2430', grid: { stroke: '#eceff3' } }, extra && extra.xAxis || {}),
        { label: yLabel, stroke: '#1d2430', grid: { stroke: '#eceff3' }, size: 60 }
      ],
      series: [{ label: xLabel }].concat(series.map(function (s) { return Object.assign({ spanGaps: !(extra && extra.gaps), width: 1.5, points: { show: false } }, s); })),
      legend: { live: false }
    };
    var u = new uPlot(opts, joined, f);
    charts.push({ id: id, title: title, plot: u });
  }
  // 1. Percentile spectrum: x = 1/(1-p), log scale, labelled as percentiles.
  var sp = data.spectrum;
  var V = data.values;
  if (sp.series.length > 0 && data.valueCharts) {
    chart('spectrum', V.name + ' by percentile', 'every value a log holds, as HdrHistogram plots it: the x axis is 1/(1-percentile) on a log scale',
      'percentile', V.name.toLowerCase() + ' (ms)',
      sp.series.map(function (s, i) { return { label: s.label, stroke: COLORS[i % COLORS.length] }; }),
      [[sp.x].concat(sp.series.map(function (s) { return s.y; }))],
      { scales: { x: { time: false, distr: 3, log: 10 } },
        // Ticks at the powers of ten only: 0%, 90%, 99%, 99.9%, …
        xAxis: {
          splits: function (u) { var out = []; for (var v = 1; v <= u.scales.x.max * 1.0001; v *= 10) out.push(v); return out; },
          values: function (u, splits) { return splits.map(function (v) { var p = 100 * (1 - 1 / v); return (p <= 0 ? '0' : String(+p.toFixed(6))) + '%'; }); }
        } });
  }
  // 2-4. Over time, one series (or three) per source.
  var L = data.lines;
  if (L.length > 0 && data.valueCharts) {
    var lat = [], latTables = [], rate = [], rateTables = [], err = [], errTables = [];
    data.runLines.forEach(function (s, i) {
      var c = COLORS[i % COLORS.length];
      lat.push({ label: s.label + ' p50', stroke: c, width: 1 });
      lat.push({ label: s.label + ' p99', stroke: c, width: 2 });
      lat.push({ label: s.label + ' max', stroke: c, width: 1, dash: [6, 4] });
      latTables.push([s.t, s.p50, s.p99, s.max]);
    });
    L.forEach(function (s, i) {
      var c = COLORS[i % COLORS.length];
      rate.push({ label: s.label, stroke: c });
      rateTables.push([s.t, s.rate]);
      err.push({ label: s.label, stroke: c });
      errTables.push([s.t, s.errors]);
    });
    // A log scale: the max of a stall would otherwise flatten p50 and p99 onto the axis.
    chart('latency', V.name + ' over time', 'p50 (thin), p99 (thick) and max (dashed) of each interval, per run (the agents of a run merged); log scale', 'seconds from the start', V.name.toLowerCase() + ' (ms)', lat, latTables,
      { scales: { x: { time: false }, y: { distr: 3, log: 10 } }, gaps: true });
    if (V.rate !== null) chart('rate', V.rate === 'round trips/s' ? 'Round trips per second' : V.rate, 'values recorded in each interval, per second', 'seconds from the start', V.rate, rate, rateTables);
    chart('errors', 'Errors over time', 'errors counted in each interval', 'seconds from the start', 'errors', err, errTables);
  }
  // A y axis from 0, so that small changes do not look like large ones.
  var fromZero = { scales: { x: { time: false }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } } };
  // 5. Transfers: throughput over time.
  if (data.transfers.length > 0) {
    chart('throughput', 'Transfer throughput', 'bytes moved in each interval, per second', 'seconds from the start', 'MiB/s',
      data.transfers.map(function (t, i) { return { label: t.label, stroke: COLORS[i % COLORS.length] }; }),
      data.transfers.map(function (t) { return [t.t, t.mibps]; }), fromZero);
  }
  // 6-7. UDP receivers: jitter and loss over time, a series per stream.
  if (data.udp.length > 0) {
    var udpSeries = data.udp.map(function (u, i) { return { label: u.label, stroke: COLORS[i % COLORS.length] }; });
    chart('jitter', 'UDP jitter over time', 'the RFC 3550 interarrival jitter estimate at the end of each interval, per receiving stream', 'seconds from the start', 'jitter (ms)',
      udpSeries, data.udp.map(function (u) { return [u.t, u.jitterMs]; }), fromZero);
    chart('loss', 'UDP loss over time', 'datagrams lost in each interval (missing below the highest sequence number seen), as a share of those due, per receiving stream', 'seconds from the start', 'lost (%)',
      udpSeries, data.udp.map(function (u) { return [u.t, u.lostPercent]; }), { scales: { x: { time: false }, y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } } });
  }
  // The table.
  var table = document.getElementById('results');
  var head = document.createElement('tr');
  ['source'].concat(data.table.head).concat(['parameters']).forEach(function (h) { var th = document.createElement('th'); th.textContent = h; head.appendChild(th); });
  table.appendChild(head);
  data.table.rows.forEach(function (r) {
    var tr = document.createElement('tr');
    var td = document.createElement('td'); td.textContent = r.label + (r.kind === 'merged' ? ' (sum)' : ''); tr.appendChild(td);
    r.cells.forEach(function (c) { var d = document.createElement('td'); d.textContent = c; tr.appendChild(d); });
    var p = document.createElement('td'); p.className = 'params'; p.textContent = r.parameters; tr.appendChild(p);
    table.appendChild(tr);
  });
  function rows(el, head, list) {
    var tr = document.createElement('tr');
    head.forEach(function (h) { var th = document.createElement('th'); th.textContent = h; tr.appendChild(th); });
    el.appendChild(tr);
    list.forEach(function (cells) {
      var r = document.createElement('tr');
      cells.forEach(function (c) { var d = document.createElement('td'); d.textContent = c; r.appendChild(d); });
      el.appendChild(r);
    });
  }
  if (data.table.rows.length === 0) table.style.display = 'none';
  var transfers = document.getElementById('transfers');
  if (data.transfers.length > 0) {
    rows(transfers, ['transfer', 'start', 'seconds', 'files', 'failed', 'MiB', 'MiB/s'], data.transfers.map(function (t) {
      return [t.label, t.start.replace('T', ' ').replace(/\\.\\d+Z$/, 'Z'), t.seconds.toFixed(2), String(t.files), String(t.failed), (t.bytes / 1048576).toFixed(2), t.seconds > 0 ? (t.bytes / 1048576 / t.seconds).toFixed(2) : '-'];
    }));
  } else transfers.style.display = 'none';
  document.body.setAttribute('data-rendered', String(charts.length));
})();
`;

/** Renders the report page: one HTML document holding the chart library, its data and the drawing script. */
export async function renderHtmlReport(init: HtmlReportInit): Promise<string> {
  const { js, css, licence, version } = await loadUplot();
  const data = reportData(init);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>socketkit report</title>
<style>${css}</style>
<style>${PAGE_STYLE}</style>
</head>
<body>
<h1 id="title"></h1>
<div class="meta" id="generated"></div>
<div class="charts" id="charts"></div>
<h2>Parameters and results</h2>
<table id="results"></table>
<table id="transfers"></table>
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<!-- uPlot ${version}, https://github.com/leeoniya/uPlot
${licence.replace(/--/g, '- -')}
-->
<script>${js}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
