// `socketkit report --html`: the page, opened in a real browser (Debian's chromium, driven by
// playwright-core): every chart drawn with its axes labelled, no request to anything but the page
// itself, no console error; a screenshot is saved (in SOCKETKIT_SCREENSHOT_DIR when set, to look at).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IntervalRecorder, mergeLogs, parseIntervalLog, renderHtmlReport } from '../src/report/index.js';
import { requireTool, runMain } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';
import { openReport } from './helpers/browser.js';

const T0 = 1_764_681_156_000;

/** An agent's log: `seconds` intervals of latencies around `baseUs`, a stall in the middle, some errors. */
function agentLog(tag: string | undefined, startMs: number, seconds: number, baseUs: number, seed: number): string {
  let now = startMs;
  let out = '';
  const rec = new IntervalRecorder((s) => (out += s), { ...(tag !== undefined ? { tag } : {}), startTimeMs: startMs, now: () => now, parameters: { command: 'load', target: '127.0.0.1:9800', connections: 50, size: 64 } });
  let x = seed;
  const rand = (): number => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let s = 0; s < seconds; s++) {
    const n = 800 + Math.floor(rand() * 400);
    for (let k = 0; k < n; k++) {
      const tail = rand() < 0.01 ? 20 : 1;
      rec.record(baseUs * (0.5 + rand()) * tail * (s === Math.floor(seconds / 2) ? 3 : 1));
    }
    if (s % 4 === 1) rec.recordError('ERR_TIMEOUT', 1 + Math.floor(rand() * 5));
    now += 1000;
    rec.flush();
  }
  return out;
}

/** NDJSON as `get --json` prints it: one file moving at a varying speed. */
function transferNdjson(startMs: number): string {
  const lines = [{ event: 'file-start', ts: new Date(startMs).toISOString(), path: 'big.iso', size: 200 * 2 ** 20, offset: 0 }];
  let bytes = 0;
  for (let s = 1; s <= 10; s++) {
    bytes += (10 + 5 * Math.sin(s)) * 2 ** 20;
    lines.push({ event: 'progress', ts: new Date(startMs + s * 1000).toISOString(), path: 'big.iso', bytes: Math.round(bytes), size: 200 * 2 ** 20 } as never);
  }
  return lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
}

interface ChartCheck {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: number;
  points: number;
  width: number;
  height: number;
  /** Pixels in the plotting area that are not background. */
  drawn: number;
}

describe('report --html, the page', () => {
  it('is one file: no external script, style or link; a Content-Security-Policy that forbids requests; uPlot and its licence inlined', async () => {
    const page = await renderHtmlReport({ runs: mergeLogs([parseIntervalLog(agentLog('a', T0, 3, 500, 1), 'a.hlog')]) });
    assert.match(page, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">/);
    assert.doesNotMatch(page, /<script[^>]+src=|<link\b|@import|url\(/i);
    assert.match(page, /The MIT License \(MIT\)\n\nCopyright \(c\) 2022 Leon Sorokin/);
    assert.ok(page.length < 200_000, `${page.length} bytes`);
  });

  it('cannot be broken out of by a tag or a parameter that holds </script>', async () => {
    const log = parseIntervalLog(agentLog('x</script><script>alert(1)</script>', T0, 2, 500, 1).replace('"command":"load"', '"command":"</script><b>"'), 'evil.hlog');
    const page = await renderHtmlReport({ runs: mergeLogs([log]) });
    assert.equal(page.match(/<\/script>/g)?.length, 3, 'the data, uPlot and the page script end once each');
    const json = /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(page)![1]!;
    const data = JSON.parse(json) as { table: { rows: { label: string; parameters: string }[] } };
    assert.equal(data.table.rows[0]!.label, 'evil.hlog [x</script><script>alert(1)</script>]');
    assert.match(data.table.rows[0]!.parameters, /command=<\/script><b>/);
  });
});

describe('report --html in a real browser', () => {
  it('draws every chart with labelled axes, makes no request, logs no error', { timeout: 90_000 }, async (t) => {
    const chromium = requireTool(t, 'chromium', 'chromium', 'the HTML report is checked in a real browser');
    if (!chromium) return;
    const dir = tempDir(t);
    const files: string[] = [];
    for (let a = 0; a < 3; a++) {
      const p = join(dir, `agent-${a}.hlog`);
      await writeFile(p, agentLog(`agent-${a}`, T0 + a * 120, 20, 800 + a * 300, a + 1));
      files.push(p);
    }
    const other = join(dir, 'yesterday.hlog');
    await writeFile(other, agentLog(undefined, T0 - 86_400_000, 15, 1500, 9));
    const ndjsonPath = join(dir, 'get.ndjson');
    await writeFile(ndjsonPath, transferNdjson(T0));
    const html = join(dir, 'report.html');
    const r = await runMain(['report', ...files, other, ndjsonPath, '--html', html, '--title', 'three agents and yesterday']);
    assert.equal(r.code, 0, r.stderr);
    const page = await readFile(html, 'utf8');
    assert.doesNotMatch(page, /<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!github\.com\/leeoniya)/i, 'nothing loaded from elsewhere');

    const { tab, url, requests, problems } = await openReport(t, chromium, html);

    // These functions run in the page (the test's TypeScript has no DOM types: the shapes are spelt out).
    const charts = await tab.evaluate(() => {
      interface Plot {
        ctx: { canvas: { width: number; height: number }; getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
        bbox: { left: number; top: number; width: number; height: number };
        axes: { label?: string }[];
        series: unknown[];
        data: unknown[][];
      }
      const list = (globalThis as unknown as { socketkitCharts: { id: string; title: string; plot: Plot }[] }).socketkitCharts;
      return list.map(({ id, title, plot }): ChartCheck => {
        const { left, top, width, height } = plot.bbox;
        const img = plot.ctx.getImageData(Math.round(left), Math.round(top), Math.max(1, Math.round(width)), Math.max(1, Math.round(height)));
        let drawn = 0;
        for (let i = 0; i < img.data.length; i += 4) {
          const [r, g, b, a] = [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!, img.data[i + 3]!];
          // Not transparent, and not the light grey of the grid lines.
          if (a > 0 && !(r > 200 && g > 200 && b > 200)) drawn++;
        }
        const canvas = plot.ctx.canvas;
        return { id, title, xLabel: plot.axes[0]?.label ?? '', yLabel: plot.axes[1]?.label ?? '', series: plot.series.length - 1, points: (plot.data[0] ?? []).length, width: canvas.width, height: canvas.height, drawn };
      });
    });
    assert.deepEqual(charts.map((c) => c.id), ['spectrum', 'latency', 'rate', 'errors', 'throughput']);
    for (const c of charts) {
      assert.ok(c.width > 0 && c.height > 0, `${c.id}: a canvas`);
      assert.ok(c.xLabel !== '' && c.yLabel !== '', `${c.id}: both axes labelled`);
      assert.ok(c.points > 1, `${c.id}: data`);
      assert.ok(c.drawn > 500, `${c.id}: lines drawn in the plot (${c.drawn} pixels)`);
    }
    // 3 agents + their merged run + yesterday's run: 5 lines; the latency chart has three per run (2 runs).
    assert.equal(charts.find((c) => c.id === 'spectrum')!.series, 5);
    assert.equal(charts.find((c) => c.id === 'rate')!.series, 5);
    assert.equal(charts.find((c) => c.id === 'latency')!.series, 6);
    assert.equal(charts.find((c) => c.id === 'throughput')!.series, 1);
    assert.equal(charts.find((c) => c.id === 'spectrum')!.xLabel, 'percentile');
    // The spectrum's x axis reads as percentiles.
    const ticks = await tab.evaluate(() => {
      const u = (globalThis as unknown as { socketkitCharts: { plot: { axes: { _values?: string[] }[] } }[] }).socketkitCharts[0]!.plot;
      return u.axes[0]?._values ?? [];
    });
    assert.ok(ticks.includes('90%') && ticks.includes('99%') && ticks.includes('99.9%'), ticks.join(' '));
    // The tables: a row per source and the merged run; a row for the transfer.
    assert.equal(await tab.locator('#results tr').count(), 1 + 5);
    assert.equal(await tab.locator('#transfers tr').count(), 1 + 1);
    assert.equal(await tab.title(), 'three agents and yesterday');

    const shot = join(dir, 'report.png');
    await tab.screenshot({ path: shot, fullPage: true });
    const keep = process.env['SOCKETKIT_SCREENSHOT_DIR'];
    if (keep) await copyFile(shot, join(keep, 'report-html.png'));
    assert.deepEqual(requests, [url], 'the page asked for nothing but itself');
    assert.deepEqual(problems, []);
  });
});
