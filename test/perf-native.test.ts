// Throughput tests with and without the native helper: TCP_INFO figures (retransmits, RTT,
// congestion window) in interval reports and the summary where native/tcp_info.c is built,
// none without it; the native receiver and -Z sender count exactly; the native UDP pacer
// spaces datagrams evenly. Every case is bounded.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runPerf } from '../src/perf/client.js';
import { startPerfServer } from '../src/perf/server.js';
import { nativeStreamsAvailable, tcpInfoAvailable } from '../src/perf/native.js';
import { join } from 'node:path';
import { tempDir } from './helpers/tmp.js';
import { Evenness, pacerKind } from '../src/perf/udp-sender.js';
import type { PerfInterval } from '../src/perf/intervals.js';
import type { Endpoint } from '../src/net/endpoint.js';
import { ndjson, run, runCli, spawnCli } from './helpers/cli.js';
import { writeFileSync } from 'node:fs';

const LOOP: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

describe('perf with the native helper', { timeout: 60_000 }, () => {
  it('TCP senders report TCP_INFO per interval and in the summary (where the helper is built)', async (t) => {
    const s = await startPerfServer(LOOP);
    t.after(() => s.close(0));
    const intervals: PerfInterval[] = [];
    const r = await runPerf(s.endpoint, { streams: 2, bidir: true, durationMs: 900, intervalMs: 300, onInterval: (i) => intervals.push(i) });
    assert.ok(intervals.length >= 2);
    const sentStreams = intervals.flatMap((i) => i.streams.filter((x) => x.role === 'sent'));
    const receivedStreams = intervals.flatMap((i) => i.streams.filter((x) => x.role === 'received'));
    if (!tcpInfoAvailable()) {
      t.diagnostic('native helper not built: no TCP_INFO figures expected');
      assert.ok(sentStreams.every((x) => x.rttUs === undefined));
      assert.ok(r.sent.every((f) => f.tcp === undefined));
      return;
    }
    for (const x of sentStreams) {
      assert.ok(x.rttUs !== undefined && x.rttUs > 0, JSON.stringify(x));
      assert.ok(x.cwnd !== undefined && x.cwnd > 0, JSON.stringify(x));
      assert.ok(x.retransmits !== undefined && x.retransmits >= 0);
    }
    assert.ok(receivedStreams.every((x) => x.rttUs === undefined), 'only senders report TCP_INFO');
    // Both sides' senders: the client's (up) and the server's (down, from its result).
    assert.equal(r.sent.length, 4);
    for (const f of r.sent) assert.ok(f.tcp && f.tcp.rttUs > 0 && f.tcp.cwnd > 0 && f.tcp.retransmits >= 0, JSON.stringify(f));
  });

  it('the native receiver and the -Z sender count every byte, in every direction', async (t) => {
    const s = await startPerfServer(LOOP);
    t.after(() => s.close(0));
    for (const mode of [{}, { reverse: true }, { bidir: true }]) {
      const bytes = 30_000_000 + 7;
      const r = await runPerf(s.endpoint, { ...mode, streams: 3, bytes, zeroCopy: true });
      const dirs = 'bidir' in mode ? 2 : 1;
      assert.equal(r.bytes, bytes * dirs, JSON.stringify(mode));
      assert.equal(r.sent.reduce((a, f) => a + f.bytes, 0), bytes * dirs);
    }
  });

  it('native streams count as they go: every interval holds bytes from every stream, and -t stops them on time', async (t) => {
    const s = await startPerfServer(LOOP);
    t.after(() => s.close(0));
    for (const zeroCopy of [false, true]) {
      const intervals: PerfInterval[] = [];
      const r = await runPerf(s.endpoint, { streams: 2, durationMs: 1200, intervalMs: 300, zeroCopy, onInterval: (i) => intervals.push(i) });
      assert.ok(r.seconds > 1.0 && r.seconds < 3, `seconds ${r.seconds}`);
      const full = intervals.filter((i) => i.end - i.start >= 0.25);
      assert.ok(full.length >= 3, `${full.length} full intervals`);
      for (const i of full) {
        const sent = i.streams.filter((x) => x.role === 'sent');
        assert.equal(sent.length, 2);
        for (const x of sent) assert.ok(x.bytes > 0, `zeroCopy ${zeroCopy}: interval ${i.start}-${i.end} stream ${x.stream} moved nothing`);
      }
      const counted = intervals.reduce((a, i) => a + i.sum.sent.bytes, 0);
      const total = r.sent.reduce((a, f) => a + f.bytes, 0);
      assert.ok(counted <= total && counted > 0.5 * total, `intervals counted ${counted} of ${total}`);
    }
  });

  it('an idle timeout shorter than the test: the bytes native loops move count as activity, on the data and the control connections', async (t) => {
    const s = await startPerfServer(LOOP, { idleTimeoutMs: 400 });
    t.after(() => s.close(0));
    // The control connection is silent for the whole test, and the data connections' bytes move on
    // private descriptors: neither may be taken for idle while the streams move.
    for (const mode of [{}, { reverse: true }, { bidir: true, streams: 2 }, { proto: 'udp' as const, rate: 5_000_000 }]) {
      const r = await runPerf(s.endpoint, { ...mode, durationMs: 1500 });
      assert.ok(r.bytes > 0, JSON.stringify(mode));
    }
    const stats = s.managed.stats();
    assert.equal(stats.idleClosed, 0);
    // The native loops' bytes are the data connections' own in the server's statistics.
    assert.ok(stats.bytesIn > 100_000_000 && stats.bytesOut > 100_000_000, JSON.stringify(stats));
  });

  it('a Worker terminated while its native loops run: no crash, and the loops stop and close their connections', async (t) => {
    if (!nativeStreamsAvailable()) {
      t.skip('the native helper is not built: no native loops to outlive a Worker');
      return;
    }
    // In a child process, so that a use of the Worker's freed threadsafe function fails this test, not the file.
    const dir = tempDir(t, 'sk-perf-worker-');
    const native = new URL('../src/perf/native.js', import.meta.url).href;
    const script = join(dir, 'worker-teardown.mjs');
    writeFileSync(
      script,
      [
        `import { Worker } from 'node:worker_threads';`,
        `import { createServer } from 'node:net';`,
        `import { once } from 'node:events';`,
        `const server = createServer().listen(0, '127.0.0.1');`,
        `await once(server, 'listening');`,
        `const port = server.address().port;`,
        `const code = \`import { connect } from 'node:net'; import { parentPort } from 'node:worker_threads'; import { once } from 'node:events';`,
        `const { NativeStream } = await import(${JSON.stringify(native)});`,
        `const streams = [];`,
        `for (const kind of ['receive', 'send']) { const s = connect(${'$'}{port}, '127.0.0.1'); await once(s, 'connect'); if (kind === 'receive') s.pause();`,
        `  streams.push(NativeStream.start(s, kind === 'receive' ? { kind } : { kind, length: 65536 }, 0)); }`,
        `parentPort.postMessage(streams.every((x) => x !== undefined) ? 'started' : 'no native loop');\`;`,
        `const peers = [];`,
        `server.on('connection', (c) => { peers.push(c); c.on('data', () => undefined); c.on('error', () => undefined); });`,
        `const w = new Worker(code, { eval: true });`,
        `const [msg] = await once(w, 'message');`,
        `if (msg !== 'started') throw new Error(msg);`,
        `while (peers.length < 2) await once(server, 'connection');`,
        `await w.terminate();`,
        `// The peer of the receiving loop writes after the Worker is gone: the thread wakes to a stopped loop.`,
        `peers[0].write(Buffer.alloc(1 << 20));`,
        `// Closed, with a FIN or a reset (the sender's peer had unread bytes): either way the loop's descriptor is gone.`,
        `await Promise.all(peers.map((p) => (p.closed ? undefined : new Promise((resolve) => p.once('close', resolve)))));`,
        `console.log('closed');`,
        `server.close();`,
      ].join('\n'),
    );
    const r = await run(process.execPath, [script], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, `exit ${r.code ?? r.signal}: ${r.stderr}`);
    assert.equal(r.stdout.toString().trim(), 'closed');
  });

  it('over a Unix socket too (sendfile and reads of a Unix stream), every byte counted', async (t) => {
    const dir = tempDir(t);
    const s = await startPerfServer({ kind: 'unix', path: join(dir, 'perf.sock') });
    t.after(() => s.close(0));
    const bytes = 20_000_000 + 3;
    const r = await runPerf(s.endpoint, { bidir: true, streams: 2, bytes, zeroCopy: true });
    assert.equal(r.bytes, 2 * bytes);
    assert.equal(r.zeroCopy, nativeStreamsAvailable());
    assert.ok(r.sent.every((f) => f.tcp === undefined), 'no TCP_INFO on a Unix socket');
  });

  it('UDP: the pacer in use is named and its evenness measured', async (t) => {
    const s = await startPerfServer(LOOP);
    t.after(() => s.close(0));
    const r = await runPerf(s.endpoint, { proto: 'udp', rate: 20_000_000, durationMs: 1000 });
    assert.equal(r.pacing?.length, 1);
    const p = r.pacing[0]!;
    assert.equal(p.pacer, pacerKind());
    // How even it was depends on the machine's load (bench/perf.ts reports it); here, that it is measured.
    assert.ok(p.gapP1Us <= p.gapP50Us && p.gapP50Us <= p.gapP99Us && p.gapP50Us > 0, JSON.stringify(p));
    assert.ok(p.lateP50Us <= p.lateP99Us && p.lateP99Us <= Math.max(p.lateMaxUs, 1000) + 1000, JSON.stringify(p));
    for (const f of r.received) assert.ok(f.udp && f.udp.packets >= (f.udp.sent ?? 0) * 0.95, JSON.stringify(f));
  });
});

describe('pacing evenness figures', () => {
  it('gaps, lateness and bursts are measured from the send times', () => {
    const e = new Evenness(100);
    // Due every 100 µs; sent on time, except 3 datagrams sent together 250 µs late.
    const sends: [number, number][] = [];
    for (let k = 0; k < 100; k++) sends.push([k * 100, k * 100]);
    for (let k = 100; k < 103; k++) sends.push([k * 100, 10_250 + (k - 100)]);
    for (let k = 103; k < 200; k++) sends.push([k * 100, k * 100]);
    for (const [due, sent] of sends) e.record(due, sent);
    const f = e.figures(100, 200, 0, 'native');
    assert.equal(f.packets, 200);
    assert.equal(f.maxBurst, 3, 'three datagrams less than a quarter gap apart');
    assert.equal(f.gapP50Us, 101, 'the median gap, in 1 µs buckets (upper bounds)');
    assert.ok(f.gapP1Us <= 2, `the burst's gaps of 1 µs: ${f.gapP1Us}`);
    assert.equal(f.lateP50Us, 1);
    assert.ok(f.lateMaxUs >= 250 - 1 && f.lateMaxUs <= 251, `${f.lateMaxUs}`);
  });
});

describe('perf over UDP with -P 8', { timeout: 60_000 }, () => {
  it('eight paced streams each hold their rate: at most two paced natively, the rest by the event loop', async (t) => {
    const s = await startPerfServer(LOOP);
    t.after(() => s.close(0));
    const rate = 2_000_000;
    const r = await runPerf(s.endpoint, { proto: 'udp', rate, streams: 8, durationMs: 1500 });
    assert.equal(r.received.length, 8);
    for (const f of r.received) {
      const off = Math.abs((f.bytes * 8) / f.seconds - rate) / rate;
      assert.ok(off < 0.1, `stream ${f.stream}: ${(off * 100).toFixed(1)} % off the rate`);
      assert.ok(f.udp && f.udp.packets >= (f.udp.sent ?? 0) * 0.98, JSON.stringify(f));
    }
    const kinds = (r.pacing ?? []).map((p) => p.pacer);
    assert.equal(kinds.length, 8);
    assert.equal(kinds.filter((k) => k === 'native').length, pacerKind() === 'native' ? 2 : 0);
  });
});

describe('perf without the native helper (SOCKETKIT_NATIVE=0)', { timeout: 60_000 }, () => {
  it('runs the same tests with Node reads and the event-loop pacer, and reports no TCP_INFO', async (t) => {
    const env = { ...process.env, SOCKETKIT_NATIVE: '0' };
    const p = spawnCli(['perf-server', '127.0.0.1:0', '--json'], t);
    const address = String((JSON.parse(await p.stdout.waitFor(/"event":"listening"/)) as { address: string }).address);
    const tcp = await runCli(['perf', address, '-n', '20M', '-P', '2', '--bidir', '-Z', '-i', '0.1', '--json'], { timeoutMs: 20_000, env });
    assert.equal(tcp.code, 0, tcp.stderr);
    const events = ndjson(tcp.stdout.toString());
    const summary = events.at(-1)!;
    assert.equal(summary['bytes'], 2 * 20 * 1024 * 1024);
    assert.equal(summary['zeroCopy'], false);
    // The client sent without the helper (no TCP_INFO); the server, with its own helper, may report its side.
    for (const f of summary['sent'] as { dir: string; tcp?: unknown }[]) if (f.dir === 'up') assert.equal(f.tcp, undefined);
    const udp = await runCli(['perf', address, '--udp', '-b', '20M', '-t', '0.8', '-i', '0', '--json'], { timeoutMs: 20_000, env });
    assert.equal(udp.code, 0, udp.stderr);
    const us = ndjson(udp.stdout.toString()).at(-1)!;
    assert.equal((us['pacing'] as { pacer: string }[])[0]!.pacer, 'event-loop');
  });
});
