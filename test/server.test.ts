// Tests of the managed server machinery (src/server) and `echo-server --max-conns/--idle-timeout/
// --workers/--stats`: refusal past the limit while existing clients are served, idle connections
// closed, graceful drain on SIGTERM, 1,000 concurrent connections, statistics, cluster workers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { Socket } from 'node:net';
import {
  IdleCompactor,
  IdleSweeper,
  connectionLimit,
  idleSweepInterval,
  ratesBetween,
  resolveWorkerCount,
  shareOfLimit,
  startManagedEchoServer,
  sumStats,
  ZERO_STATS,
  type ServerEvent,
} from '../src/server/index.js';
import { echoMessage } from '../src/echo/client.js';
import { connectMessages } from '../src/message/index.js';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { main } from '../src/cli/main.js';
import { runLoad } from '../src/load/index.js';
import { LineWatcher, spawnCli, spawnProcess } from './helpers/cli.js';
import { rawConnect, readAll, refusedSoon, waitUntil } from './helpers/net.js';
import { tempDir, type CleanupContext } from './helpers/tmp.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

/** Writes `text` and resolves with the next `text.length` bytes that come back. */
function roundTrip(socket: Socket, text: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let got = '';
    const onData = (c: Buffer): void => {
      got += c.toString();
      if (got.length >= text.length) {
        socket.removeListener('data', onData);
        socket.removeListener('close', onClose);
        resolve(got);
      }
    };
    const onClose = (): void => reject(new Error(`closed after ${JSON.stringify(got)}`));
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(text);
  });
}

/** Resolves when the socket closes, with whether the peer closed it (no error of ours). */
function closed(socket: Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
}

async function client(ep: Endpoint, t: CleanupContext): Promise<Socket> {
  const s = await rawConnect(ep);
  s.on('error', () => undefined);
  t.after(() => s.destroy());
  return s;
}

describe('managed server: connection limit', () => {
  it('refuses past --max-conns (closed, counted, reported) while existing clients keep being served', async (t) => {
    const events: ServerEvent[] = [];
    const server = await startManagedEchoServer(v4, { maxConnections: 2, onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    const a = await client(server.endpoint, t);
    const b = await client(server.endpoint, t);
    assert.equal(await roundTrip(a, 'a1'), 'a1');
    assert.equal(await roundTrip(b, 'b1'), 'b1');

    const c = await client(server.endpoint, t);
    c.write('never echoed');
    const reply = await readAll(c).catch(() => Buffer.alloc(0)); // EOF or reset, never an echo
    assert.equal(reply.length, 0);
    await closed(c);
    await waitUntil(() => server.stats().refused === 1, 'the refusal to be counted');
    assert.ok(events.some((e) => e.event === 'refused'));

    // The two admitted clients are still served.
    assert.equal(await roundTrip(a, 'a2'), 'a2');
    assert.equal(await roundTrip(b, 'b2'), 'b2');

    // A slot freed is a slot available again.
    a.destroy();
    await waitUntil(() => server.stats().connections === 1, 'the server to see the close');
    const d = await client(server.endpoint, t);
    assert.equal(await roundTrip(d, 'd1'), 'd1');
    const s = server.stats();
    assert.deepEqual([s.accepted, s.refused, s.connections], [3, 1, 2]);
  });

  it('connectionLimit() checks the listener and rejects a nonsensical limit', () => {
    assert.throws(() => connectionLimit(0), { code: 'ERR_INVALID_ARG' });
    const admit = connectionLimit(1);
    const fake = (n: number) => ({ open: n }) as never;
    assert.equal(admit({} as Socket, fake(0)), undefined);
    assert.equal(typeof admit({} as Socket, fake(1)), 'string');
  });

  it('shares a limit between workers so the shares add up to it', () => {
    for (const [max, workers] of [[10, 3], [2, 2], [7, 7], [100, 8]] as const) {
      const shares = Array.from({ length: workers }, (_, i) => shareOfLimit(max, workers, i));
      assert.equal(shares.reduce((x, y) => x + y, 0), max);
      assert.ok(Math.max(...shares) - Math.min(...shares) <= 1);
    }
    assert.equal(shareOfLimit(1, 4, 3), 1); // never 0: a worker with no share would refuse everything
  });
});

describe('managed server: idle timeout', () => {
  it('closes a silent connection and keeps a busy one', { timeout: 30_000 }, async (t) => {
    const idleTimeoutMs = 400;
    const events: ServerEvent[] = [];
    const server = await startManagedEchoServer(v4, { idleTimeoutMs, onEvent: (e) => events.push(e) });
    t.after(() => server.close());
    const silent = await client(server.endpoint, t);
    const busy = await client(server.endpoint, t);
    const silentPort = silent.localPort;
    const t0 = performance.now();
    let silentClosedAt: number | undefined;
    void closed(silent).then(() => (silentClosedAt = performance.now()));
    // `busy` echoes back to back (never a gap near the timeout) until the silent one is closed.
    let ticks = 0;
    while (silentClosedAt === undefined) {
      assert.ok(performance.now() - t0 < 20 * idleTimeoutMs, 'the silent connection was never closed');
      assert.equal(await roundTrip(busy, `tick ${ticks}`), `tick ${ticks}`);
      ticks++;
    }
    // The silent one lasted the timeout, and `busy` was active all that time and is still served.
    assert.ok(silentClosedAt - t0 >= idleTimeoutMs - 1, `closed after ${silentClosedAt - t0} ms`);
    assert.ok(ticks > 1, `${ticks} round trips`);
    assert.equal(busy.destroyed, false);
    assert.equal(await roundTrip(busy, 'still here'), 'still here');
    assert.equal(server.stats().idleClosed, 1);
    const idle = events.filter((e) => e.event === 'idle');
    assert.equal(idle.length, 1);
    assert.ok(idle[0]!.event === 'idle' && idle[0]!.idleMs >= idleTimeoutMs && idle[0]!.peer.endsWith(`:${silentPort}`), JSON.stringify(idle[0]));
  });

  it('the sweeper marks, then closes only connections whose byte counts did not move for the timeout', () => {
    const mk = (): { bytesRead: number; bytesWritten: number; destroyed: boolean; destroy(): void } => ({
      bytesRead: 0,
      bytesWritten: 0,
      destroyed: false,
      destroy() {
        this.destroyed = true;
      },
    });
    const quiet = mk();
    const chatty = mk();
    const conns = new Set([quiet, chatty]) as unknown as Set<Socket>;
    const found: unknown[] = [];
    const sweeper = new IdleSweeper(conns, { timeoutMs: 1000, intervalMs: 3_600_000, onIdle: (s) => found.push(s) });
    try {
      assert.equal(sweeper.sweep(0), 0); // first sight: marked
      chatty.bytesRead = 10;
      assert.equal(sweeper.sweep(600), 0);
      chatty.bytesWritten = 10;
      assert.equal(sweeper.sweep(1000), 1); // quiet since 0: idle; chatty moved at 1000
      assert.deepEqual(found, [quiet]);
      assert.equal(sweeper.sweep(1500), 1); // quiet again (the fake was not removed), chatty not yet
      assert.equal(sweeper.sweep(2000), 2);
    } finally {
      sweeper.stop();
    }
    assert.ok(idleSweepInterval(60_000) <= 5_000 && idleSweepInterval(1) >= 10 && idleSweepInterval(400) === 100);
  });
});

describe('managed server: many connections and statistics', () => {
  it('1,000 concurrent connections all echo correctly', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const n = 1000;
    const replies = await Promise.all(Array.from({ length: n }, (_, i) => echoMessage(server.endpoint, Buffer.from(`connection ${i} says hello`))));
    replies.forEach((r, i) => assert.equal(r.reply.toString(), `connection ${i} says hello`));
    await waitUntil(() => server.stats().connections === 0, 'every connection to close');
    const s = server.stats();
    assert.equal(s.accepted, n);
    const bytes = replies.reduce((sum, r) => sum + r.bytesSent, 0);
    assert.deepEqual([s.bytesIn, s.bytesOut], [bytes, bytes]);
  });

  it('counts round trips and bytes, live and closed, bytes and framed', async (t) => {
    const server = await startManagedEchoServer(v4);
    t.after(() => server.close());
    const a = await client(server.endpoint, t);
    for (let i = 0; i < 5; i++) await roundTrip(a, 'abcd');
    let s = server.stats();
    assert.deepEqual([s.roundTrips, s.bytesIn, s.bytesOut, s.connections], [5, 20, 20, 1]);
    a.destroy();
    await waitUntil(() => server.stats().connections === 0, 'the close');
    s = server.stats();
    assert.deepEqual([s.bytesIn, s.bytesOut], [20, 20]); // kept after the close

    const framed = await startManagedEchoServer(v4, { framed: true });
    t.after(() => framed.close());
    const conn = await connectMessages(framed.endpoint);
    t.after(() => conn.close());
    const replies = conn[Symbol.asyncIterator]();
    for (let i = 0; i < 3; i++) {
      await conn.send(Buffer.from(`message ${i}`));
      assert.equal(Buffer.from((await replies.next()).value as Uint8Array).toString(), `message ${i}`);
    }
    assert.equal(framed.stats().roundTrips, 3);
  });

  it('compacts the heap once after a burst of connections, only when quiet', () => {
    const src = { accepted: 0, connections: 0, roundTrips: 0 };
    const compactor = new IdleCompactor(() => src, { intervalMs: 3_600_000, churn: 10 });
    try {
      src.accepted = src.connections = 5;
      assert.equal(compactor.check(), false); // busy: connections arriving
      assert.equal(compactor.check(), false); // quiet, but too few to matter
      src.accepted = src.connections = 12;
      assert.equal(compactor.check(), false); // busy again
      src.roundTrips = 100;
      assert.equal(compactor.check(), false); // traffic
      assert.equal(compactor.check(), true); // quiet after 12 new connections
      assert.equal(compactor.check(), false); // once
      src.connections = 0;
      assert.equal(compactor.check(), true); // 12 closed: their garbage too
      assert.equal(compactor.collections, 2);
    } finally {
      compactor.stop();
    }
  });

  it('sums and rates', () => {
    const a = { ...ZERO_STATS, connections: 2, accepted: 5, roundTrips: 100, bytesIn: 1000, bytesOut: 1000 };
    const b = { ...ZERO_STATS, connections: 1, accepted: 1, refused: 2, roundTrips: 50, bytesIn: 10, bytesOut: 10 };
    assert.deepEqual(sumStats([a, b]), { connections: 3, accepted: 6, refused: 2, acceptErrors: 0, idleClosed: 0, bytesIn: 1010, bytesOut: 1010, roundTrips: 150 });
    const r = ratesBetween(b, a, 2000);
    assert.deepEqual([r.seconds, r.roundTripsPerSecond, r.bytesInPerSecond, r.acceptedPerSecond], [2, 25, 495, 2]);
    assert.equal(resolveWorkerCount('3'), 3);
    assert.ok(resolveWorkerCount('auto') >= 1);
    assert.throws(() => resolveWorkerCount('0'), { code: 'ERR_INVALID_ARG' });
    assert.throws(() => resolveWorkerCount('many'), { code: 'ERR_INVALID_ARG' });
  });
});

/** Runs `socketkit args` in-process; lines of stdout and stderr can be awaited while it runs. */
function startMain(args: readonly string[]): { stdout: LineWatcher; stderr: LineWatcher; stop: () => void; done: Promise<number> } {
  const out = new PassThrough();
  const err = new PassThrough();
  const ac = new AbortController();
  const stdout = new LineWatcher(out);
  const stderr = new LineWatcher(err);
  const done = main(args, { stdout: out, stderr: err, stdin: new PassThrough(), shutdown: ac.signal }).finally(() => {
    out.end();
    err.end();
  });
  return { stdout, stderr, stop: () => ac.abort(), done };
}

type Json = Record<string, unknown>;
const json = (line: string): Json => JSON.parse(line) as Json;

describe('echo-server command: --max-conns, --idle-timeout, --stats', () => {
  it('prints statistics periodically and at exit (--json), refusing past the limit', async (t) => {
    const run = startMain(['echo-server', '127.0.0.1:0', '--json', '--max-conns', '1', '--idle-timeout', '30', '--stats', '0.1']);
    t.after(() => run.stop());
    const listening = json(await run.stdout.waitFor((l) => l.includes('"listening"')));
    assert.equal(listening['maxConnections'], 1);
    const ep = parseEndpoint(String(listening['address']), { defaultHost: '127.0.0.1' });
    const a = await client(ep, t);
    assert.equal(await roundTrip(a, 'hello'), 'hello');
    const b = await client(ep, t);
    await closed(b);
    await run.stdout.waitFor((l) => l.includes('"refused"'));
    const stats = json(await run.stdout.waitFor((l) => l.includes('"stats"') && l.includes('"refused":1')));
    assert.deepEqual([stats['connections'], stats['accepted'], stats['roundTrips']], [1, 1, 1]);
    assert.equal(typeof stats['roundTripsPerSecond'], 'number');
    a.destroy();
    run.stop();
    assert.equal(await run.done, 0);
    const stopped = json(run.stdout.lines.find((l) => l.includes('"stopped"'))!);
    assert.deepEqual([stopped['accepted'], stopped['refused'], stopped['bytesIn'], stopped['roundTrips']], [1, 1, 5, 1]);
  });

  it('rejects bad values with ERR_USAGE', async () => {
    for (const args of [['--max-conns', '0'], ['--idle-timeout', 'soon'], ['--workers', 'lots'], ['--stats', '-1']]) {
      const run = startMain(['echo-server', '127.0.0.1:0', ...args]);
      assert.equal(await run.done, 2);
      assert.match(run.stderr.text, /\(ERR_USAGE\)/);
    }
  });
});

describe('echo-server, the real binary: graceful drain and workers', () => {
  it('on SIGTERM: refuses newcomers, serves live clients until they finish, prints totals, exits 143', async (t) => {
    const proc = spawnCli(['echo-server', '127.0.0.1:0', '--grace', '20'], t);
    const address = /listening on (\S+)$/.exec(await proc.stderr.waitFor(/listening on /))![1]!;
    const ep = parseEndpoint(address, { defaultHost: '127.0.0.1' });
    const live = await client(ep, t);
    assert.equal(await roundTrip(live, 'before'), 'before');
    proc.kill('SIGTERM');
    await proc.stderr.waitFor(/stopping: 1 connection/);
    // Closed to newcomers...
    await refusedSoon(ep);
    // ...while the live client is still served during the grace period.
    assert.equal(await roundTrip(live, 'during the drain'), 'during the drain');
    live.end();
    const exit = await proc.waitExit();
    assert.equal(exit.code, 143);
    assert.match(proc.stdout.text, /stopped: 1 connection\(s\), 0 refused, 0 idle-closed, 2 round trips, in 22 B, out 22 B/);
    assert.match(proc.stdout.text, /round trips\/s/);
  });

  it('--workers 2 serves from two processes on one port (port 0 too), sums their stats, stops gracefully', async (t) => {
    const proc = spawnCli(['echo-server', '127.0.0.1:0', '--json', '-q', '--workers', '2', '--stats', '0.2'], t);
    const listening = json(await proc.stdout.waitFor((l) => l.includes('"listening"'), 20_000));
    assert.equal(listening['workers'], 2);
    const ep = parseEndpoint(String(listening['address']), { defaultHost: '127.0.0.1' });
    const r = await runLoad(ep, { connections: 8, requests: 400, timeoutMs: 5000 });
    assert.equal(r.errors, 0);
    assert.equal(r.roundTrips, 400);
    // Every connection (and the 8 warm-up bytes) is counted in the summed stats.
    await proc.stdout.waitFor((l) => l.includes('"stats"') && l.includes('"accepted":8') && l.includes('"roundTrips":408'), 10_000);
    proc.kill('SIGTERM');
    const exit = await proc.waitExit(15_000);
    assert.equal(exit.code, 143);
    const stopped = json(proc.stdout.lines.find((l) => l.includes('"stopped"'))!);
    assert.deepEqual([stopped['accepted'], stopped['roundTrips'], stopped['workers']], [8, 408, 2]);
  });

  it('--workers 2 on a Unix socket, with a stale socket file left behind', async (t) => {
    const path = join(tempDir(t), 'echo.sock');
    // A crashed server's leftover: a socket file nobody listens on.
    const dead = spawnProcess(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => console.log('up'))", path], t);
    await dead.stdout.waitFor(/up/);
    dead.kill('SIGKILL');
    await dead.exited;
    const proc = spawnCli(['echo-server', `unix:${path}`, '--json', '-q', '--workers', '2'], t);
    const listening = json(await proc.stdout.waitFor((l) => l.includes('"listening"'), 20_000));
    const ep = parseEndpoint(String(listening['address']), { defaultHost: '127.0.0.1' });
    assert.equal(formatEndpoint(ep), `unix:${path}`);
    const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => echoMessage(ep, Buffer.from(`unix ${i}`))));
    replies.forEach((rep, i) => assert.equal(rep.reply.toString(), `unix ${i}`));
    proc.kill('SIGTERM');
    assert.equal((await proc.waitExit(15_000)).code, 143);
  });
});
