// Brokers joined by a real Redis (issue 18), what test/broker-redis.test.ts does not cover: flow
// control across instances (a slow reader on one instance loses nothing to a sender on
// another, and receivers that keep up are not cut off at the default queue size), and what pub/sub does not promise made visible: Redis closing the subscription of an
// instance that fell behind (client-output-buffer-limit pubsub) is said, the instance
// resubscribes, and the messages that never arrived are counted from the gaps in their numbers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { once } from 'node:events';
import { startBroker, type Broker } from '../src/broker/index.js';
import { connectRedisBridge, type RedisJoin } from '../src/broker/redis.js';
import { ndjson, requireTool, spawnCli, spawnProcess, type Spawned } from './helpers/cli.js';
import { freePort, waitUntil } from './helpers/net.js';
import { tempDir, type CleanupContext } from './helpers/tmp.js';

const LOOPBACK = { kind: 'inet', host: '127.0.0.1', port: 0 } as const;

async function startRedis(t: CleanupContext, redis: string, port: number, extra: readonly string[] = []): Promise<Spawned> {
  const p = spawnProcess(redis, ['--port', String(port), '--bind', '127.0.0.1', '--dir', tempDir(t), '--save', '', '--appendonly', 'no', ...extra], t);
  await p.stdout.waitFor(/Ready to accept connections/);
  return p;
}

interface Peer {
  readonly socket: Socket;
  bytes: number;
  closed: boolean;
}

async function peer(t: CleanupContext, port: number): Promise<Peer> {
  const socket = netConnect({ host: '127.0.0.1', port });
  t.after(() => socket.destroy());
  await once(socket, 'connect', { signal: AbortSignal.timeout(5000) });
  const p: Peer = { socket, bytes: 0, closed: false };
  socket.on('data', (c: Buffer) => (p.bytes += c.length));
  socket.on('error', () => undefined);
  socket.once('close', () => (p.closed = true));
  return p;
}

function portOf(b: Broker): number {
  return b.endpoint.kind === 'inet' ? b.endpoint.port : 0;
}

/** A broker joined through Redis; `maxQueue` undefined: the default (1 MiB). */
async function joined(t: CleanupContext, url: string, maxQueue: number | undefined, holdMs?: number): Promise<{ b: Broker; j: RedisJoin }> {
  const j = await connectRedisBridge(url, { channel: 'flow' });
  const b = await startBroker(LOOPBACK, { bridge: j.bridge, ...(maxQueue !== undefined ? { maxQueue } : {}), ...(holdMs !== undefined ? { holdMs } : {}) });
  t.after(() => b.close(0));
  return { b, j };
}

async function blast(s: Socket, total: number): Promise<void> {
  const buf = Buffer.alloc(64 * 1024, 'r');
  for (let sent = 0; sent < total; sent += buf.length) {
    if (!s.write(buf)) await once(s, 'drain', { signal: AbortSignal.timeout(30_000) });
  }
}

describe('brokers joined by Redis: flow and loss', () => {
  it('a slow reader on one instance loses nothing to a sender on another: the other instance holds its sender', { timeout: 90_000 }, async (t) => {
    const redis = requireTool(t, 'redis-server', 'redis-server');
    if (!redis) return;
    const port = await freePort();
    await startRedis(t, redis, port);
    const url = `redis://127.0.0.1:${port}`;
    // The hold bound is long (10 s), so that a loaded machine, where the reader catches up
    // slowly, does not release the hold before it has (what the bound does is tested in
    // broker-flow). The queues are small (256 KiB): what is on its way between the instances
    // is bounded by the receiving side's window, a quarter of its queue.
    const one = await joined(t, url, 256 * 1024, 10_000);
    const two = await joined(t, url, 256 * 1024, 10_000);
    const sender = await peer(t, portOf(one.b));
    const slow = await peer(t, portOf(two.b));
    slow.socket.on('data', () => {
      slow.socket.pause();
      setTimeout(() => slow.socket.resume(), 2);
    });
    await waitUntil(() => one.b.clients === 1 && two.b.clients === 1, 'clients joined');
    // The subscriptions are up once a first message crosses.
    sender.socket.write('x');
    await waitUntil(() => slow.bytes === 1, 'the first byte across');
    const total = 128 * 1024 * 1024;
    await blast(sender.socket, total);
    await waitUntil(() => slow.closed || slow.bytes === total + 1, 'the slow reader has everything', 60_000);
    assert.equal(slow.closed, false, 'the slow reader was cut off');
    assert.equal(slow.bytes, total + 1);
    assert.ok(one.b.relay.held > 0, 'the sending instance held its sender back');
    assert.equal(two.b.relay.slowDisconnects, 0);
    assert.equal(one.j.bridge.dropped, 0);
    assert.equal(two.j.bridge.lost, 0);
  });

  it('a fast sender on one instance cuts off none of the receivers that keep up on another, at the default queue size', { timeout: 90_000 }, async (t) => {
    const redis = requireTool(t, 'redis-server', 'redis-server');
    if (!redis) return;
    const port = await freePort();
    await startRedis(t, redis, port);
    const url = `redis://127.0.0.1:${port}`;
    // Default --max-queue (1 MiB). Before the window, what was on its way through Redis when the
    // receiving instance said "hold" (several MiB: the publisher's backlog, Redis's output
    // buffer, the kernel's) overran the receivers that read slower than the sender wrote.
    const one = await joined(t, url, undefined, 10_000);
    const two = await joined(t, url, undefined, 10_000);
    const sender = await peer(t, portOf(one.b));
    const local = await peer(t, portOf(one.b));
    const remote: Peer[] = [];
    for (let i = 0; i < 6; i++) remote.push(await peer(t, portOf(two.b)));
    // Half of them read slower than the sender writes (a pause after each read), and keep reading.
    for (const [i, r] of remote.entries()) {
      if (i % 2 === 0) continue;
      r.socket.on('data', () => {
        r.socket.pause();
        setTimeout(() => r.socket.resume(), 1 + (i % 3));
      });
    }
    const everyone = [local, ...remote];
    await waitUntil(() => one.b.clients === 2 && two.b.clients === remote.length, 'clients joined');
    // No first message to warm up: the instances know of each other from the start (hello), so
    // the very first burst is within the window too.
    const total = 96 * 1024 * 1024;
    await blast(sender.socket, total);
    await waitUntil(() => everyone.every((r) => r.closed || r.bytes === total), 'every receiver has everything', 60_000);
    assert.deepEqual(
      everyone.map((r) => r.closed),
      everyone.map(() => false),
      `cut off (slow consumer): ${one.b.relay.slowDisconnects} here, ${two.b.relay.slowDisconnects} there`,
    );
    assert.deepEqual(
      everyone.map((r) => r.bytes),
      everyone.map(() => total),
    );
    assert.equal(one.j.bridge.dropped, 0);
    assert.equal(two.j.bridge.lost, 0);
  });

  it('Redis closing a subscription that fell behind is said; the instance resubscribes and counts what never arrived', { timeout: 90_000 }, async (t) => {
    const redis = requireTool(t, 'redis-server', 'redis-server');
    if (!redis) return;
    const port = await freePort();
    // A tiny pubsub output limit, so that a stopped subscriber is cut off soon.
    await startRedis(t, redis, port, ['--client-output-buffer-limit', 'pubsub 256kb 128kb 1']);
    const url = `redis://127.0.0.1:${port}`;
    const one = await joined(t, url, 1024 * 1024);
    // The other instance is the real binary, so that it can be stopped (SIGSTOP) alone.
    const two = spawnCli(['broker', '127.0.0.1:0', '--json', '--redis', url, '--channel', 'flow'], t);
    const listening = JSON.parse(await two.stdout.waitFor(/"event":"listening"/)) as { address: string };
    const reader = await peer(t, Number(listening.address.split(':').at(-1)));
    const sender = await peer(t, portOf(one.b));
    await waitUntil(() => one.b.clients === 1, 'the sender joined');
    await waitUntil(
      () => {
        sender.socket.write('.');
        return reader.bytes > 0;
      },
      'a first byte across',
      10_000,
      100,
    );
    two.kill('SIGSTOP');
    t.after(() => two.kill('SIGCONT'));
    // Far more than the kernel's buffers and the limit: Redis closes the stopped subscriber.
    await blast(sender.socket, 32 * 1024 * 1024);
    two.kill('SIGCONT');
    const back = await two.stdout.waitFor(/"event":"redis".*"up":true/, 30_000);
    assert.match(back, /closed the subscription alone/);
    assert.ok(ndjson(two.stdout.text).some((e) => e['event'] === 'redis' && e['up'] === false), 'the cut-off said');
    // Messages cross again, and the gap is counted and said.
    await waitUntil(
      () => {
        sender.socket.write('.');
        return ndjson(two.stdout.text).some((e) => e['event'] === 'redis-loss' && Number(e['lost']) > 0);
      },
      'the lost messages said',
      20_000,
      200,
    );
    two.kill('SIGTERM');
    await two.waitExit();
    const stopped = ndjson(two.stdout.text).find((e) => e['event'] === 'stopped')!;
    assert.ok(Number(stopped['redisLost']) > 0, JSON.stringify(stopped));
    assert.equal(one.j.bridge.dropped, 0, 'the publishing side lost nothing');
  });
});
