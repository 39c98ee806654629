// One behaviour, two engines (issue 19): every load scenario that does not involve TLS run on
// the TypeScript engine (the reference) and on the native engine (native/load_engine.c), and
// judged the same way: the same counters, error codes, accounting and exit codes, against the
// same servers (delays, stalls, closes, resets, corruption, oversized frames, UDP loss), and
// the native engine's selection, start line and interval log.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { MAX_OUTSTANDING_PER_CONNECTION, parseMessages, runLoad, type LoadOptions, type LoadResult } from '../src/load/index.js';
import { loadEngineStatus } from '../src/load/native.js';
import { startManagedEchoServer } from '../src/server/index.js';
import { startUdpEchoServer } from '../src/udp/index.js';
import { formatEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { parseIntervalLog } from '../src/report/index.js';
import { ndjson, runCli, spawnCli } from './helpers/cli.js';
import { startTestServer, waitUntil, type TestServer } from './helpers/net.js';
import { tempDir, type CleanupContext } from './helpers/tmp.js';
import { WARM_UP, assertAccounts, cutShortServer, delayServer, lateUdpEcho, stalledServer, v4 } from './helpers/load-servers.js';

const ENGINES = ['js', 'native'] as const;
const status = loadEngineStatus();
const skip = status.available ? false : `the native load engine is not available: ${status.reason ?? '?'}`;

/** Runs `options` on both engines (one after the other, each against a fresh server from `server`). */
async function both(server: () => Promise<Endpoint>, options: LoadOptions): Promise<{ js: LoadResult; native: LoadResult }> {
  const js = await runLoad(await server(), { ...options, engine: 'js' });
  const native = await runLoad(await server(), { ...options, engine: 'native' });
  return { js, native };
}

/** A fresh server per engine, from a starter of test servers. */
const fresh = (start: () => Promise<TestServer>) => async (): Promise<Endpoint> => (await start()).endpoint;
const freshDelay = (delayMs: number, t: CleanupContext): (() => Promise<Endpoint>) => fresh(() => delayServer(delayMs, t));

/** The fields a deterministic scenario gives the same on both engines. */
function exact(r: LoadResult): unknown[] {
  return [r.mode, r.rate, r.connections, r.connected, r.scheduled, r.sent, r.completed, r.failed, r.failures, r.unsent, r.unsentBy, r.errors, r.errorCodes, r.bytesSent, r.bytesReceived, r.latency.count, r.interrupted];
}

describe('load engines: the same statistics', { skip }, () => {
  it('closed loop against a known delay: exact counts, every round trip at least the delay', async (t) => {
    const delay = 30;
    const r = await both(freshDelay(delay, t), { connections: 2, size: 64, requests: 20 });
    assert.deepEqual(exact(r.native), exact(r.js));
    for (const x of [r.js, r.native]) {
      assertAccounts(x);
      assert.deepEqual([x.roundTrips, x.errors, x.connected, x.bytesReceived], [20, 0, 2, 20 * 64]);
      assert.ok(x.latency.min >= delay - 1, `min ${x.latency.min} ms < ${delay} ms`);
      assert.ok(x.roundTripsPerSecond <= 2000 / (delay - 1), `${x.roundTripsPerSecond}/s is faster than the delay allows`);
    }
  });

  it('open loop: requests on schedule, the count follows the rate', async (t) => {
    const r = await both(freshDelay(20, t), { connections: 2, size: 100, rate: 100, requests: 30 });
    assert.deepEqual(exact(r.native), exact(r.js));
    for (const x of [r.js, r.native]) {
      assert.deepEqual([x.roundTrips, x.errors, x.mode, x.rate], [30, 0, 'open', 100]);
      assert.ok(x.latency.min >= 19);
      assert.ok(x.seconds >= 0.29, `${x.seconds} s`);
    }
  });

  it('open loop counts the wait of requests due during a stall (no coordinated omission), on both engines', async (t) => {
    const stallMs = 400;
    const stallServer = async (): Promise<Endpoint> => {
      let stallUntil: number | undefined;
      return (
        await startTestServer(
          v4,
          (socket: Socket) => {
            socket.on('data', (chunk: Buffer) => {
              if (chunk.toString() === WARM_UP) return void socket.write(chunk);
              stallUntil ??= performance.now() + stallMs;
              const wait = stallUntil - performance.now();
              if (wait > 0) setTimeout(() => socket.write(chunk), wait);
              else socket.write(chunk);
            });
            socket.on('end', () => socket.end());
          },
          t,
        )
      ).endpoint;
    };
    const open = await both(stallServer, { connections: 1, size: 32, rate: 100, requests: 50 });
    for (const x of [open.js, open.native]) {
      assert.deepEqual([x.roundTrips, x.errors], [50, 0]);
      assert.ok(x.latency.p50 >= 50, `open-loop p50 ${x.latency.p50} ms hides the stall`);
      assert.ok(x.latency.max >= stallMs - 5);
      assert.ok(x.latency.mean * x.latency.count >= 8_200 - 50, 'the latencies add up to the waits');
    }
    const closed = await both(stallServer, { connections: 1, size: 32, requests: 50 });
    for (const x of [closed.js, closed.native]) {
      assert.equal(x.roundTrips, 50);
      assert.ok(x.latency.max >= stallMs - 5);
      assert.ok(x.latency.p90 < stallMs / 8, `closed-loop p90 ${x.latency.p90} ms`);
    }
  });
});

describe('load engines: the same errors', { skip }, () => {
  it('a server that closes every connection after 3 echoes: one error per connection', async (t) => {
    const server = async (): Promise<Endpoint> =>
      (
        await startTestServer(
          v4,
          (socket) => {
            let n = 0;
            socket.on('data', (chunk: Buffer) => {
              socket.write(chunk);
              if (++n === 4) socket.destroy();
            });
          },
          t,
        )
      ).endpoint;
    const r = await both(server, { connections: 3, size: 16, durationMs: 2000 });
    for (const x of [r.js, r.native]) {
      assertAccounts(x);
      assert.equal(x.errors, 3);
      assert.equal((x.errorCodes['ERR_CONN_CLOSED'] ?? 0) + (x.errorCodes['ERR_CONN_RESET'] ?? 0), 3);
      assert.equal(x.roundTrips, 9);
      assert.ok(x.seconds < 2, 'the run ends when every connection is gone');
    }
  });

  it('a server that resets: ERR_CONN_RESET on both', async (t) => {
    const server = async (): Promise<Endpoint> =>
      (
        await startTestServer(
          v4,
          (socket) => {
            let n = 0;
            socket.on('data', (chunk: Buffer) => {
              if (++n === 3) socket.resetAndDestroy();
              else socket.write(chunk);
            });
          },
          t,
        )
      ).endpoint;
    const r = await both(server, { connections: 2, size: 16, requests: 10, timeoutMs: 5_000 });
    assert.deepEqual(exact(r.native), exact(r.js));
    for (const x of [r.js, r.native]) {
      assertAccounts(x);
      assert.deepEqual([x.roundTrips, x.errorCodes['ERR_CONN_RESET'], x.failures.connection], [2, 2, 2]);
    }
  });

  it('a server that corrupts an echo: ERR_ECHO_MISMATCH', async (t) => {
    const server = async (): Promise<Endpoint> =>
      (
        await startTestServer(
          v4,
          (socket) => {
            let n = 0;
            socket.on('data', (chunk: Buffer) => {
              if (++n === 3) chunk = Buffer.from(chunk).fill(0x58);
              socket.write(chunk);
            });
          },
          t,
        )
      ).endpoint;
    const r = await both(server, { connections: 1, size: 8, requests: 10 });
    assert.deepEqual(exact(r.native), exact(r.js));
    assert.deepEqual([r.native.errors, r.native.errorCodes['ERR_ECHO_MISMATCH'], r.native.roundTrips, r.native.failures.mismatch], [1, 1, 1, 1]);
  });

  it('a corrupted echo with requests outstanding: each of them fails as mismatch', async (t) => {
    const size = 8;
    const server = async (): Promise<Endpoint> =>
      (
        await startTestServer(
          v4,
          (socket: Socket) => {
            let warm = true;
            let held = Buffer.alloc(0);
            socket.on('data', (chunk: Buffer) => {
              if (warm) {
                warm = false;
                socket.write(chunk.subarray(0, 1));
                chunk = chunk.subarray(1);
              }
              held = Buffer.concat([held, chunk]);
              if (held.length >= 5 * size) {
                socket.write(Buffer.alloc(held.length, 0x58));
                held = Buffer.alloc(0);
              }
            });
          },
          t,
        )
      ).endpoint;
    const r = await both(server, { connections: 1, size, rate: 200, durationMs: 300, timeoutMs: 5_000 });
    for (const x of [r.js, r.native]) {
      assertAccounts(x);
      assert.equal(x.completed, 0);
      assert.ok(x.failures.mismatch >= 5, `${x.failures.mismatch} mismatched`);
      assert.equal(x.errorCodes['ERR_ECHO_MISMATCH'], x.failures.mismatch);
    }
  });

  it('no server: ERR_CONN_REFUSED (one thread or two); bad options: ERR_INVALID_ARG', async (t) => {
    const server = await startTestServer(v4, () => undefined, t);
    const ep = server.endpoint;
    await server.close();
    for (const engine of ENGINES) {
      await assert.rejects(runLoad(ep, { engine, connections: 2, durationMs: 100 }), { code: 'ERR_CONN_REFUSED' }, engine);
      await assert.rejects(runLoad(ep, { engine, connections: 0 }), { code: 'ERR_INVALID_ARG' }, engine);
      await assert.rejects(runLoad(ep, { engine, messages: [Buffer.alloc(0)] }), { code: 'ERR_INVALID_ARG' }, engine);
    }
    await assert.rejects(runLoad(ep, { engine: 'native', threads: 2, connections: 2, requests: 10 }), { code: 'ERR_CONN_REFUSED' });
    await assert.rejects(runLoad(ep, { engine: 'native', threads: 3, connections: 3, requests: 2 }), { code: 'ERR_INVALID_ARG' });
    await assert.rejects(runLoad(ep, { engine: 'native', onLatency: () => undefined }), { code: 'ERR_INVALID_ARG' });
    await assert.rejects(runLoad(ep, { engine: 'js', threads: 2 }), { code: 'ERR_INVALID_ARG' });
  });

  it('a server that never echoes: ERR_TIMEOUT, one per connection', async (t) => {
    const server = async (): Promise<Endpoint> => (await startTestServer(v4, (socket) => socket.once('data', (c: Buffer) => socket.write(c)), t)).endpoint;
    const r = await both(server, { connections: 2, size: 8, requests: 10, timeoutMs: 300 });
    assert.deepEqual(exact(r.native), exact(r.js));
    assert.deepEqual([r.native.errorCodes['ERR_TIMEOUT'], r.native.roundTrips, r.native.failures.timeout], [2, 0, 2]);
  });

  it('a framed reply over --max-message: ERR_FRAME_TOO_LARGE', async (t) => {
    const server = async (): Promise<Endpoint> =>
      (
        await startTestServer(
          v4,
          (socket) => {
            let n = 0;
            socket.on('data', (chunk: Buffer) => {
              // The warm-up frame back, then a header claiming 1 MiB.
              if (++n === 1) socket.write(chunk);
              else socket.write(Buffer.from([0, 0x10, 0, 0]));
            });
          },
          t,
        )
      ).endpoint;
    const r = await both(server, { protocol: 'framed', connections: 1, size: 10, requests: 5, maxMessageSize: 1000, timeoutMs: 5_000 });
    assert.deepEqual(exact(r.native), exact(r.js));
    assert.deepEqual([r.native.errorCodes['ERR_FRAME_TOO_LARGE'], r.native.failures.connection], [1, 1]);
  });
});

describe('load engines: accounting', { skip }, () => {
  it('open loop against a stalled server: every scheduled request fails as unanswered', async (t) => {
    const r = await both(fresh(() => stalledServer(t)), { connections: 4, size: 16, rate: 200, durationMs: 500, timeoutMs: 5_000, drainMs: 100 });
    for (const x of [r.js, r.native]) {
      assertAccounts(x);
      assert.ok(x.scheduled >= 60 && x.scheduled <= Math.floor(x.seconds * 200) + 1, `scheduled ${x.scheduled} in ${x.seconds} s`);
      assert.deepEqual([x.completed, x.unsent, x.failures.unanswered, x.inFlightAtStop, x.errorCodes['ERR_TIMEOUT']], [0, 0, x.scheduled, x.scheduled, x.scheduled]);
    }
  });

  it('open loop past the in-flight limit: requests that waited unsent are queued', async (t) => {
    const r = await both(fresh(() => stalledServer(t)), { connections: 1, size: 8, rate: 4_000, durationMs: 500, timeoutMs: 5_000, drainMs: 100 });
    for (const x of [r.js, r.native]) {
      assertAccounts(x);
      assert.equal(x.sent, MAX_OUTSTANDING_PER_CONNECTION);
      assert.ok(x.unsentBy.queued > 0);
      assert.equal(x.unsentBy.queued, x.scheduled - x.sent);
      assert.equal(x.failures.unanswered, x.sent);
    }
  });

  it('a server that stops reading: writes wait for room (backpressure), what waited is queued', async (t) => {
    const server = async (): Promise<Endpoint> =>
      (
        await startTestServer(
          v4,
          (socket: Socket) => {
            socket.once('data', (chunk: Buffer) => {
              socket.write(chunk.subarray(0, 1));
              socket.pause();
            });
          },
          t,
        )
      ).endpoint;
    const r = await both(server, { connections: 1, size: 256 * 1024, rate: 200, durationMs: 500, timeoutMs: 5_000, drainMs: 100 });
    for (const x of [r.js, r.native]) {
      assertAccounts(x);
      assert.equal(x.completed, 0);
      assert.ok(x.sent < MAX_OUTSTANDING_PER_CONNECTION && x.sent < x.scheduled, `sent ${x.sent} of ${x.scheduled}: the socket filled`);
      assert.equal(x.unsentBy.queued, x.scheduled - x.sent);
    }
  });

  it('closed loop against a stalled server: what was in flight is noted', async (t) => {
    const r = await both(fresh(() => stalledServer(t)), { connections: 3, size: 16, durationMs: 200, timeoutMs: 5_000, drainMs: 100 });
    assert.deepEqual(exact(r.native), exact(r.js));
    for (const x of [r.js, r.native]) assert.deepEqual([x.sent, x.completed, x.failed, x.failures.unanswered, x.inFlightAtStop], [3, 0, 3, 3, 3]);
  });

  it('a connection timeout fails its whole backlog; requests due on it afterwards are unsent', async (t) => {
    const r = await both(fresh(() => stalledServer(t)), { connections: 2, size: 16, rate: 100, durationMs: 1_500, timeoutMs: 300 });
    for (const x of [r.js, r.native]) {
      assertAccounts(x);
      assert.equal(x.completed, 0);
      assert.ok(x.failures.timeout > 2);
      assert.equal(x.failures.timeout, x.sent);
    }
  });

  it('a server that closes each connection mid-run: the backlog fails as connection, the rest is unsent', async (t) => {
    const size = 16;
    const server = fresh(() => cutShortServer(t, size, [3, 20, 20]));
    const r = await both(server, { connections: 3, size, rate: 300, durationMs: 600, timeoutMs: 5_000 });
    for (const x of [r.js, r.native]) {
      assertAccounts(x);
      assert.equal(x.completed, 3 + 20 + 20);
      assert.equal(x.failed, x.failures.connection);
      assert.ok(x.unsentBy.connectionDown > 0);
      assert.equal((x.errorCodes['ERR_CONN_CLOSED'] ?? 0) + (x.errorCodes['ERR_CONN_RESET'] ?? 0), x.errors);
    }
  });

  it('a healthy server, open loop: everything completes', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const r = await both(() => Promise.resolve(server.endpoint), { connections: 4, size: 64, rate: 400, durationMs: 300 });
    for (const x of [r.js, r.native]) {
      assertAccounts(x);
      assert.ok(x.completed > 0);
      assert.deepEqual([x.failed, x.unsent, x.errors], [0, 0, 0]);
    }
  });
});

describe('load engines: transports, messages, threads', { skip }, () => {
  it('--messages, framed (closed and open loop), Unix sockets: the same counts, and the server saw them', async (t) => {
    const plain = await startManagedEchoServer(v4);
    t.after(() => plain.close());
    const messages = await parseMessages(['Message 1 from client.,Message 2 from client.']);
    const m = await both(() => Promise.resolve(plain.endpoint), { connections: 2, messages, requests: 4 });
    assert.deepEqual(exact(m.native), exact(m.js));
    assert.deepEqual([m.native.roundTrips, m.native.errors, m.native.bytesReceived], [4, 0, 4 * 22]);

    const framed = await startManagedEchoServer(v4, { framed: true });
    t.after(() => framed.close());
    const f = await both(() => Promise.resolve(framed.endpoint), { protocol: 'framed', connections: 3, size: 1000, requests: 300 });
    assert.deepEqual(exact(f.native), exact(f.js));
    const fo = await both(() => Promise.resolve(framed.endpoint), { protocol: 'framed', connections: 3, size: 10, rate: 500, requests: 50 });
    assert.deepEqual(exact(fo.native), exact(fo.js));
    assert.equal(framed.stats().roundTrips, 2 * (300 + 50 + 6));

    const unix = await startManagedEchoServer({ kind: 'unix', path: join(tempDir(t), 'e.sock') });
    t.after(() => unix.close());
    const u = await both(() => Promise.resolve(unix.endpoint), { connections: 50, size: 4096, requests: 500 });
    assert.deepEqual(exact(u.native), exact(u.js));
    assert.deepEqual([u.native.roundTrips, u.native.errors, u.native.connected], [500, 0, 50]);
  });

  it('UDP: closed and open loop, 2-byte requests, and a datagram over the maximum', async (t) => {
    const server = await startUdpEchoServer(v4);
    t.after(() => server.close());
    const ep = (): Promise<Endpoint> => Promise.resolve(server.endpoint);
    const r = await both(ep, { protocol: 'udp', connections: 4, size: 512, requests: 200 });
    assert.deepEqual(exact(r.native), exact(r.js));
    assert.deepEqual([r.native.roundTrips, r.native.errors, r.native.bytesReceived], [200, 0, 200 * 512]);
    const small = await both(ep, { protocol: 'udp', connections: 2, size: 2, rate: 400, requests: 40 });
    assert.deepEqual(exact(small.native), exact(small.js));
    for (const engine of ENGINES) await assert.rejects(runLoad(server.endpoint, { engine, protocol: 'udp', size: 70_000 }), { code: 'ERR_DATAGRAM_TOO_LARGE' }, engine);
    for (const engine of ENGINES) await assert.rejects(runLoad({ kind: 'unix', path: '/tmp/x.sock' }, { engine, protocol: 'udp' }), { code: 'ERR_UDP_UNIX_UNSUPPORTED' }, engine);
  });

  it('UDP: a lost datagram is an error after the timeout; its late echo is a stray, never another reply', async (t) => {
    const server = (): Promise<Endpoint> => lateUdpEcho(t);
    const r = await both(server, { protocol: 'udp', connections: 1, size: 64, requests: 9, timeoutMs: 500 });
    // (Whether the last lost one is counted as lost or as unanswered depends on when the drain,
    // which lasts one timeout, ends against the loss check: both are ERR_TIMEOUT.)
    for (const x of [r.js, r.native]) {
      assert.deepEqual([x.requests, x.roundTrips, x.errors, x.errorCodes['ERR_TIMEOUT']], [9, 6, 3, 3]);
      assert.ok(x.stray >= 1, 'late echoes are counted as strays');
    }
  });

  it('UDP to a port nobody listens on: ERR_CONN_REFUSED (ICMP port unreachable)', async () => {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const port = udp.address().port;
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    for (const engine of ENGINES) {
      await assert.rejects(runLoad({ kind: 'inet', host: '127.0.0.1', port }, { engine, protocol: 'udp', connections: 1, requests: 5, timeoutMs: 3_000 }), { code: 'ERR_CONN_REFUSED' }, engine);
    }
  });

  it('opens connections at the bounded rate', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const r = await both(() => Promise.resolve(server.endpoint), { connections: 20, connectRate: 100, requests: 20 });
    for (const x of [r.js, r.native]) {
      assert.ok(x.connectMs >= 180, `${x.connectMs} ms`);
      assert.equal(x.connected, 20);
    }
  });

  it('native threads: 2 give the totals of 1 for a fixed count (stream, framed, UDP); open loop keeps the schedule in all', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const one = await runLoad(server.endpoint, { engine: 'native', connections: 6, size: 100, requests: 3001 });
    const before = server.stats().roundTrips;
    const two = await runLoad(server.endpoint, { engine: 'native', threads: 2, connections: 6, size: 100, requests: 3001 });
    assert.deepEqual(exact(two), exact(one));
    assert.equal(server.stats().roundTrips - before, 3001 + 6);
    assertAccounts(two);

    const framed = await startManagedEchoServer(v4, { framed: true });
    t.after(() => framed.close());
    const f = await runLoad(framed.endpoint, { engine: 'native', threads: 2, protocol: 'framed', connections: 3, size: 50, requests: 301 });
    assert.deepEqual([f.roundTrips, f.errors, f.connected], [301, 0, 3]);

    const udp = await startUdpEchoServer(v4);
    t.after(() => udp.close());
    const u = await runLoad(udp.endpoint, { engine: 'native', threads: 2, protocol: 'udp', connections: 2, size: 64, requests: 200 });
    assert.equal(u.roundTrips + u.failed, 200);

    const o = await runLoad(server.endpoint, { engine: 'native', threads: 2, connections: 4, rate: 400, requests: 200 });
    assert.deepEqual([o.mode, o.rate, o.scheduled, o.completed, o.errors], ['open', 400, 200, 200, 0]);
    assert.ok(o.seconds >= 0.45 && o.seconds < 5, `${o.seconds} s`);
  });

  it('an abort while connecting, and during the run: interrupted, accounted, at once', async (t) => {
    const never = await stalledServer(t, false);
    for (const engine of ENGINES) {
      const ac = new AbortController();
      const running = runLoad(never.endpoint, { engine, connections: 4, signal: ac.signal });
      await waitUntil(() => never.accepted >= (engine === 'js' ? 4 : 8), 'the connections to be accepted');
      const at = performance.now();
      ac.abort();
      const r = await running;
      assert.ok(performance.now() - at < 2_000, engine);
      assert.deepEqual([r.interrupted, r.scheduled, r.connected], [true, 0, 0], engine);
    }
    const stalled = await stalledServer(t);
    for (const engine of ENGINES) {
      const ac = new AbortController();
      let started = false;
      const running = runLoad(stalled.endpoint, { engine, connections: 2, rate: 100, durationMs: 30_000, signal: ac.signal, onRunStart: () => (started = true) });
      await waitUntil(() => started, 'the run to start');
      await new Promise((resolve) => setTimeout(resolve, 100)); // a few requests due (the rate is the clock here)
      const at = performance.now();
      ac.abort();
      const r = await running;
      assert.ok(performance.now() - at < 1_500, `${engine}: no drain after an abort`);
      assertAccounts(r);
      assert.equal(r.interrupted, true);
      assert.ok(r.scheduled >= 1);
      assert.equal(r.errorCodes['ERR_ABORTED'], r.failures.unanswered, engine);
    }
  });
});

describe('socketkit load --engine (the real binary)', { skip }, () => {
  it('the same --json and exit codes on both engines; the start line names the engine', async (t) => {
    const server = await startManagedEchoServer(v4, { maxConnections: 2 });
    t.after(() => server.close());
    const addr = formatEndpoint(server.endpoint);
    const pick = (j: Record<string, unknown>): unknown[] => ['roundTrips', 'sent', 'errors', 'size', 'bytesReceived', 'connected', 'errorCodes'].map((k) => j[k]);
    const out: Record<string, unknown[]> = {};
    for (const engine of ENGINES) {
      const ok = await runCli(['load', addr, '-c', '2', '-n', '50', '-s', '1k', '--json', '--engine', engine], { timeoutMs: 20_000 });
      assert.equal(ok.code, 0, ok.stderr);
      const j = ndjson(ok.stdout.toString()).find((l) => l['event'] === 'load')!;
      assert.equal(j['engine'], engine);
      out[engine] = pick(j);
      await waitUntil(() => server.stats().connections === 0, 'the run to disconnect');
      // Three connections to a server that takes two: one is refused, exit 1.
      const some = await runCli(['load', addr, '-c', '3', '-d', '0.3', '--engine', engine], { timeoutMs: 20_000 });
      assert.equal(some.code, 1, `${engine}: ${some.stderr}`);
      assert.match(some.stdout.toString(), /errors {7}1/);
      assert.match(some.stderr, new RegExp(`connecting 3 connection\\(s\\) to ${addr.replace(/\./g, '\\.')} \\(engine ${engine}\\)`));
      await waitUntil(() => server.stats().connections === 0, 'the run to disconnect');
    }
    assert.deepEqual(out['native'], out['js']);
    assert.deepEqual(out['native'], [50, 50, 0, 1024, 50 * 1024, 2, {}]);
    // The default is native; what needs js says why; asking native for it is refused.
    const dflt = await runCli(['load', addr, '-c', '1', '-n', '5'], { timeoutMs: 20_000 });
    assert.match(dflt.stderr, /\(engine native\)/);
    const print = await runCli(['load', addr, '-c', '1', '-n', '1', '--print'], { timeoutMs: 20_000 });
    assert.match(print.stderr, /\(engine js \(--print runs on the js engine only\)\)/);
    const refused = await runCli(['load', addr, '-n', '1', '--print', '--engine', 'native'], { timeoutMs: 20_000 });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /the native engine cannot run: --print runs on the js engine only \(ERR_USAGE\)/);
    const off = await runCli(['load', addr, '-c', '1', '-n', '5'], { timeoutMs: 20_000, env: { SOCKETKIT_NATIVE: '0' } });
    assert.match(off.stderr, /\(engine js \(turned off by SOCKETKIT_NATIVE=0\)\)/);
    const bad = await runCli(['load', addr, '--engine', 'fast']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /ERR_USAGE/);
  });

  it('a stalled server: the same breakdown in --json, exit 1', async (t) => {
    const server = await stalledServer(t);
    const addr = formatEndpoint(server.endpoint);
    for (const engine of ENGINES) {
      const r = await runCli(['load', addr, '-c', '2', '-d', '0.3', '--json', '--engine', engine], { timeoutMs: 15_000 });
      assert.equal(r.code, 1, r.stderr);
      const j = ndjson(r.stdout.toString())[0] as Record<string, unknown> & { failures: Record<string, number>; latencyMs: Record<string, number | null> };
      assert.deepEqual([j['sent'], j['completed'], j['failed'], j.failures['unanswered'], j['inFlightAtStop'], j.latencyMs['p50']], [2, 0, 2, 2, 2, null], engine);
    }
  });

  it('SIGINT while connecting and during the run: exit 130 at once, the partial result', async (t) => {
    const never = await stalledServer(t, false);
    const p = spawnCli(['load', formatEndpoint(never.endpoint), '-c', '10', '--engine', 'native'], t);
    await p.stderr.waitFor(/connecting 10 connection/);
    const at = performance.now();
    p.kill('SIGINT');
    const { code } = await p.waitExit(8_000);
    assert.equal(code, 130, p.stderr.text);
    assert.ok(performance.now() - at < 3_000);
    assert.match(p.stdout.text, /0 of 10 connection\(s\).*interrupted/);

    const stalled = await stalledServer(t);
    const q = spawnCli(['load', formatEndpoint(stalled.endpoint), '-c', '2', '--rate', '100', '-d', '30', '--json', '--engine', 'native'], t);
    await waitUntil(() => stalled.accepted >= 2, 'the connections');
    await new Promise((resolve) => setTimeout(resolve, 300)); // into the run (the connect checks are echoed at once)
    q.kill('SIGTERM');
    const done = await q.waitExit(8_000);
    assert.equal(done.code, 143, q.stderr.text);
    const j = ndjson(q.stdout.text)[0]! as Record<string, number | boolean>;
    assert.equal(j['interrupted'], true);
    assert.equal(j['scheduled'], (j['completed'] as number) + (j['failed'] as number) + (j['unsent'] as number));
  });

  it('--hdr-log and --threads on the native engine: the log holds every value', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const path = join(tempDir(t), 'n.hlog');
    const r = await runCli(['load', formatEndpoint(server.endpoint), '-c', '4', '-n', '2000', '--threads', '2', '--hdr-log', path, '--log-interval', '0.1', '--json', '--engine', 'native'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const j = ndjson(r.stdout.toString()).find((l) => l['event'] === 'load')!;
    assert.deepEqual([j['roundTrips'], j['errors'], (j['latencyMs'] as { count: number }).count], [2000, 0, 2000]);
    const log = parseIntervalLog(await readFile(path, 'utf8'), path);
    assert.equal(log.intervals.reduce((n, i) => n + i.histogram.totalCount, 0), 2000);
    // The log keeps buckets (a value within 0.1 %), the result the exact maximum.
    const max = Math.max(...log.intervals.map((i) => i.histogram.maxValue)) / 1000;
    const exactMax = (j['latencyMs'] as { max: number }).max;
    assert.ok(Math.abs(max - exactMax) <= exactMax * 0.001 + 0.001, `log max ${max} ms, result max ${exactMax} ms`);
  });
});
