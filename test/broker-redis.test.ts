// Brokers on several machines, joined by a real Redis (Debian's redis-server on a free loopback
// port, its own temporary folder): delivery across instances exactly once, chat names unique
// across instances, a Redis restart in the middle, and bounded memory when Redis stalls.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { once } from 'node:events';
import { startBroker, type Broker, type BrokerMode } from '../src/broker/index.js';
import { connectRedisBridge, type RedisStatus } from '../src/broker/redis.js';
import { requireTool, spawnProcess, type Spawned } from './helpers/cli.js';
import { freePort, waitUntil } from './helpers/net.js';
import { tempDir, type CleanupContext } from './helpers/tmp.js';

const LOOPBACK = { kind: 'inet', host: '127.0.0.1', port: 0 } as const;

async function startRedis(t: CleanupContext, redis: string, port: number, dir: string): Promise<Spawned> {
  const p = spawnProcess(redis, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], t);
  await p.stdout.waitFor(/Ready to accept connections/);
  return p;
}

class Client {
  text = '';
  constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (s: string) => (this.text += s));
    socket.on('error', () => undefined);
  }
  until(cond: () => boolean, what: string): Promise<void> {
    return waitUntil(cond, `${what}; got ${JSON.stringify(this.text.slice(-300))}`, 10_000);
  }
}

async function client(t: CleanupContext, b: Broker): Promise<Client> {
  const ep = b.endpoint;
  const socket = netConnect({ host: '127.0.0.1', port: ep.kind === 'inet' ? ep.port : 0 });
  t.after(() => socket.destroy());
  await once(socket, 'connect', { signal: AbortSignal.timeout(5000) });
  return new Client(socket);
}

async function joinedBroker(t: CleanupContext, url: string, mode: BrokerMode, statuses: RedisStatus[] = []): Promise<Broker> {
  const joined = await connectRedisBridge(url, { channel: 'test', onStatus: (s) => statuses.push(s) });
  const b = await startBroker(LOOPBACK, { mode, bridge: joined.bridge, directory: joined.directory });
  t.after(() => b.close(0));
  return b;
}

describe('brokers joined by Redis', () => {
  it('bytes from a client of one instance reach the clients of the others, once, and never the sender', async (t) => {
    const redis = requireTool(t, 'redis-server', 'redis-server');
    if (!redis) return;
    const port = await freePort();
    await startRedis(t, redis, port, tempDir(t));
    const url = `redis://127.0.0.1:${port}`;
    const [b1, b2, b3] = [await joinedBroker(t, url, 'bytes'), await joinedBroker(t, url, 'bytes'), await joinedBroker(t, url, 'bytes')];
    const [a, b, c, a2] = [await client(t, b1), await client(t, b2), await client(t, b3), await client(t, b1)];
    await waitUntil(() => b1.clients === 2 && b2.clients === 1 && b3.clients === 1, 'clients joined');
    a.socket.write('hello from 1|');
    for (const r of [b, c, a2]) await r.until(() => r.text === 'hello from 1|', 'the message');
    b.socket.write('hello from 2|');
    for (const r of [a, c, a2]) await r.until(() => r.text.endsWith('hello from 2|'), 'the second message');
    assert.equal(a.text, 'hello from 2|', 'nothing back to the sender, nothing twice');
    assert.equal(c.text, 'hello from 1|hello from 2|');
  });

  it('chat: names are unique across instances, /who sees everyone in the room, lines cross', async (t) => {
    const redis = requireTool(t, 'redis-server', 'redis-server');
    if (!redis) return;
    const port = await freePort();
    await startRedis(t, redis, port, tempDir(t));
    const url = `redis://127.0.0.1:${port}`;
    const [b1, b2] = [await joinedBroker(t, url, 'chat'), await joinedBroker(t, url, 'chat')];
    const one = await client(t, b1);
    await one.until(() => one.text.includes('* welcome, user1:'), 'user1');
    const two = await client(t, b2);
    await two.until(() => two.text.includes('* welcome, user2:'), 'user2 (the number is shared)');
    one.socket.write('/nick alice\n');
    await one.until(() => one.text.includes('* you are now alice'), 'the rename');
    two.socket.write('/nick ALICE\n');
    await two.until(() => two.text.includes('* nick: ALICE is taken'), 'the name taken on the other instance');
    two.socket.write('/who\n');
    await two.until(() => two.text.includes('* lobby (2): alice, user2'), '/who across instances');
    two.socket.write('hi alice\n');
    await one.until(() => one.text.includes('<user2> hi alice\n'), 'the line across');
    assert.equal(one.text.split('<user2> hi alice').length - 1, 1, 'delivered once');
  });

  it('Redis going away: each instance keeps serving its own clients, says so, and joins again when Redis is back', { timeout: 60_000 }, async (t) => {
    const redis = requireTool(t, 'redis-server', 'redis-server');
    if (!redis) return;
    const port = await freePort();
    const dir = tempDir(t);
    const first = await startRedis(t, redis, port, dir);
    const url = `redis://127.0.0.1:${port}`;
    const statuses: RedisStatus[] = [];
    const b1 = await joinedBroker(t, url, 'bytes', statuses);
    const b2 = await joinedBroker(t, url, 'bytes');
    const [a, a2, b] = [await client(t, b1), await client(t, b1), await client(t, b2)];
    await waitUntil(() => b1.clients === 2 && b2.clients === 1, 'clients joined');
    first.kill('SIGKILL');
    await first.exited;
    await waitUntil(() => statuses.some((s) => !s.up), 'the instance says Redis is gone');
    a.socket.write('local only|');
    await a2.until(() => a2.text === 'local only|', 'local delivery without Redis');
    await startRedis(t, redis, port, dir);
    await waitUntil(() => statuses.at(-1)?.up === true, 'the instance says Redis is back', 15_000);
    // The other instance resubscribes on its own schedule: send until one message crosses.
    await waitUntil(
      () => {
        a.socket.write('again|');
        return b.text.includes('again|');
      },
      'delivery across instances again',
      15_000,
      200,
    );
    assert.ok(!b.text.includes('local only|'), 'what was published while Redis was away is not replayed');
  });

  it('a stalled Redis (SIGSTOP) costs bounded memory: what cannot be sent is dropped and counted', { timeout: 60_000 }, async (t) => {
    const redis = requireTool(t, 'redis-server', 'redis-server');
    if (!redis) return;
    const port = await freePort();
    const server = await startRedis(t, redis, port, tempDir(t));
    const joined = await connectRedisBridge(`redis://127.0.0.1:${port}`, { channel: 'test', maxPendingBytes: 1024 * 1024 });
    server.kill('SIGSTOP');
    // Redis goes on first, so that the bridge can say goodbye.
    t.after(async () => {
      server.kill('SIGCONT');
      await joined.bridge.close();
    });
    const chunk = Buffer.alloc(64 * 1024, 'p');
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 1000; i++) joined.bridge.publish(chunk); // 64 MiB offered
    assert.ok(joined.bridge.dropped >= 1000 - 17, `${joined.bridge.dropped} of 1,000 dropped`);
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 8 * 1024 * 1024, `array buffers grew by ${grown} bytes`);
  });
});
