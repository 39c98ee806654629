// Tests of the load generator (src/load, `socketkit load`): its statistics against servers with a
// known injected delay or stall, closed and open loop (no coordinated omission), errors from
// servers that close or corrupt, --messages, framed, UDP (with loss), Unix sockets, the CLI.
// Latency assertions are one-sided (at least the injected delay; plausible upper bounds only).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { LatencyRecorder, parseMessages, payloadOfSize, runLoad, type LoadResult } from '../src/load/index.js';
import { startManagedEchoServer } from '../src/server/index.js';
import { startUdpEchoServer } from '../src/udp/index.js';
import { formatEndpoint } from '../src/net/endpoint.js';
import { runMain } from './helpers/cli.js';
import { startTestServer, waitUntil } from './helpers/net.js';
import { tempDir } from './helpers/tmp.js';
import { WARM_UP, delayServer, lateUdpEcho, v4 } from './helpers/load-servers.js';

function checkConsistent(r: LoadResult): void {
  assert.equal(r.latency.count, r.roundTrips);
  assert.ok(r.latency.min <= r.latency.p50 && r.latency.p50 <= r.latency.p90 && r.latency.p90 <= r.latency.p99);
  assert.ok(r.latency.p99 <= r.latency.p999 && r.latency.p999 <= r.latency.max);
}

describe('load: statistics against a server with a known delay', () => {
  it('closed loop: every round trip takes at least the delay, the rate cannot beat it, counts are exact', async (t) => {
    const delay = 30;
    const server = await delayServer(delay, t);
    const r = await runLoad(server.endpoint, { connections: 2, size: 64, requests: 20 });
    assert.deepEqual([r.roundTrips, r.requests, r.errors, r.connected, r.mode], [20, 20, 0, 2, 'closed']);
    assert.deepEqual([r.bytesSent, r.bytesReceived], [20 * 64, 20 * 64]);
    checkConsistent(r);
    // Timers may fire a hair early relative to our clock: allow 1 ms.
    assert.ok(r.latency.min >= delay - 1, `min ${r.latency.min} ms < ${delay} ms`);
    assert.ok(r.latency.p50 >= delay - 1 && r.latency.p99 >= delay - 1);
    assert.ok(r.latency.max < delay + 5_000, `max ${r.latency.max} ms is implausible`);
    // 2 connections, each round trip >= 30 ms: at most 2 / 0.030 = 66.7 per second (1 ms slack per trip).
    assert.ok(r.roundTripsPerSecond <= 2000 / (delay - 1), `${r.roundTripsPerSecond}/s is faster than the delay allows`);
    assert.ok(r.seconds >= (10 * (delay - 1)) / 1000);
  });

  it('open loop: requests are sent on schedule and the count follows the rate', async (t) => {
    const delay = 20;
    const server = await delayServer(delay, t);
    const r = await runLoad(server.endpoint, { connections: 2, size: 100, rate: 100, requests: 30 });
    assert.deepEqual([r.roundTrips, r.requests, r.errors, r.mode, r.rate], [30, 30, 0, 'open', 100]);
    checkConsistent(r);
    assert.ok(r.latency.min >= delay - 1);
    // 30 requests at 100/s are spread over 0.29 s at least.
    assert.ok(r.seconds >= 0.29, `${r.seconds} s`);
  });

  it('open loop counts the wait of requests due during a stall (no coordinated omission); closed loop cannot', async (t) => {
    // Holds every request that arrives in the 400 ms after the first one, then echoes at once.
    const stallMs = 400;
    const stallServer = (): ReturnType<typeof startTestServer> => {
      let stallUntil: number | undefined;
      return startTestServer(
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
      );
    };
    const open = await runLoad((await stallServer()).endpoint, { connections: 1, size: 32, rate: 100, requests: 50 });
    assert.deepEqual([open.roundTrips, open.errors], [50, 0]);
    // Requests due at 0, 10, ..., 390 ms all waited for the end of the stall: 40 of 50 latencies
    // spread over 10..400 ms, so the median is well above 50 ms and the maximum near 400 ms.
    // Together they waited at least sum(400 - 10 k) for k = 0..39 = 8,200 ms, counted from when each was due.
    assert.ok(open.latency.p50 >= 50, `open-loop p50 ${open.latency.p50} ms hides the stall`);
    assert.ok(open.latency.max >= stallMs - 5);
    const openTotal = open.latency.mean * open.latency.count;
    assert.ok(openTotal >= 8_200 - 50, `open-loop latencies add up to ${openTotal} ms, less than the requests waited`);

    // The same stall seen by a closed loop: one slow round trip, the rest fast. Each run is judged
    // against the known stall, never against the other run (their speeds vary with the machine).
    const closed = await runLoad((await stallServer()).endpoint, { connections: 1, size: 32, requests: 50 });
    assert.equal(closed.roundTrips, 50);
    assert.ok(closed.latency.max >= stallMs - 5);
    assert.ok(closed.latency.p90 < stallMs / 8, `closed-loop p90 ${closed.latency.p90} ms: a closed loop records the stall once`);
  });
});

describe('load: errors are counted, not hidden', () => {
  it('a server that closes every connection after 3 echoes: each connection is one error', async (t) => {
    const server = await startTestServer(
      v4,
      (socket) => {
        let n = 0;
        socket.on('data', (chunk: Buffer) => {
          socket.write(chunk);
          if (++n === 4) socket.destroy(); // the warm-up and 3 requests
        });
      },
      t,
    );
    const r = await runLoad(server.endpoint, { connections: 3, size: 16, durationMs: 2000 });
    assert.equal(r.errors, 3);
    assert.equal((r.errorCodes['ERR_CONN_CLOSED'] ?? 0) + (r.errorCodes['ERR_CONN_RESET'] ?? 0), 3);
    assert.equal(r.roundTrips, 9);
    assert.ok(r.seconds < 2, 'the run ends when every connection is gone');
  });

  it('a server that corrupts an echo: ERR_ECHO_MISMATCH', async (t) => {
    const server = await startTestServer(
      v4,
      (socket) => {
        let n = 0;
        socket.on('data', (chunk: Buffer) => {
          if (++n === 3) chunk = Buffer.from(chunk).fill(0x58);
          socket.write(chunk);
        });
      },
      t,
    );
    const r = await runLoad(server.endpoint, { connections: 1, size: 8, requests: 10 });
    assert.deepEqual([r.errors, r.errorCodes['ERR_ECHO_MISMATCH'], r.roundTrips], [1, 1, 1]);
  });

  it('no server: ERR_CONN_REFUSED; an impossible option: ERR_INVALID_ARG', async (t) => {
    const server = await startTestServer(v4, () => undefined, t);
    const ep = server.endpoint;
    await server.close();
    await assert.rejects(runLoad(ep, { connections: 2, durationMs: 100 }), { code: 'ERR_CONN_REFUSED' });
    await assert.rejects(runLoad(ep, { connections: 0 }), { code: 'ERR_INVALID_ARG' });
    await assert.rejects(runLoad(ep, { messages: [Buffer.alloc(0)] }), { code: 'ERR_INVALID_ARG' });
  });

  it('a server that never echoes: ERR_TIMEOUT', async (t) => {
    const server = await startTestServer(v4, (socket) => socket.once('data', (c: Buffer) => socket.write(c)), t); // only the warm-up
    const r = await runLoad(server.endpoint, { connections: 2, size: 8, requests: 10, timeoutMs: 300 });
    assert.equal(r.errorCodes['ERR_TIMEOUT'], 2);
    assert.equal(r.roundTrips, 0);
  });
});

describe('load: transports and messages', () => {
  it('--messages: each connection sends the list in turn, like the reference client', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const messages = await parseMessages(['Message 1 from client.,Message 2 from client.']);
    const r = await runLoad(server.endpoint, { connections: 2, messages, requests: 4 });
    assert.deepEqual([r.roundTrips, r.errors, r.bytesReceived], [4, 0, 4 * 22]);

    const file = join(tempDir(t), 'messages.txt');
    writeFileSync(file, 'one\ntwo\n\nthree\n');
    assert.deepEqual((await parseMessages([`@${file}`, 'four'])).map(String), ['one', 'two', 'three', 'four']);
    await assert.rejects(parseMessages(['a,,b']), { code: 'ERR_INVALID_ARG' });
    await assert.rejects(parseMessages([`@${file}.missing`]), { code: 'ERR_NOT_FOUND' });
  });

  it('framed and Unix socket servers', async (t) => {
    const framed = await startManagedEchoServer(v4, { framed: true });
    t.after(() => framed.close());
    const f = await runLoad(framed.endpoint, { protocol: 'framed', connections: 3, size: 1000, requests: 300 });
    assert.deepEqual([f.roundTrips, f.errors], [300, 0]);
    const fo = await runLoad(framed.endpoint, { protocol: 'framed', connections: 3, size: 10, rate: 500, requests: 50 });
    assert.deepEqual([fo.roundTrips, fo.errors], [50, 0]);
    assert.equal(framed.stats().roundTrips, 300 + 50 + 6); // and the 6 warm-up messages

    const unix = await startManagedEchoServer({ kind: 'unix', path: join(tempDir(t), 'e.sock') });
    t.after(() => unix.close());
    const u = await runLoad(unix.endpoint, { connections: 50, size: 4096, requests: 500 });
    assert.deepEqual([u.roundTrips, u.errors, u.connected], [500, 0, 50]);
  });

  it('UDP: round trips against the UDP echo server, closed and open loop', async (t) => {
    const server = await startUdpEchoServer(v4);
    t.after(() => server.close());
    const r = await runLoad(server.endpoint, { protocol: 'udp', connections: 4, size: 512, requests: 200 });
    assert.deepEqual([r.roundTrips, r.errors, r.bytesReceived], [200, 0, 200 * 512]);
    const small = await runLoad(server.endpoint, { protocol: 'udp', connections: 2, size: 2, rate: 400, requests: 40 });
    assert.deepEqual([small.roundTrips, small.errors], [40, 0]);
    await assert.rejects(runLoad(server.endpoint, { protocol: 'udp', size: 70_000 }), { code: 'ERR_DATAGRAM_TOO_LARGE' });
  });

  it('UDP: a lost datagram is an error after the timeout, and a late echo of it is not mistaken for another', async (t) => {
    // Drops every 3rd request (not the warm-up), and echoes it late instead (after 1.5 s). The
    // timeout (0.5 s) leaves room for a loaded machine's echo, and the late echo is three
    // timeouts away, so neither can pass for the other.
    const ep = await lateUdpEcho(t);
    const r = await runLoad(ep, { protocol: 'udp', connections: 1, size: 64, requests: 9, timeoutMs: 500 });
    assert.deepEqual([r.requests, r.roundTrips, r.errors, r.errorCodes['ERR_TIMEOUT']], [9, 6, 3, 3]);
    assert.ok(r.stray >= 1, 'late echoes are counted as strays');
  });
});

describe('load: connection opening and the histogram', () => {
  it('opens connections at the bounded rate', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const r = await runLoad(server.endpoint, { connections: 20, connectRate: 100, requests: 20 });
    // The 20th connection is not opened before 19/100 s.
    assert.ok(r.connectMs >= 180, `${r.connectMs} ms`);
    assert.equal(r.connected, 20);
  });

  it('percentiles of known values', () => {
    const h = new LatencyRecorder();
    for (let i = 1; i <= 1000; i++) h.record(i); // 1..1000 ms
    const s = h.summary();
    const near = (x: number, want: number): boolean => Math.abs(x - want) <= want * 0.001 + 0.001;
    assert.equal(s.count, 1000);
    assert.ok(near(s.p50, 500) && near(s.p90, 900) && near(s.p99, 990) && near(s.p999, 999) && near(s.max, 1000), JSON.stringify(s));
    assert.ok(near(s.min, 1) && near(s.mean, 500.5));
    assert.equal(payloadOfSize(30).toString(), 'abcdefghijklmnopqrstuvwxyzabcd');
  });
});

describe('socketkit load (CLI)', () => {
  it('--json prints one result line; exit 0 without errors, 1 with', async (t) => {
    const server = await startManagedEchoServer(v4, { maxConnections: 2 });
    t.after(() => server.close());
    const addr = formatEndpoint(server.endpoint);
    const ok = await runMain(['load', addr, '-c', '2', '-n', '50', '-s', '1k', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    const lines = ok.stdout.toString().trim().split('\n');
    assert.equal(lines.length, 1);
    const r = JSON.parse(lines[0]!) as Record<string, unknown> & { latencyMs: Record<string, number> };
    assert.deepEqual([r['event'], r['roundTrips'], r['errors'], r['size'], r['bytesReceived']], ['load', 50, 0, 1024, 50 * 1024]);
    for (const k of ['p50', 'p90', 'p99', 'p999', 'max']) assert.equal(typeof r.latencyMs[k], 'number');

    // Three connections to a server that takes two: one is refused, the run goes on, exit 1.
    await waitUntil(() => server.stats().connections === 0, 'the first run to disconnect');
    const some = await runMain(['load', addr, '-c', '3', '-d', '0.3']);
    assert.equal(some.code, 1);
    assert.match(some.stdout.toString(), /errors {7}1/);
    assert.match(some.stdout.toString(), /p99\.9/);
  });

  it('usage errors', async () => {
    for (const args of [['-c', '0'], ['--framed', '--udp'], ['-s', '0'], ['--rate', 'fast'], ['-d', '0']]) {
      const r = await runMain(['load', '127.0.0.1:9', ...args]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /\(ERR_USAGE\)/);
    }
  });
});
