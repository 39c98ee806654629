// `socketkit report` on the NDJSON of get/send/receive --json: bytes moved over time.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Endpoint } from '../src/net/endpoint.js';
import { startFileServer } from '../src/transfer/index.js';
import { parseTransferLog, renderHtmlReport } from '../src/report/index.js';
import { ndjson, runMain } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const LOOPBACK: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };
const T0 = Date.parse('2026-12-02T10:00:00.000Z');
const at = (ms: number): string => new Date(T0 + ms).toISOString();

describe('transfer NDJSON', () => {
  it('adds up the bytes each event moved, per second: two connections interleaved, a resumed file, a failure', () => {
    const lines = [
      { event: 'file-start', ts: at(0), conn: 1, path: 'a', size: 3000, offset: 0 },
      { event: 'file-start', ts: at(0), conn: 2, path: 'a', size: 3000, offset: 1000 }, // resumed: 1000 bytes were there
      { event: 'progress', ts: at(1000), conn: 1, path: 'a', bytes: 1500, size: 3000 },
      { event: 'progress', ts: at(1000), conn: 2, path: 'a', bytes: 1200, size: 3000 },
      { event: 'progress', ts: at(2000), conn: 1, path: 'a', bytes: 2500, size: 3000 },
      { event: 'file-done', ts: at(2500), conn: 1, path: 'a', size: 3000, offset: 0, sha256: 'x', ms: 2500 },
      { event: 'file-failed', ts: at(3000), conn: 2, path: 'a', code: 'ERR_CONN_RESET', message: 'reset' },
      { event: 'summary', ts: at(3000), files: 1 },
    ];
    const text = `${lines.map((l) => JSON.stringify(l)).join('\n')}\n{"event":"progress","ts":"2026-12-0`;
    const log = parseTransferLog(text, 'get.ndjson');
    assert.deepEqual(log.warnings, ['get.ndjson: the last line is cut (the writer stopped mid-line); read up to it']);
    assert.equal(log.bytes, 1500 + 200 + 1000 + 500);
    assert.equal(log.files, 1);
    assert.equal(log.failed, 1);
    assert.deepEqual(log.slots.map((s) => [s.startMs - T0, s.bytes]), [
      [0, 1700],
      [1000, 1000],
      [2000, 500],
    ]);
  });

  it('a file with no transfer events is a warning, not an error; a broken line in the middle is ERR_BAD_LOG', () => {
    assert.deepEqual(parseTransferLog('{"event":"hello"}\n', 'x.ndjson').warnings, ['x.ndjson: no transfer events in the file']);
    assert.throws(() => parseTransferLog('{"event":"progress"\n{}\n', 'x.ndjson'), { code: 'ERR_BAD_LOG' });
  });

  it('reports a real `get --json` run: the bytes of the file, and a throughput chart in the page', async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'data.bin');
    await writeFile(file, randomBytes(3 * 2 ** 20));
    const server = await startFileServer(LOOPBACK, { paths: [file] });
    t.after(() => server.close(0));
    const ep = server.endpoint;
    assert.equal(ep.kind, 'inet');
    const got = await runMain(['get', `127.0.0.1:${ep.kind === 'inet' ? ep.port : 0}`, '--dir', join(dir, 'out'), '--json']);
    assert.equal(got.code, 0, got.stderr);
    const nd = join(dir, 'get.ndjson');
    await writeFile(nd, got.stdout);
    const r = await runMain(['report', nd, '--json', '--html', join(dir, 'get.html')]);
    assert.equal(r.code, 0, r.stderr);
    const report = ndjson(r.stdout.toString()).find((e) => e['event'] === 'report')!;
    const transfers = report['transfers'] as { name: string; bytes: number; files: number; failed: number }[];
    assert.deepEqual(transfers.map((x) => [x.name, x.bytes, x.files, x.failed]), [['get.ndjson', 3 * 2 ** 20, 1, 0]]);
    assert.deepEqual(report['runs'], []);
    const text = await runMain(['report', nd]);
    assert.match(text.stdout.toString(), /^transfer get\.ndjson: 1 file\(s\), 3\.00 MiB in \d+\.\d\d s/m);
    const page = await renderHtmlReport({ runs: [], transfers: [parseTransferLog(got.stdout.toString(), 'get.ndjson')] });
    assert.match(page, /"transfers":\[\{"label":"get\.ndjson"/);
  });
});
