// `load --threads` (src/load/threads.ts): worker threads, each with its own loop, whose counters
// and histograms merge into the output one thread gives; the split of connections, -n and --rate.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runLoad, runLoadThreads, splitEvenly, type LoadResult } from '../src/load/index.js';
import { startManagedEchoServer } from '../src/server/index.js';
import { startUdpEchoServer } from '../src/udp/index.js';
import { formatEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { parseIntervalLog } from '../src/report/index.js';
import { runCli, spawnCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

/** The totals a fixed -n run must give whatever the threads. */
function totals(r: Pick<LoadResult, 'roundTrips' | 'sent' | 'scheduled' | 'completed' | 'failed' | 'unsent' | 'errors' | 'bytesSent' | 'bytesReceived' | 'connections' | 'connected'> & { latency: { count: number } }): number[] {
  return [r.roundTrips, r.sent, r.scheduled, r.completed, r.failed, r.unsent, r.errors, r.bytesSent, r.bytesReceived, r.connections, r.connected, r.latency.count];
}

describe('load --threads', () => {
  it('splitEvenly: shares that add up and differ by at most one', () => {
    assert.deepEqual(splitEvenly(10, 3), [4, 3, 3]);
    assert.deepEqual(splitEvenly(2, 2), [1, 1]);
    assert.deepEqual(splitEvenly(7, 1), [7]);
  });

  it('2 threads give the totals of 1 for a fixed -n (stream, framed, UDP), and the server counts the same round trips', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const one = await runLoad(server.endpoint, { connections: 6, size: 100, requests: 3001 });
    const before = server.stats().roundTrips;
    const two = await runLoadThreads(server.endpoint, { threads: 2, connections: 6, size: 100, requests: 3001 });
    assert.deepEqual(totals(two), totals(one));
    assert.equal(server.stats().roundTrips - before, 3001 + 6); // and the 6 warm-up bytes
    assert.ok(two.latency.min <= two.latency.p50 && two.latency.p50 <= two.latency.p99 && two.latency.p99 <= two.latency.max);

    const framed = await startManagedEchoServer(v4, { framed: true });
    t.after(() => framed.close());
    const f = await runLoadThreads(framed.endpoint, { threads: 2, protocol: 'framed', connections: 3, size: 50, requests: 301 });
    assert.deepEqual([f.roundTrips, f.errors, f.connected], [301, 0, 3]);

    const udp = await startUdpEchoServer(v4);
    t.after(() => udp.close());
    const u = await runLoadThreads(udp.endpoint, { threads: 2, protocol: 'udp', connections: 2, size: 64, requests: 200 });
    assert.equal(u.roundTrips + u.failed, 200);
  });

  it('open loop: the rate is split, the schedule is kept in all', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const r = await runLoadThreads(server.endpoint, { threads: 2, connections: 4, rate: 400, requests: 200 });
    assert.equal(r.mode, 'open');
    assert.equal(r.rate, 400);
    assert.deepEqual([r.scheduled, r.completed, r.errors], [200, 200, 0]);
    // 200 requests at 400/s in all: about half a second (not one: each thread runs at 200/s).
    assert.ok(r.seconds >= 0.45 && r.seconds < 5, `${r.seconds} s`);
  });

  it('a thread that cannot connect fails the run with its code; -n smaller than the threads is refused', async () => {
    await assert.rejects(runLoadThreads({ kind: 'inet', host: '127.0.0.1', port: 1 }, { threads: 2, connections: 2, requests: 10 }), { code: 'ERR_CONN_REFUSED' });
    await assert.rejects(runLoadThreads(v4, { threads: 3, connections: 3, requests: 2 }), { code: 'ERR_INVALID_ARG' });
  });

  it('the binary: --threads 2 --json gives the totals of one thread; --hdr-log holds every value; --print is refused', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const addr = formatEndpoint(server.endpoint);
    const path = join(tempDir(t), 't.hlog');
    const result = async (args: string[]): Promise<Record<string, unknown>> => {
      const r = await runCli(['load', addr, '-c', '4', '-n', '2000', '--json', ...args], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['event'] === 'load')!;
    };
    const pick = (r: Record<string, unknown>): unknown[] => ['roundTrips', 'sent', 'completed', 'errors', 'bytesSent', 'bytesReceived', 'connected'].map((k) => r[k]).concat([(r['latencyMs'] as { count: number }).count]);
    const one = await result([]);
    const two = await result(['--threads', '2', '--hdr-log', path, '--log-interval', '0.1']);
    assert.deepEqual(pick(two), pick(one));
    const log = parseIntervalLog(await readFile(path, 'utf8'), path);
    assert.equal(log.intervals.reduce((n, i) => n + i.histogram.totalCount, 0), 2000);
    const print = await runCli(['load', addr, '-c', '2', '-n', '4', '--threads', '2', '--print']);
    assert.equal(print.code, 2);
    assert.match(print.stderr, /ERR_USAGE/);
  });

  it('the binary: --threads 2 with --psk-file, each thread making its own TLS-PSK connections', async (t) => {
    const dir = tempDir(t);
    const psk = join(dir, 'k.psk');
    assert.equal((await runCli(['cert', '--psk', psk, '--identity', 'threads'])).code, 0);
    const server = spawnCli(['echo-server', '127.0.0.1:0', '--psk-file', psk, '--json'], t);
    const address = (JSON.parse(await server.stdout.waitFor((l) => l.includes('"listening"'))) as { address: string }).address;
    const r = await runCli(['load', address, '--psk-file', psk, '-c', '4', '-n', '400', '--threads', '2', '--json'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const result = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['event'] === 'load')!;
    assert.deepEqual([result['roundTrips'], result['errors'], result['connected']], [400, 0, 4]);
    // Plaintext against the PSK server fails: the threads did speak TLS-PSK.
    const plain = await runCli(['load', address, '-c', '2', '-n', '10', '--threads', '2', '--timeout', '2'], { timeoutMs: 30_000 });
    assert.notEqual(plain.code, 0);
  });
});
