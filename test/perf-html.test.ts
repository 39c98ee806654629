// `perf --hdr-log --html`: the log holds the test's intervals (UDP transit-time differences and
// lost datagrams; TCP round-trip times where TCP_INFO is read), and the page, opened in a real
// browser (Debian's chromium through playwright-core), draws throughput over time per stream
// with the log's charts: no request but the page itself, no console error. A screenshot is saved
// (in SOCKETKIT_SCREENSHOT_DIR when set, to look at).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPerfServer } from '../src/perf/server.js';
import { formatEndpoint } from '../src/net/endpoint.js';
import { parseIntervalLog } from '../src/report/index.js';
import { ndjson, requireTool, runCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';
import { openReport } from './helpers/browser.js';

interface Plot {
  ctx: { canvas: { width: number } };
  axes: { label?: string }[];
  series: { label?: string }[];
  data: unknown[][];
}

describe('perf --hdr-log and --html', () => {
  it('UDP both ways: the log has the datagrams\' transit differences, the page throughput per stream', { timeout: 90_000 }, async (t) => {
    const server = await startPerfServer({ kind: 'inet', host: '127.0.0.1', port: 0 });
    t.after(() => server.close(0));
    const dir = tempDir(t);
    const log = join(dir, 'udp.hlog');
    const html = join(dir, 'udp.html');
    const r = await runCli(['perf', formatEndpoint(server.endpoint), '--udp', '-b', '20M', '-P', '2', '--bidir', '-t', '2', '-i', '0', '--log-interval', '0.25', '--hdr-log', log, '--html', html, '--json'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const written = ndjson(r.stdout.toString()).filter((e) => e['event'] === 'written');
    assert.deepEqual(written.map((e) => e['what']).sort(), ['hdr-log', 'html']);
    const parsed = parseIntervalLog(await readFile(log, 'utf8'), 'udp.hlog');
    assert.ok(parsed.intervals.length >= 6, `${parsed.intervals.length} intervals`);
    const values = parsed.intervals.reduce((a, iv) => a + iv.histogram.totalCount, 0);
    // Two streams of 20 Mbit/s of 1400-byte datagrams for 2 s come back to this side: ~7000 differences.
    assert.ok(values > 3000, `${values} transit differences logged`);

    const chromium = requireTool(t, 'chromium', 'chromium', 'the HTML report is checked in a real browser');
    if (!chromium) return;
    const { tab, url, requests, problems } = await openReport(t, chromium, html);
    const charts = await tab.evaluate(() => {
      const list = (globalThis as unknown as { socketkitCharts: { id: string; plot: Plot }[] }).socketkitCharts;
      return list.map(({ id, plot }) => ({ id, width: plot.ctx.canvas.width, yLabel: plot.axes[1]?.label ?? '', labels: plot.series.map((s) => s.label ?? ''), points: (plot.data[0] ?? []).length }));
    });
    const ids = charts.map((c) => c.id);
    for (const id of ['latency', 'throughput', 'jitter', 'loss']) assert.ok(ids.includes(id), `${id} chart in ${ids.join(', ')}`);
    const throughput = charts.find((c) => c.id === 'throughput')!;
    // Every stream, each way, is a series of its own.
    for (const name of ['stream 0 up sent', 'stream 1 up sent', 'stream 2 down received', 'stream 3 down received']) assert.ok(throughput.labels.includes(name), `${name} in ${throughput.labels.join(', ')}`);
    // Jitter and loss over time for every stream's receiver: this side's (down) and the server's (up).
    for (const id of ['jitter', 'loss']) {
      const c = charts.find((x) => x.id === id)!;
      for (const name of ['stream 0 up received', 'stream 1 up received', 'stream 2 down received', 'stream 3 down received']) assert.ok(c.labels.includes(name), `${id}: ${name} in ${c.labels.join(', ')}`);
    }
    for (const c of charts) {
      assert.ok(c.width > 0 && c.yLabel !== '', `${c.id}: drawn and labelled`);
      assert.ok(c.points > 1, `${c.id}: ${c.points} points`);
    }
    const shot = join(dir, 'perf.png');
    await tab.screenshot({ path: shot, fullPage: true });
    const keep = process.env['SOCKETKIT_SCREENSHOT_DIR'];
    if (keep) await copyFile(shot, join(keep, 'perf-html.png'));
    assert.deepEqual(requests, [url], 'the page asked for nothing but itself');
    assert.deepEqual(problems, []);
  });

  it('UDP forward: the server\'s jitter and loss over time reach the client\'s page, and match its intervals', { timeout: 90_000 }, async (t) => {
    const server = await startPerfServer({ kind: 'inet', host: '127.0.0.1', port: 0 });
    t.after(() => server.close(0));
    const dir = tempDir(t);
    const html = join(dir, 'udp-forward.html');
    const r = await runCli(['perf', formatEndpoint(server.endpoint), '--udp', '-b', '20M', '-t', '2', '-i', '0.25', '--html', html, '--json'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const events = ndjson(r.stdout.toString());
    const intervals = events.filter((e) => e['event'] === 'interval') as unknown as { streams: { stream: number; role: string; jitterMs?: number; lost?: number }[] }[];
    const jitter = intervals.map((i) => i.streams.find((s) => s.role === 'received')?.jitterMs);
    assert.ok(jitter.filter((j) => j !== undefined).length >= 6, `the receiver's jitter in the --json intervals: ${JSON.stringify(jitter)}`);

    const chromium = requireTool(t, 'chromium', 'chromium', 'the HTML report is checked in a real browser');
    if (!chromium) return;
    const { tab, requests, url, problems } = await openReport(t, chromium, html);
    const charts = await tab.evaluate(() => {
      const list = (globalThis as unknown as { socketkitCharts: { id: string; plot: Plot }[] }).socketkitCharts;
      return list.map(({ id, plot }) => ({ id, yLabel: plot.axes[1]?.label ?? '', labels: plot.series.map((s) => s.label ?? ''), data: plot.data as (number | null)[][] }));
    });
    const ids = charts.map((c) => c.id);
    for (const id of ['throughput', 'jitter', 'loss']) assert.ok(ids.includes(id), `${id} chart in ${ids.join(', ')}`);
    // This side receives nothing, so its log has no values: no empty latency charts beside those.
    for (const id of ['spectrum', 'latency', 'rate']) assert.ok(!ids.includes(id), `no ${id} chart in ${ids.join(', ')}`);
    const tp = charts.find((c) => c.id === 'throughput')!;
    for (const name of ['stream 0 up sent', 'stream 0 up received']) {
      const ys = tp.data[tp.labels.indexOf(name)]!.filter((v): v is number => typeof v === 'number');
      // About 20 Mbit/s (2.4 MiB/s) in every full interval, and no drop to 0 at the end (a last, partial one has bytes in it).
      assert.ok(ys.length >= 6 && ys.slice(0, -1).every((v) => v > 0.5) && ys.at(-1)! > 0, `${name}: ${ys.map((v) => v.toFixed(2)).join(' ')}`);
    }
    const j = charts.find((c) => c.id === 'jitter')!;
    const col = j.labels.indexOf('stream 0 up received');
    assert.ok(col > 0, j.labels.join(', '));
    // The chart draws the intervals' jitter, in ms, one point per interval.
    const drawn = j.data[col]!.filter((v): v is number => typeof v === 'number');
    const reported = jitter.filter((v): v is number => v !== undefined);
    assert.deepEqual(drawn.map((v) => v.toFixed(6)), reported.map((v) => v.toFixed(6)));
    assert.match(j.yLabel, /ms/);
    const shot = join(dir, 'perf-forward.png');
    await tab.screenshot({ path: shot, fullPage: true });
    const keep = process.env['SOCKETKIT_SCREENSHOT_DIR'];
    if (keep) await copyFile(shot, join(keep, 'perf-html-forward.png'));
    assert.deepEqual(requests, [url]);
    assert.deepEqual(problems, []);
  });
});
