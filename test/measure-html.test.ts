// `load --html` at the end of a run, opened in a real browser (Debian's chromium, driven by
// playwright-core, as test/report-html.test.ts does): every chart drawn with labelled axes, no
// request but the page itself, no console error; a screenshot is saved (in SOCKETKIT_SCREENSHOT_DIR
// when set, to look at).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startManagedEchoServer } from '../src/server/index.js';
import { formatEndpoint } from '../src/net/endpoint.js';
import { requireTool, runCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';
import { openReport } from './helpers/browser.js';

describe('load --html in a real browser', () => {
  it('draws the run: spectrum, latency, rate and errors over time, labelled; no request, no error', { timeout: 90_000 }, async (t) => {
    const chromium = requireTool(t, 'chromium', 'chromium', 'the HTML report is checked in a real browser');
    if (!chromium) return;
    const server = await startManagedEchoServer({ kind: 'inet', host: '127.0.0.1', port: 0 });
    t.after(() => server.close());
    const dir = tempDir(t);
    const html = join(dir, 'load.html');
    const r = await runCli(['load', formatEndpoint(server.endpoint), '-c', '4', '-d', '2', '--rate', '2000', '--log-interval', '0.25', '--tag', 'agent-1', '--html', html], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);

    const { tab, url, requests, problems } = await openReport(t, chromium, html);
    const charts = await tab.evaluate(() => {
      interface Plot {
        ctx: { canvas: { width: number; height: number } };
        axes: { label?: string }[];
        data: unknown[][];
      }
      const list = (globalThis as unknown as { socketkitCharts: { id: string; plot: Plot }[] }).socketkitCharts;
      return list.map(({ id, plot }) => ({ id, width: plot.ctx.canvas.width, xLabel: plot.axes[0]?.label ?? '', yLabel: plot.axes[1]?.label ?? '', points: (plot.data[0] ?? []).length }));
    });
    assert.deepEqual(charts.map((c) => c.id), ['spectrum', 'latency', 'rate', 'errors']);
    for (const c of charts) {
      assert.ok(c.width > 0, `${c.id}: a canvas`);
      assert.ok(c.xLabel !== '' && c.yLabel !== '', `${c.id}: both axes labelled`);
      assert.ok(c.points > 1, `${c.id}: ${c.points} points`);
    }
    // The table holds the run's parameters.
    assert.match(await tab.locator('#results').innerText(), /agent-1/);
    const shot = join(dir, 'load.png');
    await tab.screenshot({ path: shot, fullPage: true });
    const keep = process.env['SOCKETKIT_SCREENSHOT_DIR'];
    if (keep) await copyFile(shot, join(keep, 'load-html.png'));
    assert.deepEqual(requests, [url], 'the page asked for nothing but itself');
    assert.deepEqual(problems, []);
  });
});
