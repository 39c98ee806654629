// `load` and `ping` with --hdr-log, --log-interval, --tag, --html (src/cli/measure-options.ts),
// run as the real binary, their logs read back with the phase-1 reader; `load --start-at`;
// the library hooks (onLatency, onError, startAtMs) of runLoad and ping.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runLoad } from '../src/load/index.js';
import { startManagedEchoServer } from '../src/server/index.js';
import { ping, startUdpEchoServer } from '../src/udp/index.js';
import { formatEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { mergeLogs, parseIntervalLog, type IntervalLog } from '../src/report/index.js';
import { parseStartAt } from '../src/cli/measure-options.js';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

function totalCount(log: IntervalLog): number {
  return log.intervals.reduce((n, i) => n + i.histogram.totalCount, 0);
}

async function readLog(path: string): Promise<IntervalLog> {
  return parseIntervalLog(await readFile(path, 'utf8'), path);
}

describe('library hooks', () => {
  it('runLoad: onLatency once per round trip (µs), onError with the counts of errorCodes, onRunStart once', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const us: number[] = [];
    let starts = 0;
    const r = await runLoad(server.endpoint, { connections: 3, requests: 300, onLatency: (x) => us.push(x), onRunStart: () => starts++ });
    assert.equal(us.length, r.roundTrips);
    assert.equal(starts, 1);
    assert.ok(us.every((x) => x > 0 && x < 10_000_000));
    const codes: Record<string, number> = {};
    await runLoad({ kind: 'inet', host: '127.0.0.1', port: 1 }, { connections: 2, requests: 2, onError: (c, n) => (codes[c] = (codes[c] ?? 0) + n) }).catch(() => undefined);
    assert.deepEqual(Object.keys(codes), ['ERR_CONN_REFUSED']);
  });

  it('ping: onLatency per answered probe, onError per lost probe', async (t) => {
    const server = await startUdpEchoServer(v4);
    t.after(() => server.close());
    const us: number[] = [];
    const s = await ping(server.endpoint, { count: 5, intervalMs: 0, onLatency: (x) => us.push(x) });
    assert.equal(us.length, s.received);
    assert.equal(us.length, 5);
  });

  it('runLoad startAtMs: waits for the wall-clock start; one that has passed is ERR_START_PASSED', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    await assert.rejects(runLoad(server.endpoint, { requests: 1, startAtMs: Date.now() - 1 }), { code: 'ERR_START_PASSED' });
    const at = Date.now() + 300;
    let startedAt = 0;
    const r = await runLoad(server.endpoint, { requests: 5, startAtMs: at, onRunStart: () => (startedAt = Date.now()) });
    assert.equal(r.roundTrips, 5);
    assert.ok(startedAt >= at, `started ${at - startedAt} ms early`);
  });
});

describe('--start-at parsing', () => {
  it('ISO and +SECONDS; the past is ERR_START_PASSED; nonsense is ERR_USAGE', () => {
    const now = Date.parse('2026-12-02T15:00:00Z');
    assert.equal(parseStartAt('start-at', '+2.5', now), now + 2500);
    assert.equal(parseStartAt('start-at', '2026-12-02T15:00:10Z', now), now + 10_000);
    assert.throws(() => parseStartAt('start-at', '2026-12-02T14:59:59Z', now), { code: 'ERR_START_PASSED' });
    for (const bad of ['+0', '+', '+-3', 'soon', '15:00', '']) assert.throws(() => parseStartAt('start-at', bad, now), { code: 'ERR_USAGE' }, bad);
  });
});

describe('load and ping --hdr-log (the binary)', () => {
  it('load --hdr-log --tag --log-interval: every round trip in the log, tagged, with the run parameters', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const path = join(tempDir(t), 'a.hlog');
    const r = await runCli(['load', formatEndpoint(server.endpoint), '-c', '4', '-n', '3000', '--hdr-log', path, '--tag', 'agent-1', '--log-interval', '0.05', '--json'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const result = lines.find((l) => l['event'] === 'load' || l['roundTrips'] !== undefined)!;
    assert.equal(result['roundTrips'], 3000);
    assert.ok(lines.some((l) => l['event'] === 'written' && l['what'] === 'hdr-log' && l['path'] === path));
    const log = await readLog(path);
    assert.deepEqual(log.warnings, []);
    assert.equal(log.version, '1.3');
    assert.equal(totalCount(log), 3000);
    assert.ok(log.intervals.every((i) => i.tag === 'agent-1'));
    assert.equal(log.parameters['command'], 'load');
    assert.equal(log.parameters['connections'], 4);
    for (let k = 1; k < log.intervals.length; k++) {
      const prev = log.intervals[k - 1]!;
      assert.ok(log.intervals[k]!.startMs >= prev.startMs, 'intervals in time order');
    }
    assert.equal(mergeLogs([log])[0]!.histogram.totalCount, 3000);
  });

  it('ping --hdr-log: one value per answered probe', async (t) => {
    const server = await startUdpEchoServer(v4);
    t.after(() => server.close());
    const path = join(tempDir(t), 'p.hlog');
    const r = await runCli(['ping', formatEndpoint(server.endpoint), '-c', '20', '-i', '0', '--hdr-log', path]);
    assert.equal(r.code, 0, r.stderr);
    const log = await readLog(path);
    assert.equal(totalCount(log), 20);
    assert.equal(log.parameters['command'], 'ping');
  });

  it('load --html alone: a self-contained page of the run; --html with --hdr-log: the same log drawn', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const dir = tempDir(t);
    const r = await runCli(['load', formatEndpoint(server.endpoint), '-n', '500', '--html', join(dir, 'a.html')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /html: .*a\.html/);
    const page = await readFile(join(dir, 'a.html'), 'utf8');
    assert.match(page, /^<!doctype html>/i);
    assert.doesNotMatch(page, /<script[^>]+src=|<link[^>]+href=/i);
    assert.ok(page.includes(formatEndpoint(server.endpoint)), 'the run parameters are in the page');

    const both = await runCli(['ping', formatEndpoint((await startUdpEchoServer(v4).then((s) => (t.after(() => s.close()), s))).endpoint), '-c', '5', '-i', '0', '--hdr-log', join(dir, 'p.hlog'), '--html', join(dir, 'p.html')]);
    assert.equal(both.code, 0, both.stderr);
    assert.match(await readFile(join(dir, 'p.html'), 'utf8'), /p\.hlog/);
  });

  it('load --start-at in the past is ERR_START_PASSED (exit 2, nothing measured); --tag with a space is a usage error', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const past = await runCli(['load', formatEndpoint(server.endpoint), '-n', '10', '--start-at', new Date(Date.now() - 5000).toISOString()]);
    assert.equal(past.code, 2);
    assert.match(past.stderr, /ERR_START_PASSED/);
    assert.equal(past.stdout.length, 0);
    const tag = await runCli(['load', formatEndpoint(server.endpoint), '-n', '10', '--tag', 'a b']);
    assert.equal(tag.code, 2);
    assert.match(tag.stderr, /ERR_USAGE/);
  });

  it('load --start-at +SECONDS: the log starts at that time and holds the whole run', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const path = join(tempDir(t), 's.hlog');
    const before = Date.now();
    const r = await runCli(['load', formatEndpoint(server.endpoint), '-n', '100', '--start-at', '+1', '--hdr-log', path]);
    assert.equal(r.code, 0, r.stderr);
    const log = await readLog(path);
    assert.ok(log.startTimeMs !== undefined && log.startTimeMs >= before + 1000 && log.startTimeMs < before + 3000, `StartTime ${log.startTimeMs! - before} ms after the command`);
    assert.equal(totalCount(log), 100);
  });
});
