// UDP throughput tests through the proxy's UDP toxics: the loss and reordering the receiver
// reports match what the proxy was told to do. The proxy listens on 127.0.0.2 at the server's
// own port number (TCP for the control connection, UDP with the toxics on the upstream, client to
// server, direction for the datagrams), since
// a client sends its datagrams to its server's host at the UDP port the server names.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runPerf } from '../src/perf/client.js';
import { startPerfServer, type PerfServer } from '../src/perf/server.js';
import { startProxy, startUdpProxy } from '../src/proxy/index.js';
import type { Endpoint } from '../src/net/endpoint.js';
import type { IntervalStream, PerfInterval } from '../src/perf/intervals.js';

/** A seeded PRNG (mulberry32), so the toxics' choices are the same every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function throughToxics(t: { after: (fn: () => Promise<void>) => void }, toxics: unknown[], onServer?: (s: PerfServer) => void): Promise<Endpoint> {
  const server = await startPerfServer({ kind: 'inet', host: '127.0.0.1', port: 0 });
  t.after(() => server.close(0));
  onServer?.(server);
  if (server.endpoint.kind !== 'inet') throw new Error('inet only');
  const port = server.endpoint.port;
  const front: Endpoint = { kind: 'inet', host: '127.0.0.2', port };
  const tcp = await startProxy(front, server.endpoint);
  t.after(() => tcp.close(0));
  const udp = await startUdpProxy(front, server.endpoint, { toxics, random: seeded(7) });
  t.after(() => udp.close());
  return front;
}

describe('perf through the proxy\'s UDP toxics', { timeout: 60_000 }, () => {
  it('packet_loss 10 %: the receiver counts about 10 % lost, nothing reordered', async (t) => {
    const ep = await throughToxics(t, [{ type: 'packet_loss', stream: 'upstream', attributes: { loss_rate: 0.1 } }]);
    const r = await runPerf(ep, { proto: 'udp', rate: 8_000_000, length: 1000, durationMs: 2000 });
    const f = r.received[0]!.udp!;
    assert.ok(f.sent !== undefined && f.sent > 1500, JSON.stringify(f));
    const share = f.lost / f.sent;
    // 2000 datagrams at p = 0.1: the standard deviation of the share is 0.7 %; 3 % is over 4 of them.
    assert.ok(Math.abs(share - 0.1) < 0.03, `lost ${(share * 100).toFixed(2)} % of ${f.sent}`);
    assert.equal(f.duplicates, 0);
    assert.equal(f.packets + f.lost, f.sent);
  });

  it('reorder 5 % held 20 ms: about 5 % arrive out of order, none lost', async (t) => {
    const ep = await throughToxics(t, [{ type: 'reorder', stream: 'upstream', attributes: { rate: 0.05, delay: 20 } }]);
    const r = await runPerf(ep, { proto: 'udp', rate: 8_000_000, length: 1000, durationMs: 2000 });
    const f = r.received[0]!.udp!;
    assert.ok(f.sent !== undefined && f.sent > 1500, JSON.stringify(f));
    const share = f.outOfOrder / f.sent;
    assert.ok(Math.abs(share - 0.05) < 0.025, `out of order ${(share * 100).toFixed(2)} % of ${f.sent}`);
    assert.equal(f.lost, 0, JSON.stringify(f));
    assert.equal(f.duplicates, 0);
  });

  it('duplicate: every copy is counted a duplicate, not a datagram', async (t) => {
    const ep = await throughToxics(t, [{ type: 'duplicate', stream: 'upstream', attributes: { rate: 0.2 } }]);
    const r = await runPerf(ep, { proto: 'udp', rate: 8_000_000, length: 1000, durationMs: 1000 });
    const f = r.received[0]!.udp!;
    const share = f.duplicates / f.sent!;
    assert.ok(Math.abs(share - 0.2) < 0.05, `duplicates ${(share * 100).toFixed(2)} % of ${f.sent}`);
    assert.equal(f.packets, f.sent);
  });

  it('forward UDP with -i: each interval carries the server\'s receiver figures, and their losses add up to the result\'s', async (t) => {
    const ep = await throughToxics(t, [{ type: 'packet_loss', stream: 'upstream', attributes: { loss_rate: 0.1 } }]);
    const intervals: PerfInterval[] = [];
    const r = await runPerf(ep, { proto: 'udp', rate: 8_000_000, length: 1000, durationMs: 2000, intervalMs: 250, onInterval: (i) => intervals.push(i) });
    const f = r.received[0]!.udp!;
    const received = intervals.map((i) => i.streams.find((s) => s.role === 'received' && s.dir === 'up')).filter((s): s is IntervalStream => s !== undefined);
    // The server's figures reach the client while the test runs: all but a late one or two of the ~8 intervals.
    assert.ok(received.length >= intervals.length - 2 && received.length >= 5, `${received.length} of ${intervals.length} intervals with the receiver's figures`);
    for (const s of received) {
      assert.ok(s.packets !== undefined && s.lost !== undefined && s.jitterMs !== undefined && s.outOfOrder !== undefined && s.duplicates !== undefined, JSON.stringify(s));
      assert.equal(s.bitsPerSecond > 0, s.bytes > 0);
    }
    const lost = received.reduce((a, s) => a + s.lost!, 0);
    const packets = received.reduce((a, s) => a + s.packets!, 0);
    // An interval counts the holes below the highest number seen; only datagrams lost after the last one arrived are missing.
    assert.ok(lost <= f.lost && lost >= f.lost - 10, `intervals lost ${lost}, the result ${f.lost}`);
    assert.ok(packets <= f.packets && packets >= f.packets * 0.9, `intervals ${packets} datagrams, the result ${f.packets}`);
    assert.ok(intervals.every((i) => i.sum.received.bytes === i.streams.filter((s) => s.role === 'received').reduce((a, s) => a + s.bytes, 0)));
  });

  it('the server gone mid-test, its datagrams still taken (a host with no ICMP back): the client stops at once with ERR_PERF_INTERRUPTED', async (t) => {
    let server: PerfServer | undefined;
    const ep = await throughToxics(t, [], (s) => (server = s));
    const started = Date.now();
    let intervals = 0;
    const running = runPerf(ep, {
      proto: 'udp',
      rate: 4_000_000,
      durationMs: 30_000,
      intervalMs: 200,
      onInterval: () => {
        if (++intervals === 2) void server!.close(0);
      },
    });
    await assert.rejects(running, { code: 'ERR_PERF_INTERRUPTED' });
    // Not at the end of the 30 s it was to send for: the control connection's close stopped it.
    assert.ok(Date.now() - started < 15_000, `stopped after ${Date.now() - started} ms`);
  });
});
