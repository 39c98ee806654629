// Throughput tests over UDP: the receiver's statistics fed by hand (RFC 3550 jitter, loss,
// reordering, duplicates), the pacer holding its rate, reverse and both ways; and TLS for TCP.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UdpReceiverStats } from '../src/perf/udp-receiver.js';
import { IntervalMerger, type PerfInterval } from '../src/perf/intervals.js';
import { parseControl } from '../src/perf/protocol.js';
import { runPerf } from '../src/perf/client.js';
import { startPerfServer, type PerfServerEvent } from '../src/perf/server.js';
import { generateCertificate } from '../src/security/cert.js';
import { tlsConnectTransport, tlsListenTransport } from '../src/security/tls.js';
import type { Endpoint } from '../src/net/endpoint.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, spawnCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const LOOP: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

describe('UDP receiver statistics', () => {
  it('jitter is RFC 3550 A.8: J += (|D| - J) / 16 over transit differences, in arrival order', () => {
    const s = new UdpReceiverStats();
    // transit times (arrival - send), µs: 100, 130, 90, 90, 200
    const transits = [100, 130, 90, 90, 200];
    let j = 0;
    transits.forEach((tr, i) => {
      s.record(i, 1000 * i, 1000 * i + tr, 100);
      if (i > 0) j += (Math.abs(tr - transits[i - 1]!) - j) / 16;
    });
    assert.ok(Math.abs(s.jitterUs - j) < 1e-9);
    assert.ok(Math.abs(s.figures().jitterMs - j / 1000) < 1e-12);
  });

  it('counts loss, out-of-order and duplicates; the sender\'s count settles tail loss', () => {
    const s = new UdpReceiverStats();
    for (const seq of [0, 1, 3, 2, 2, 5, 4, 4, 7]) s.record(seq, seq, seq + 10, 50);
    // 6 and 8, 9 missing; 2 and 4 arrived late; one 2 and one 4 again
    assert.equal(s.outOfOrder, 2);
    assert.equal(s.duplicates, 2);
    assert.equal(s.unique, 7);
    assert.equal(s.lost, 1, 'before the count, only the hole below the highest');
    s.sent = 10;
    assert.equal(s.lost, 3);
    assert.deepEqual({ ...s.figures(), jitterMs: 0 }, { packets: 7, lost: 3, outOfOrder: 2, duplicates: 2, jitterMs: 0, sent: 10 });
  });

  it('a sequence number far below the window is out of order, not a duplicate', () => {
    const s = new UdpReceiverStats();
    s.record(0, 0, 0, 1);
    s.record(200_000, 0, 0, 1);
    s.record(0, 0, 0, 1);
    assert.equal(s.duplicates, 0);
    assert.equal(s.outOfOrder, 1);
  });
});

describe('the server\'s interval figures on the client', () => {
  const local = (start: number): PerfInterval => ({
    start,
    end: start + 1,
    omitted: false,
    streams: [{ stream: 0, dir: 'up', role: 'sent', bytes: 1000, bitsPerSecond: 8000 }],
    sum: { sent: { bytes: 1000, bitsPerSecond: 8000 }, received: { bytes: 0, bitsPerSecond: 0 } },
  });
  const peer = (index: number, lost: number) => ({ index, start: index, end: index + 1, omitted: false, streams: [{ stream: 0, dir: 'up' as const, role: 'received' as const, bytes: 900, bitsPerSecond: 7200, packets: 9, lost, jitterMs: 0.01 }] });

  it('an interval waits for the server\'s of the same number, at most `hold` intervals, and flush passes on the rest', () => {
    const out: PerfInterval[] = [];
    const m = new IntervalMerger(2, (i) => out.push(i));
    m.local(local(0), 0);
    assert.equal(out.length, 0, 'held for the server\'s figures');
    m.peer(peer(0, 1));
    assert.equal(out.length, 1);
    assert.deepEqual(out[0]!.streams.map((s) => s.role), ['sent', 'received']);
    assert.deepEqual(out[0]!.sum.received, { bytes: 900, bitsPerSecond: 7200 });
    m.local(local(1), 1);
    m.local(local(2), 2);
    m.local(local(3), 3);
    assert.equal(out.length, 2, 'interval 1 went on without the server\'s after two more');
    m.peer(peer(1, 5));
    assert.equal(out.length, 2, 'a late one is dropped');
    m.peer(peer(3, 2));
    m.peer(peer(4, 7));
    m.flush();
    assert.deepEqual(out.map((i) => i.streams.find((s) => s.role === 'received')?.lost ?? null), [1, null, null, 2, 7]);
  });

  it('a server\'s interval line is rebuilt from numbers and fixed words; anything else is ERR_PERF_PROTOCOL', () => {
    const line = { type: 'interval', index: 0, start: 0, end: 1, omitted: false, streams: [{ stream: 0, dir: 'up', role: 'received', bytes: 1, bitsPerSecond: 8, lost: 0, extra: '\u001b[2J' }] };
    const m = parseControl(JSON.stringify(line));
    assert.deepEqual(m, { ...line, streams: [{ stream: 0, dir: 'up', role: 'received', bytes: 1, bitsPerSecond: 8, lost: 0 }] });
    for (const bad of [{ role: '\u001b[2J' }, { dir: 'sideways' }, { bytes: 'many' }, { lost: -1 }]) {
      assert.throws(() => parseControl(JSON.stringify({ ...line, streams: [{ ...line.streams[0], ...bad }] })), { code: 'ERR_PERF_PROTOCOL' });
    }
  });
});

describe('perf over UDP', { timeout: 60_000 }, () => {
  async function server(t: { after: (fn: () => Promise<void>) => void }): Promise<Endpoint> {
    const s = await startPerfServer(LOOP);
    t.after(() => s.close(0));
    return s.endpoint;
  }

  it('-b holds the rate within 5 % over 3 s on loopback, as received', async (t) => {
    const ep = await server(t);
    const rate = 20_000_000;
    const r = await runPerf(ep, { proto: 'udp', rate, durationMs: 3000, length: 1400 });
    const off = Math.abs(r.bitsPerSecond - rate) / rate;
    assert.ok(off < 0.05, `received ${(r.bitsPerSecond / 1e6).toFixed(2)} Mbit/s for ${rate / 1e6}: ${(off * 100).toFixed(1)} % off`);
    const f = r.received[0]!.udp!;
    assert.equal(f.sent, r.pacing![0]!.packets);
    assert.ok(f.lost <= (f.sent ?? 0) * 0.01, `lost ${f.lost} of ${f.sent}`);
    const pace = r.pacing![0]!;
    assert.equal(pace.packets, f.sent);
    assert.ok(pace.gapP50Us > 0 && pace.gapP1Us <= pace.gapP50Us && pace.gapP50Us <= pace.gapP99Us, JSON.stringify(pace));
  });

  for (const mode of [{ reverse: true }, { bidir: true }] as const) {
    for (const streams of [1, 8]) {
      it(`${JSON.stringify(mode)} -P ${streams}: the receiving side counts every stream's datagrams`, async (t) => {
        const ep = await server(t);
        const r = await runPerf(ep, { proto: 'udp', rate: 4_000_000, durationMs: 800, streams, ...mode });
        const down = r.received.filter((f) => f.dir === 'down');
        assert.equal(down.length, streams);
        assert.equal(r.received.length, 'bidir' in mode ? 2 * streams : streams);
        for (const f of r.received) {
          assert.ok(f.udp && f.udp.sent !== undefined && f.udp.sent > 100, JSON.stringify(f));
          assert.ok(f.udp.packets >= f.udp.sent * 0.98, JSON.stringify(f));
          assert.equal(f.udp.duplicates, 0);
        }
      });
    }
  }

  it('two clients at once, one sending and one receiving, each get their own datagram counts', async (t) => {
    const events: PerfServerEvent[] = [];
    const s = await startPerfServer(LOOP, { onTest: (e) => events.push(e) });
    t.after(() => s.close(0));
    const [a, b] = await Promise.all([
      runPerf(s.endpoint, { proto: 'udp', rate: 8_000_000, durationMs: 1000, length: 1000 }),
      runPerf(s.endpoint, { proto: 'udp', rate: 4_000_000, durationMs: 1000, length: 500, reverse: true, streams: 2 }),
    ]);
    assert.notEqual(a.test, b.test);
    const fa = a.received[0]!.udp!;
    assert.equal(a.received.length, 1);
    assert.equal(fa.sent, a.pacing![0]!.packets);
    assert.equal(a.received[0]!.bytes, fa.packets * 1000, 'only this test\'s 1000-byte datagrams');
    assert.equal(b.received.length, 2);
    for (const f of b.received) {
      assert.equal(f.dir, 'down');
      assert.equal(f.bytes, f.udp!.packets * 500, 'only this test\'s 500-byte datagrams');
      assert.ok(f.udp!.packets >= f.udp!.sent! * 0.98, JSON.stringify(f));
    }
    const ends = events.filter((e): e is Extract<PerfServerEvent, { event: 'test-end' }> => e.event === 'test-end');
    assert.deepEqual(ends.map((e) => e.test).sort(), [a.test, b.test].sort());
    assert.equal(ends.find((e) => e.test === a.test)!.received[0]!.udp!.packets, fa.packets);
  });

  it('--udp with TLS options is a usage error', async () => {
    const r = await runCli(['perf', '127.0.0.1:9', '--udp', '--tls'], { timeoutMs: 10_000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ERR_USAGE/);
  });
});

describe('perf over TLS', { timeout: 60_000 }, () => {
  it('the library: a pinned TLS server runs forward and reverse tests', async (t) => {
    const cert = await generateCertificate();
    const s = await startPerfServer(LOOP, { transport: tlsListenTransport({ cert: cert.cert, key: cert.key }) });
    t.after(() => s.close(0));
    const transport = tlsConnectTransport({ pin: cert.fingerprint });
    const a = await runPerf(s.endpoint, { bytes: 3_000_000, streams: 2, transport });
    assert.equal(a.bytes, 3_000_000);
    const b = await runPerf(s.endpoint, { bytes: 2_000_000, reverse: true, zeroCopy: true, transport });
    assert.equal(b.bytes, 2_000_000);
  });

  it('the binaries: perf-server --cert/--key, perf --pin; plaintext to it fails with a code', async (t) => {
    const dir = tempDir(t);
    const cert = await generateCertificate();
    writeFileSync(join(dir, 'cert.pem'), cert.cert);
    writeFileSync(join(dir, 'key.pem'), cert.key, { mode: 0o600 });
    const p = spawnCli(['perf-server', '127.0.0.1:0', '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem'), '--json'], t);
    const address = String((JSON.parse(await p.stdout.waitFor(/"event":"listening"/)) as { address: string }).address);
    const ok = await runCli(['perf', address, '-n', '2M', '--pin', cert.fingerprint, '--json'], { timeoutMs: 15_000 });
    assert.equal(ok.code, 0, ok.stderr);
    const summary = JSON.parse(ok.stdout.toString().trim().split('\n').at(-1)!) as { bytes: number };
    assert.equal(summary.bytes, 2 * 1024 * 1024);
    const plain = await runCli(['perf', address, '-n', '1M', '--connect-timeout', '5'], { timeoutMs: 15_000 });
    assert.equal(plain.code, 2);
    assert.match(plain.stderr, /\(ERR_[A-Z_]+\)/);
  });
});
