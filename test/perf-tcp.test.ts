// Throughput tests over TCP: the library against its server (forward, reverse, both ways,
// 1 and 8 streams, exact byte counts), two clients testing one server at once, and the real
// binaries: --json output, and tests interrupted by killing either side. Every case is bounded.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runPerf } from '../src/perf/client.js';
import { startPerfServer, type PerfServerEvent } from '../src/perf/server.js';
import type { Endpoint } from '../src/net/endpoint.js';
import { jsonEvents, ndjson, runCli, spawnCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const LOOP: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

async function server(t: { after: (fn: () => Promise<void>) => void }, events: PerfServerEvent[] = []): Promise<Endpoint> {
  const s = await startPerfServer(LOOP, { onTest: (e) => events.push(e) });
  t.after(() => s.close(0));
  return s.endpoint;
}

describe('perf over TCP (library)', { timeout: 60_000 }, () => {
  for (const mode of [{}, { reverse: true }, { bidir: true }] as const) {
    for (const streams of [1, 8]) {
      it(`${JSON.stringify(mode)} -P ${streams}: every byte sent is received, counted by the receiving side`, async (t) => {
        const events: PerfServerEvent[] = [];
        const ep = await server(t, events);
        const bytes = 4_000_000 + 12_345;
        const r = await runPerf(ep, { ...mode, streams, bytes, length: 64 * 1024 });
        const dirs = 'bidir' in mode ? 2 : 1;
        assert.equal(r.received.length, streams * dirs);
        assert.equal(r.bytes, bytes * dirs, 'each direction sends exactly -n bytes');
        for (const f of r.received) assert.equal(f.dir, 'reverse' in mode ? 'down' : f.stream < streams ? 'up' : 'down');
        const sentTotal = r.sent.reduce((a, f) => a + f.bytes, 0);
        assert.equal(sentTotal, bytes * dirs);
        assert.ok(r.bitsPerSecond > 0);
        const end = events.find((e) => e.event === 'test-end');
        assert.ok(end && end.event === 'test-end' && end.test === r.test);
      });
    }
  }

  it('runs for -t: the received time is about the duration, with interval reports per stream and summed', async (t) => {
    const ep = await server(t);
    const intervals: { end: number; streams: number; sum: number }[] = [];
    const r = await runPerf(ep, {
      streams: 2,
      durationMs: 1200,
      intervalMs: 300,
      onInterval: (i) => intervals.push({ end: i.end, streams: i.streams.length, sum: i.sum.sent.bytes }),
    });
    assert.ok(r.seconds > 1.0 && r.seconds < 3, `seconds ${r.seconds}`);
    assert.ok(intervals.length >= 3, `${intervals.length} intervals`);
    for (const i of intervals) assert.equal(i.streams, 2);
    assert.ok(intervals.some((i) => i.sum > 0));
  });

  it('two clients against one server at once each get their own result', async (t) => {
    const events: PerfServerEvent[] = [];
    const ep = await server(t, events);
    const [a, b] = await Promise.all([runPerf(ep, { bytes: 3_000_000, streams: 2 }), runPerf(ep, { bytes: 7_000_000, reverse: true, streams: 3 })]);
    assert.equal(a.bytes, 3_000_000);
    assert.equal(a.received.length, 2);
    assert.equal(b.bytes, 7_000_000);
    assert.equal(b.received.length, 3);
    assert.notEqual(a.test, b.test);
    const ends = events.filter((e): e is Extract<PerfServerEvent, { event: 'test-end' }> => e.event === 'test-end');
    assert.equal(ends.length, 2);
    const ea = ends.find((e) => e.test === a.test)!;
    const eb = ends.find((e) => e.test === b.test)!;
    assert.equal(ea.received.reduce((x, f) => x + f.bytes, 0), 3_000_000);
    assert.equal(eb.sent.reduce((x, f) => x + f.bytes, 0), 7_000_000);
  });

  it('a Unix socket server runs the same tests', async (t) => {
    const dir = tempDir(t);
    const s = await startPerfServer({ kind: 'unix', path: `${dir}/perf.sock` });
    t.after(() => s.close(0));
    assert.equal(s.udp, undefined);
    const r = await runPerf(s.endpoint, { bytes: 2_000_000, bidir: true, streams: 2 });
    assert.equal(r.bytes, 4_000_000);
    await assert.rejects(runPerf(s.endpoint, { proto: 'udp', rate: 1e6, durationMs: 100 }), { code: 'ERR_UDP_UNIX_UNSUPPORTED' });
  });

  it('-Z sends with sendfile where the helper exists, and the counts still match', async (t) => {
    const { nativeStatus } = await import('../src/native/helper.js');
    const ep = await server(t);
    const r = await runPerf(ep, { bytes: 20_000_000, zeroCopy: true });
    assert.equal(r.bytes, 20_000_000);
    assert.equal(r.zeroCopy, nativeStatus().available);
  });

  it('a client that does not speak the protocol gets a coded refusal', async (t) => {
    const ep = await server(t);
    const { connect } = await import('../src/net/connect.js');
    const s = await connect(ep);
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.end('GET / HTTP/1.0\n\n');
    await new Promise((r) => s.once('close', r));
    assert.match(Buffer.concat(parts).toString(), /"code":"ERR_PERF_PROTOCOL"/);
  });
});

describe('perf and perf-server (the binaries)', { timeout: 60_000 }, () => {
  async function startServer(t: Parameters<typeof spawnCli>[1]) {
    const p = spawnCli(['perf-server', '127.0.0.1:0', '--json'], t);
    const line = await p.stdout.waitFor(/"event":"listening"/);
    const address = String((JSON.parse(line) as { address: string }).address);
    return { p, address };
  }

  it('--json: NDJSON interval events, then a summary whose bitsPerSecond is the rate as received', async (t) => {
    const { p, address } = await startServer(t);
    const r = await runCli(['perf', address, '-t', '1.2', '-i', '0.3', '-P', '2', '--json'], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
    const events = ndjson(r.stdout.toString());
    const intervals = events.filter((e) => e['event'] === 'interval');
    assert.ok(intervals.length >= 3);
    const summary = events.at(-1)!;
    assert.equal(summary['event'], 'summary');
    const received = summary['received'] as { bytes: number; seconds: number }[];
    const bytes = received.reduce((a, f) => a + f.bytes, 0);
    const seconds = Math.max(...received.map((f) => f.seconds));
    assert.ok(Math.abs((summary['bitsPerSecond'] as number) - (bytes * 8) / seconds) < 1);
    const end = await p.stdout.waitFor(/"event":"test-end"/);
    assert.equal((JSON.parse(end) as { test: string }).test, summary['test']);
    // The server reports the test's intervals from its side too: what it received, per stream.
    const serverIntervals = jsonEvents(p, 'test-interval');
    assert.ok(serverIntervals.length >= 3, `${serverIntervals.length} server intervals`);
    for (const i of serverIntervals) {
      assert.equal(i['test'], summary['test']);
      assert.deepEqual((i['streams'] as { stream: number; role: string }[]).map((x) => `${x.stream} ${x.role}`), ['0 received', '1 received']);
    }
    const serverBytes = serverIntervals.reduce((a, i) => a + (i['sum'] as { received: { bytes: number } }).received.bytes, 0);
    assert.equal(serverBytes, bytes, 'the server\'s intervals hold every byte it received');
  });

  for (const args of [[], ['--udp', '-b', '10M'], ['--udp', '-b', '10M', '-R']]) {
    it(`a client killed mid-test (${args.join(' ') || 'TCP'}): the server reports the test failed, ERR_PERF_INTERRUPTED, and keeps serving`, async (t) => {
      const { p, address } = await startServer(t);
      const c = spawnCli(['perf', address, '-t', '30', '-i', '0.2', '--json', ...args], t);
      await c.stdout.waitFor(/"event":"interval"/);
      c.kill('SIGKILL');
      const failed = JSON.parse(await p.stdout.waitFor(/"event":"test-failed"/)) as { code: string };
      assert.equal(failed.code, 'ERR_PERF_INTERRUPTED');
      const again = await runCli(['perf', address, '-n', '1M', '--json'], { timeoutMs: 15_000 });
      assert.equal(again.code, 0, again.stderr);
    });
  }

  for (const args of [[], ['-R'], ['--udp', '-b', '10M'], ['--udp', '-b', '10M', '-R'], ['--udp', '-b', '10M', '--bidir']]) {
    it(`the server killed mid-test (${args.join(' ') || 'TCP'}): the client fails with ERR_PERF_INTERRUPTED`, async (t) => {
      const { p, address } = await startServer(t);
      const c = spawnCli(['perf', address, '-t', '30', '-i', '0.2', ...args], t);
      await c.stderr.waitFor(/^\[ +0\] +0\.00-\d/);
      p.kill('SIGKILL');
      const exit = await c.waitExit(10_000);
      assert.equal(exit.code, 2);
      assert.match(c.stderr.text, /ERR_PERF_INTERRUPTED/);
    });
  }
});

describe('perf: limits and warm-up', { timeout: 60_000 }, () => {
  it('a server at its connection limit: the client fails with a code, it does not hang', async (t) => {
    const s = await startPerfServer(LOOP, { maxConnections: 2 });
    t.after(() => s.close(0));
    await assert.rejects(runPerf(s.endpoint, { streams: 4, durationMs: 500 }), { code: 'ERR_PERF_INTERRUPTED' });
    const ok = await runPerf(s.endpoint, { streams: 1, bytes: 1_000_000 });
    assert.equal(ok.bytes, 1_000_000);
  });

  it('-O leaves the warm-up out: the result covers the time after it', async (t) => {
    const ep = await server(t);
    const seen: boolean[] = [];
    const r = await runPerf(ep, { durationMs: 600, omitMs: 600, intervalMs: 200, onInterval: (i) => seen.push(i.omitted) });
    assert.ok(r.seconds > 0.4 && r.seconds < 1.0, `seconds ${r.seconds}`);
    assert.ok(seen[0] === true && seen.at(-1) === false, JSON.stringify(seen));
  });
});
