// `socketkit proxy --udp`: datagrams both ways, one upstream socket per client in a bounded
// table (eviction counted), idle expiry, UDP toxics live (duplicate, packet_loss), and the loss
// `socketkit ping` measures through `--toxic packet_loss:loss_rate=0.5` over 2,000 probes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { startUdpProxy, type UdpProxy, type UdpProxyEvent } from '../src/proxy/index.js';
import { startUdpEchoServer } from '../src/udp/index.js';
import { formatEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { runCli, spawnCli } from './helpers/cli.js';
import { waitUntil } from './helpers/net.js';
import type { CleanupContext } from './helpers/tmp.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

async function udpEchoServer(t: CleanupContext): Promise<Endpoint> {
  const s = await startUdpEchoServer(v4);
  t.after(() => s.close());
  return s.endpoint;
}

async function udpProxy(t: CleanupContext, upstream: Endpoint, options: Parameters<typeof startUdpProxy>[2] = {}): Promise<UdpProxy> {
  const p = await startUdpProxy(v4, upstream, options);
  t.after(() => p.close());
  return p;
}

/** A client socket that records what it receives. */
async function client(t: CleanupContext): Promise<{ socket: DgramSocket; got: Buffer[] }> {
  const socket = createSocket('udp4');
  const got: Buffer[] = [];
  socket.on('message', (m) => got.push(m));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return { socket, got };
}

function send(c: { socket: DgramSocket }, to: Endpoint, text: string): void {
  if (to.kind !== 'inet') throw new Error('inet only');
  c.socket.send(text, to.port, to.host);
}

describe('proxy --udp', () => {
  it('relays datagrams both ways, whole', async (t) => {
    const p = await udpProxy(t, await udpEchoServer(t));
    const c = await client(t);
    for (const text of ['one', 'two', 'x'.repeat(60_000)]) send(c, p.endpoint, text);
    await waitUntil(() => c.got.length === 3, 'three echoes');
    assert.deepEqual(c.got.map((g) => g.length).sort((a, b) => a - b), [3, 3, 60_000]);
  });

  it('keeps at most maxSessions client addresses: the least recently heard from is evicted, and counted', async (t) => {
    const events: UdpProxyEvent[] = [];
    const p = await udpProxy(t, await udpEchoServer(t), { maxSessions: 2, onEvent: (e) => events.push(e) });
    const [a, b, c] = [await client(t), await client(t), await client(t)];
    send(a, p.endpoint, 'a');
    await waitUntil(() => a.got.length === 1, 'a echoed');
    send(b, p.endpoint, 'b');
    await waitUntil(() => b.got.length === 1, 'b echoed');
    send(a, p.endpoint, 'a again'); // a is now the most recently heard from
    await waitUntil(() => a.got.length === 2, 'a echoed again');
    send(c, p.endpoint, 'c');
    await waitUntil(() => c.got.length === 1, 'c echoed');
    assert.equal(p.stats().evicted, 1);
    assert.equal(p.stats().sessions, 2);
    const ended = events.filter((e) => e.event === 'session-end');
    assert.equal(ended.length, 1);
    assert.equal(ended[0]!.event === 'session-end' && ended[0]!.reason, 'evicted');
    const bPort = b.socket.address().port;
    assert.equal(ended[0]!.peer, `127.0.0.1:${bPort}`);
  });

  it('expires sessions quiet for idleMs', async (t) => {
    const p = await udpProxy(t, await udpEchoServer(t), { idleMs: 50 });
    const c = await client(t);
    send(c, p.endpoint, 'hi');
    await waitUntil(() => c.got.length === 1, 'the echo');
    await waitUntil(() => p.stats().expired === 1, 'the session to expire');
    assert.equal(p.stats().sessions, 0);
  });

  it('duplicate rate=1 (downstream): every reply arrives twice', async (t) => {
    const p = await udpProxy(t, await udpEchoServer(t), { toxics: [{ type: 'duplicate', attributes: { rate: 1 } }] });
    const c = await client(t);
    send(c, p.endpoint, 'twice');
    await waitUntil(() => c.got.length === 2, 'two copies');
    assert.deepEqual(c.got.map(String), ['twice', 'twice']);
  });

  it('refuses TCP-only toxics and TLS with --udp (usage errors)', async () => {
    for (const args of [['--toxic', 'slicer:average_size=1'], ['--toxic', 'reset_peer'], ['--tls'], ['--max-conns', '5']]) {
      const r = await runCli(['proxy', '--udp', '127.0.0.1:0', '127.0.0.1:9', ...args]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /ERR_USAGE/);
    }
  });

  it('socketkit ping through --toxic packet_loss:loss_rate=0.5 measures 50 % ± 5 points over 2,000 probes', async (t) => {
    const echo = await udpEchoServer(t);
    const proc = spawnCli(['proxy', '--udp', '127.0.0.1:0', formatEndpoint(echo), '--toxic', 'packet_loss:loss_rate=0.5', '--seed', '42', '--json'], t);
    const listening = JSON.parse(await proc.stdout.waitFor(/"event":"listening"/)) as { address: string };
    const r = await runCli(['ping', listening.address, '-c', '2000', '-i', '1ms', '-W', '1', '--json'], { timeoutMs: 30_000 });
    assert.equal(r.code === 0 || r.code === 1, true, r.stderr);
    const summary = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).find((o) => o['lossPercent'] !== undefined)!;
    const loss = summary['lossPercent'] as number;
    assert.equal(summary['sent'], 2000);
    assert.ok(Math.abs(loss - 50) <= 5, `loss ${loss} %`);
    proc.kill('SIGTERM');
    const stopped = JSON.parse(await proc.stdout.waitFor(/"event":"stopped"/)) as { datagramsUp: number };
    assert.equal(stopped.datagramsUp, 2000);
    await proc.waitExit();
  });
});
