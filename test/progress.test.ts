// Progress bars on a terminal (issue 12, item 17): a bar never wraps whatever the width (fields
// are dropped, least useful first), and a connection that ends takes its bars with it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { once } from 'node:events';
import { displayWidth } from '../src/core/terminal-text.js';
import { ProgressBars, createTransferView, renderBar, type Bar } from '../src/cli/progress.js';
import type { Reporter } from '../src/cli/report.js';

function bar(label: string, size: number | undefined, bytes: number): Bar {
  return { label, size, offset: 0, bytes, started: 0, rate: 870e6, lastSampleAt: 0, lastSampleBytes: 0 };
}

const LABELS = ['a.bin', 'photos/2026/holiday/IMG_0001.jpeg', '写真'.repeat(30), ''];

describe('a progress bar fits its terminal', () => {
  it('at every width from 1 to 160 columns, known and unknown sizes, ASCII and wide labels', () => {
    for (const label of LABELS) {
      for (const size of [2e9, undefined, 0]) {
        for (let width = 1; width <= 160; width++) {
          const line = renderBar(bar(label, size, 1.2e9 > (size ?? Infinity) ? 0 : 1.2e9), width, 1000);
          assert.ok(displayWidth(line) <= width, `${displayWidth(line)} > ${width} columns: ${JSON.stringify(line)}`);
        }
      }
    }
  });

  it('drops fields least useful first: all of them at 100 columns, the percentage and rate at 40, the percentage at 12', () => {
    const b = bar('photos/IMG_0001.jpeg', 2e9, 1e9);
    const wide = renderBar(b, 100, 1000);
    for (const part of ['IMG_0001', '[', '50%', '/', 'MB/s', 'ETA']) assert.ok(wide.includes(part), `${part} in ${wide}`);
    const mid = renderBar(b, 40, 1000);
    for (const part of ['50%', 'MB/s']) assert.ok(mid.includes(part), `${part} in ${mid}`);
    assert.ok(!mid.includes(' / '), `no total at 40 columns: ${mid}`);
    const narrow = renderBar(b, 12, 1000);
    assert.ok(narrow.includes('50%'), narrow);
  });

  it('a real redraw on a 30-column terminal writes no line wider than 29 columns', async () => {
    const stream = Object.assign(new PassThrough(), { columns: 30 });
    const chunks: string[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
    const bars = new ProgressBars({ stream, enabled: true, intervalMs: 5 });
    bars.start('k', 'some/rather/long/path/name.bin', 1000);
    bars.update('k', 500);
    // The bars' redraw timer is unref'd (it must not keep a CLI alive): keep this test's loop running
    // until the first redraw, or the process could find nothing left to wait for.
    const alive = setInterval(() => undefined, 1000);
    try {
      await once(stream, 'data', { signal: AbortSignal.timeout(5000) });
    } finally {
      clearInterval(alive);
    }
    bars.close();
    // eslint-disable-next-line no-control-regex
    const lines = chunks.join('').replace(/\x1b\[\d*[AKJ]/g, '').replace(/\r/g, '').split('\n');
    assert.ok(lines.some((l) => l.includes('50%')), 'a bar was drawn');
    for (const l of lines) assert.ok(displayWidth(l) <= 29, `${displayWidth(l)} columns: ${l}`);
  });
});

describe('a connection that ends takes its bars with it', () => {
  function view(): { events: [string, Record<string, unknown>][]; lines: string[]; view: ReturnType<typeof createTransferView> } {
    const events: [string, Record<string, unknown>][] = [];
    const lines: string[] = [];
    const report: Reporter = {
      json: true,
      quiet: false,
      tty: false,
      log: (t) => lines.push(t),
      event: (name, fields) => events.push([name, fields]),
      result: () => undefined,
    };
    return { events, lines, view: createTransferView(report, Object.assign(new PassThrough(), { columns: 80 })) };
  }

  it('files in flight on the connection fail with its reason; other connections and finished files are untouched', () => {
    const v = view();
    v.view.onEvent({ event: 'file-start', path: 'big.bin', size: 100, offset: 0 }, 1);
    v.view.onEvent({ event: 'file-start', path: 'done.bin', size: 1, offset: 0 }, 1);
    v.view.onEvent({ event: 'file-done', path: 'done.bin', size: 1, offset: 0, sha256: 'x', ms: 1 }, 1);
    v.view.onEvent({ event: 'file-start', path: 'other.bin', size: 100, offset: 0 }, 2);
    v.view.connectionEnded(1, 'ERR_CONN_RESET', 'connection reset by 127.0.0.1:5000');
    const failed = v.events.filter(([name]) => name === 'file-failed').map(([, f]) => f);
    assert.deepEqual(failed, [{ conn: 1, path: 'big.bin', code: 'ERR_CONN_RESET', message: 'connection reset by 127.0.0.1:5000' }]);
    // Only once: a second end (or a late failure event) reports nothing more.
    v.view.connectionEnded(1, 'ERR_CONN_RESET', 'again');
    assert.equal(v.events.filter(([name]) => name === 'file-failed').length, 1);
    v.view.close();
  });

  it("a transfer server's disconnect fails the files still in flight on that connection", async () => {
    const { transferServerEvents } = await import('../src/cli/transfer-server.js');
    const v = view();
    const report: Reporter = { json: true, quiet: false, tty: false, log: () => undefined, event: (name, fields) => v.events.push([name, fields]), result: () => undefined };
    const onEvent = transferServerEvents(report, v.view);
    onEvent({ event: 'transfer', conn: 3, peer: '127.0.0.1:5', detail: { event: 'file-start', path: 'huge.bin', size: 1e9, offset: 0 } });
    onEvent({ event: 'disconnect', conn: 3, peer: '127.0.0.1:5', error: { code: 'ERR_CONN_RESET', message: 'connection reset by 127.0.0.1:5' } });
    const failed = v.events.filter(([name]) => name === 'file-failed').map(([, f]) => f);
    assert.deepEqual(failed, [{ conn: 3, path: 'huge.bin', code: 'ERR_CONN_RESET', message: 'connection reset by 127.0.0.1:5' }]);
    v.view.close();
  });
});
