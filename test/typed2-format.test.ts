// One number formatter for every command (issue 12, item 18): counts with thousands separators,
// bytes and rates in a unit that fits (never `0.00 GB/s`), durations; and a transfer server's
// summary says which file of which client failed, and why.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  formatBytes,
  formatCount,
  formatCounted,
  formatDuration,
  formatMs,
  formatPercent,
  formatPerSecond,
  formatRate,
  formatThroughput,
} from '../src/cli/format.js';
import { formatBytes as reportFormatBytes, formatMs as reportFormatMs } from '../src/cli/report.js';
import { formatRate as progressFormatRate, summaryLine } from '../src/cli/progress.js';
import { MAX_LISTED_FAILURES, ServerFailures, serverFailureText } from '../src/cli/transfer-server.js';
import type { TransferServerEvent } from '../src/transfer/index.js';
import { runCli, spawnCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const CASE_MS = 60_000;

describe('format.ts: edge cases', () => {
  it('counts: rounded, thousands separators, no -0, - for what was not measured', () => {
    const cases: [number, string][] = [
      [0, '0'],
      [-0.2, '0'],
      [7, '7'],
      [999, '999'],
      [1112, '1,112'],
      [351632, '351,632'],
      [351632.6, '351,633'],
      [1e9, '1,000,000,000'],
      [Number.NaN, '-'],
      [Infinity, '-'],
    ];
    for (const [n, want] of cases) assert.equal(formatCount(n), want, String(n));
    assert.equal(formatCounted(1, 'file'), '1 file');
    assert.equal(formatCounted(1112, 'file'), '1,112 files');
    assert.equal(formatCounted(0, 'folder'), '0 folders');
  });

  it('bytes: binary units that fit, three significant digits, rounding up into the next unit', () => {
    const cases: [number, string][] = [
      [0, '0 B'],
      [1, '1 B'],
      [1023, '1,023 B'],
      [1023.6, '1.00 KiB'],
      [1024, '1.00 KiB'],
      [1536, '1.50 KiB'],
      [10 * 1024 - 1, '10.0 KiB'],
      [1000 * 1024, '0.98 MiB'],
      [1024 * 1024 - 1, '1.00 MiB'],
      [1234567, '1.18 MiB'],
      [3 * 1024 ** 3, '3.00 GiB'],
      [2 * 1024 ** 5, '2.00 PiB'],
      [5000 * 1024 ** 5, '5,000 PiB'],
      [-1, '-'],
      [Number.NaN, '-'],
    ];
    for (const [n, want] of cases) assert.equal(formatBytes(n), want, String(n));
  });

  it('rates: decimal units that fit; 0 is 0 B/s; never 0.00 of a unit', () => {
    const cases: [number, string][] = [
      [0, '0 B/s'],
      [0.4, '0 B/s'],
      [812, '812 B/s'],
      [999.6, '1.00 kB/s'],
      [1200, '1.20 kB/s'],
      [471_000, '471 kB/s'],
      [999_600, '1.00 MB/s'],
      [870e6, '870 MB/s'],
      [1.93e9, '1.93 GB/s'],
      [-5, '- B/s'],
      [Infinity, '- B/s'],
    ];
    for (const [n, want] of cases) assert.equal(formatRate(n), want, String(n));
    assert.equal(formatThroughput(100_000, 0.2), '500 kB/s');
    assert.equal(formatThroughput(100, 0), '- B/s', 'no time passed: no rate');
    // Every magnitude from 1 B/s to 1 PB/s: one to three digits before the point, never 0.00.
    for (let e = 0; e <= 15; e += 0.01) {
      for (const text of [formatRate(10 ** e), formatBytes(10 ** e)]) {
        assert.doesNotMatch(text, /^0\.00 /, text);
        assert.match(text, /^(\d{1,3}(\.\d+)?|1,0\d\d) [A-Za-z/]+$/, text);
      }
    }
  });

  it('things per second, latencies, elapsed times, percentages', () => {
    assert.equal(formatPerSecond(351632.2), '351,632/s');
    assert.equal(formatPerSecond(0.5), '0.5/s');
    assert.equal(formatPerSecond(0), '0/s');
    assert.equal(formatMs(0.0834), '0.083 ms');
    assert.equal(formatMs(12.44), '12.4 ms');
    assert.equal(formatMs(1534.2), '1,534 ms');
    assert.equal(formatMs(Number.NaN), '-');
    const durations: [number, string][] = [
      [0, '0 s'],
      [4, '0.004 s'],
      [1530, '1.53 s'],
      [12_340, '12.3 s'],
      [59_960, '1 min 00 s'],
      [125_000, '2 min 05 s'],
      [3_600_000, '1 h 00 min'],
      [7_380_000, '2 h 03 min'],
      [-1, '-'],
    ];
    for (const [ms, want] of durations) assert.equal(formatDuration(ms), want, String(ms));
    assert.equal(formatPercent(0), '0.0%');
    assert.equal(formatPercent(0.125), '12.5%');
  });

  it('report.ts and progress.ts still export the formatters older callers import, as format.ts writes them', () => {
    assert.equal(reportFormatBytes(1234567), formatBytes(1234567));
    assert.equal(reportFormatMs(0.0834), formatMs(0.0834));
    assert.equal(progressFormatRate(1.93e9), formatRate(1.93e9));
  });

  it('a transfer summary of a small file says kB/s, not 0.00 GB/s', () => {
    const line = summaryLine({ files: 3, dirs: 0, bytes: 100_000, transferred: 100_000, seconds: 0.21, failures: [] });
    assert.equal(line, '3 files, 97.7 KiB in 0.21 s, 476 kB/s');
  });
});

describe('ServerFailures: which failed, and why', () => {
  const start = (conn: number, path: string): TransferServerEvent => ({ event: 'transfer', conn, peer: `p${conn}`, detail: { event: 'file-start', path, size: 10, offset: 0 } });

  it('a broken connection fails the files it had in flight; a finished one reports its own failures; a clean one nothing', () => {
    const f = new ServerFailures();
    f.onEvent(start(1, 'a.bin'));
    f.onEvent(start(1, 'b.bin'));
    f.onEvent({ event: 'transfer', conn: 1, peer: 'p1', detail: { event: 'file-done', path: 'a.bin', size: 10, offset: 0, sha256: '00', ms: 1 } });
    f.onEvent({ event: 'disconnect', conn: 1, peer: 'p1', error: { code: 'ERR_CONN_RESET', message: 'connection reset by peer' } });
    f.onEvent({ event: 'disconnect', conn: 2, peer: 'p2', error: { code: 'ERR_STALLED', message: 'no progress for 30 s' } });
    const summary = { files: 1, dirs: 0, bytes: 1, transferred: 1, seconds: 1, failures: [{ path: 'c.bin', code: 'ERR_EXISTS' as const, message: 'c.bin exists' }] };
    f.onEvent({ event: 'disconnect', conn: 3, peer: 'p3', summary });
    f.onEvent({ event: 'disconnect', conn: 4, peer: 'p4', summary: { ...summary, failures: [] } });
    assert.equal(f.count, 3);
    assert.deepEqual(f.listed.map(serverFailureText), [
      '#1 p1 b.bin: connection reset by peer (ERR_CONN_RESET)',
      '#2 p2: no progress for 30 s (ERR_STALLED)',
      '#3 p3 c.bin: c.bin exists (ERR_EXISTS)',
    ]);
  });

  it(`lists the first ${MAX_LISTED_FAILURES} and counts the rest`, () => {
    const f = new ServerFailures();
    for (let conn = 1; conn <= 25; conn++) f.onEvent({ event: 'disconnect', conn, peer: 'p', error: { code: 'ERR_CONN_CLOSED', message: 'closed' } });
    assert.equal(f.count, 25);
    assert.equal(f.listed.length, MAX_LISTED_FAILURES);
  });
});

describe('summary lines of the real binary', () => {
  it('echo-server and load: counts with separators, rates in a unit that fits, the average over seconds', { timeout: CASE_MS }, async (t) => {
    const server = spawnCli(['echo-server', '127.0.0.1:0'], t);
    const listening = await server.stderr.waitFor(/^echo server listening on /);
    const address = /listening on (127\.0\.0\.1:\d+)/.exec(listening)?.[1];
    assert.ok(address, listening);
    const load = await runCli(['load', address, '-c', '2', '-n', '3000', '-s', '100'], { timeoutMs: 30_000 });
    assert.equal(load.code, 0, load.stderr);
    const text = load.stdout.toString();
    assert.match(text, /^load on 127\.0\.0\.1:\d+ \(bytes\): 2 of 2 connection\(s\), 100 B requests, closed loop, [\d.]+ (s|min \d\d s)$/m);
    assert.match(text, /^ {2}requests {5}3,000 sent = 3,000 completed \+ 0 failed\b/m);
    assert.match(text, /^ {2}round trips {2}3,000 {2}\([\d,]+\/s\)$/m);
    assert.match(text, /^ {2}bytes {8}293 KiB echoed {2}\([\d.,]+ [kMG]?B\/s\)$/m);
    server.kill('SIGTERM');
    assert.equal((await server.waitExit()).code, 143, server.stderr.text);
    const stopped = server.stdout.text;
    // 3,000 echoes and each connection's one-byte check: more than a thousand, with a separator.
    assert.match(stopped, /^echo server stopped: 2 connection\(s\), 0 refused, 0 idle-closed, \d{1,3}(,\d{3})+ round trips, in [\d.]+ KiB, out [\d.]+ KiB$/m);
    assert.match(stopped, /^stats: 0 open, 2 accepted, 0 refused, 0 idle-closed; [\d,]+ round trips\/s, in [\d.,]+ [kMG]?B\/s, out [\d.,]+ [kMG]?B\/s \(average over [\d.]+ s\)$/m);
  });

  it('ping: its time is an elapsed time in seconds, its counts grouped', { timeout: CASE_MS }, async (t) => {
    const server = spawnCli(['echo-server', '127.0.0.1:0'], t);
    const listening = await server.stderr.waitFor(/^echo server listening on /);
    const address = /listening on (127\.0\.0\.1:\d+)/.exec(listening)?.[1];
    assert.ok(address, listening);
    const r = await runCli(['ping', '--tcp', address, '-c', '1200', '-i', '0'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /^1,200 sent, 1,200 received, 0\.0% loss, 0 duplicates, 0 reordered, 0 late, time [\d.]+ s$/m);
    server.kill('SIGTERM');
    await server.waitExit();
  });

  it('receive: the summary names the file that failed, the client it came from, and why', { timeout: CASE_MS }, async (t) => {
    const dir = tempDir(t, 'sk-typed2-');
    const file = join(dir, 'a.txt');
    await writeFile(file, 'statistics\n');
    const inbox = join(dir, 'inbox');
    const server = spawnCli(['receive', '--listen', '127.0.0.1:0', '--dir', inbox], t);
    const listening = await server.stderr.waitFor(/^receiving into /);
    const address = /on (127\.0\.0\.1:\d+);/.exec(listening)?.[1];
    assert.ok(address, listening);
    const first = await runCli(['send', address, file], { timeoutMs: 15_000 });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout.toString(), /^1 file, 11 B in [\d.]+ s, [\d.,]+ [kMG]?B\/s\n$/);
    // The same file again, without --force: the receiver refuses it.
    const again = await runCli(['send', address, file], { timeoutMs: 15_000 });
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /ERR_EXISTS/);
    server.kill('SIGTERM');
    assert.equal((await server.waitExit()).code, 143, server.stderr.text);
    const out = server.stdout.text;
    assert.match(out, /^received from 2 client\(s\): 1 file\(s\), 11 B; 1 failed; 0 refused, 0 idle-closed$/m);
    assert.match(out, /^ {2}failed: #2 127\.0\.0\.1:\d+ a\.txt: .+ \(ERR_EXISTS\)$/m);
  });
});
